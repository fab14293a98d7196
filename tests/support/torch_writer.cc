#include "support/torch_writer.h"

#include <zip.h>

#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>

namespace lipsync::testing {
namespace {

struct Type {
  const char* storage;
  int bytes;
};

Type type_of(const std::string& dtype) {
  if (dtype == "float32") return {"FloatStorage", 4};
  if (dtype == "float64") return {"DoubleStorage", 8};
  if (dtype == "int64") return {"LongStorage", 8};
  if (dtype == "float16") return {"HalfStorage", 2};
  throw std::invalid_argument("torch_writer: dtype " + dtype);
}

void put_int(std::string& p, std::int64_t v) {
  if (v >= 0 && v < 256) {
    p += 'K';
    p += static_cast<char>(v);
  } else {
    p += 'J';
    const auto u = static_cast<std::uint32_t>(static_cast<std::int32_t>(v));
    for (int i = 0; i < 4; ++i) p += static_cast<char>((u >> (8 * i)) & 0xff);
  }
}

void put_string(std::string& p, const std::string& s) {
  p += 'X';
  const auto n = static_cast<std::uint32_t>(s.size());
  for (int i = 0; i < 4; ++i) p += static_cast<char>((n >> (8 * i)) & 0xff);
  p += s;
}

void put_ints(std::string& p, const std::vector<std::int64_t>& v) {
  p += '(';
  for (std::int64_t x : v) put_int(p, x);
  p += 't';
}

void append_value(std::string& bytes, const std::string& dtype, double v) {
  if (dtype == "float32") {
    const float f = static_cast<float>(v);
    bytes.append(reinterpret_cast<const char*>(&f), 4);
  } else if (dtype == "float64") {
    bytes.append(reinterpret_cast<const char*>(&v), 8);
  } else if (dtype == "int64") {
    const auto i = static_cast<std::int64_t>(v);
    bytes.append(reinterpret_cast<const char*>(&i), 8);
  } else {  // float16, for values exactly representable (tests use small integers and halves)
    const float f = static_cast<float>(v);
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
    const int exponent = static_cast<int>((bits >> 23) & 0xff) - 127 + 15;
    const std::uint16_t h =
        f == 0 ? sign
               : static_cast<std::uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 0x3ff));
    bytes.append(reinterpret_cast<const char*>(&h), 2);
  }
}

}  // namespace

std::vector<WrittenTensor> to_written(const modelgen::TorchStateDict& sd) {
  std::vector<WrittenTensor> out;
  for (const auto& [key, tensor] : sd.entries) out.push_back({key, tensor});
  return out;
}

void write_torch_checkpoint(const std::filesystem::path& path,
                            const std::vector<WrittenTensor>& tensors,
                            const CheckpointFaults& faults) {
  std::string pickle = "\x80\x02";
  if (!faults.wrap.empty()) {
    pickle += "}(";
    put_string(pickle, "epoch");
    put_int(pickle, 7);
    put_string(pickle, faults.wrap);
  }
  pickle += "ccollections\nOrderedDict\n)R(";
  std::vector<std::string> storages;
  for (std::size_t n = 0; n < tensors.size(); ++n) {
    const WrittenTensor& w = tensors[n];
    const auto& shape = w.tensor.shape;
    const Type type = type_of(w.tensor.dtype);
    // Memory layout: C order, or with the last two dims swapped.
    std::vector<std::int64_t> stride(shape.size(), 1);
    std::vector<std::int64_t> mem_shape = shape;
    const bool swap = w.transposed && shape.size() >= 2;
    if (swap) std::swap(mem_shape[shape.size() - 1], mem_shape[shape.size() - 2]);
    std::vector<std::int64_t> mem_stride(shape.size(), 1);
    for (std::size_t d = shape.size(); d-- > 1;) mem_stride[d - 1] = mem_stride[d] * mem_shape[d];
    stride = mem_stride;
    if (swap) std::swap(stride[shape.size() - 1], stride[shape.size() - 2]);
    std::int64_t count = 1;
    for (std::int64_t d : shape) count *= d;
    std::vector<double> memory(static_cast<std::size_t>(count + w.offset), 0.0);
    std::vector<std::int64_t> index(shape.size(), 0);
    for (std::int64_t i = 0; i < count; ++i) {
      std::int64_t at = w.offset;
      for (std::size_t d = 0; d < shape.size(); ++d) at += index[d] * stride[d];
      memory[static_cast<std::size_t>(at)] = w.tensor.values[static_cast<std::size_t>(i)];
      for (std::size_t d = shape.size(); d-- > 0;) {
        if (++index[d] < shape[d]) break;
        index[d] = 0;
      }
    }
    const std::int64_t elements = w.storage_elements.value_or(count + w.offset);
    std::string bytes;
    for (std::int64_t i = 0; i < elements; ++i) {
      append_value(bytes, w.tensor.dtype,
                   i < static_cast<std::int64_t>(memory.size()) ? memory[i] : 0.0);
    }
    storages.push_back(std::move(bytes));

    put_string(pickle, w.key);
    pickle += "ctorch._utils\n_rebuild_tensor_v2\n(";
    pickle += '(';
    put_string(pickle, "storage");
    pickle += std::string("ctorch\n") + type.storage + "\n";
    put_string(pickle, std::to_string(n));
    put_string(pickle, "cpu");
    put_int(pickle, elements);
    pickle += "tQ";
    put_int(pickle, w.offset);
    put_ints(pickle, shape);
    put_ints(pickle, stride);
    pickle += '\x89';  // requires_grad=False
    pickle += "ccollections\nOrderedDict\n)R";
    pickle += "tR";
  }
  pickle += faults.wrap.empty() ? "u." : "uu.";
  if (!faults.pickle.empty()) pickle = faults.pickle;
  if (faults.mutate_pickle) faults.mutate_pickle(pickle);

  std::filesystem::remove(path);
  int error = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_EXCL, &error);
  if (zip == nullptr) throw std::runtime_error("torch_writer: cannot create " + path.string());
  // zip_source_buffer borrows the bytes until zip_close: keep them alive, and in place (a deque
  // never moves its elements when it grows).
  std::deque<std::string> keep;
  auto add = [&](const std::string& name, std::string bytes) {
    keep.push_back(std::move(bytes));
    zip_source_t* src = zip_source_buffer(zip, keep.back().data(), keep.back().size(), 0);
    const zip_int64_t index = zip_file_add(zip, name.c_str(), src, ZIP_FL_OVERWRITE);
    if (index < 0) throw std::runtime_error("torch_writer: " + std::string(zip_strerror(zip)));
    zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
  };
  add(faults.top + "/data.pkl", pickle);
  for (std::size_t n = 0; n < storages.size(); ++n) {
    add(faults.top + "/data/" + std::to_string(n), std::move(storages[n]));
  }
  add(faults.top + "/version", "3\n");
  for (const std::string& name : faults.extra_entries) add(faults.top + "/" + name, "");
  if (zip_close(zip) != 0) throw std::runtime_error("torch_writer: cannot write " + path.string());
}

}  // namespace lipsync::testing
