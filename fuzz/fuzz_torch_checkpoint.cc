// Fuzzes the PyTorch checkpoint reader of `lipsync models import`: modelgen::read_torch_checkpoint
// (libzip archive, the pickle machine, tensor storages gathered through offsets and strides).
// It reads a path, so the input goes to a temporary file first:
//   - a zip archive ("PK...") or a legacy checkpoint (0x80 0x02 0x8a...): the file as it is;
//   - anything else is a data.pkl: the harness stores it uncompressed in an archive beside four
//     storages, archive/data/0..3 of 4, 64, 1024 and 0 bytes, so that mutations reach the
//     pickle machine instead of failing the archive's CRC.
#include <zip.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "modelgen/torch_checkpoint.h"

namespace {

using namespace lipsync;

// Storage files the pickle may name ('0' to '3'), their bytes a fixed pattern.
const std::string& storage(int key) {
  static const std::array<std::string, 4> storages = [] {
    constexpr std::array<std::size_t, 4> kSizes{4, 64, 1024, 0};
    std::array<std::string, 4> s;
    for (std::size_t k = 0; k < s.size(); ++k) {
      for (std::size_t i = 0; i < kSizes[k]; ++i) s[k] += static_cast<char>((i * 37 + 11) % 251);
    }
    return s;
  }();
  return storages[static_cast<std::size_t>(key)];
}

void add_entry(zip_t* zip, const std::string& name, std::string_view bytes) {
  zip_source_t* source = zip_source_buffer(zip, bytes.data(), bytes.size(), 0);
  const zip_int64_t index = source ? zip_file_add(zip, name.c_str(), source, 0) : -1;
  if (index < 0) {
    zip_source_free(source);
    fuzz::finding("libzip cannot add " + name);
  }
  zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
}

// Writes `pickle` as archive/data.pkl of a checkpoint at `path`.
void write_checkpoint(const std::filesystem::path& path, std::string_view pickle) {
  int error = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (zip == nullptr) fuzz::finding("libzip cannot create " + path.string());
  add_entry(zip, "archive/data.pkl", pickle);
  add_entry(zip, "archive/byteorder", "little");
  for (int k = 0; k < 4; ++k) add_entry(zip, "archive/data/" + std::to_string(k), storage(k));
  if (zip_close(zip) != 0) fuzz::finding("libzip cannot write " + path.string());
}

bool is_file(std::string_view in) {
  return in.starts_with("P") || in.starts_with("\x80\x02\x8a");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::as_text(data, size);
  const fuzz::TempFile file(is_file(in) ? in : std::string_view(), "checkpoint.pth");
  if (!is_file(in)) write_checkpoint(file.path(), in);
  fuzz::accepts([&] {
    const modelgen::TorchStateDict sd = modelgen::read_torch_checkpoint(file.path());
    for (const auto& [key, tensor] : sd.entries) {
      std::size_t count = 1;
      for (const std::int64_t d : tensor.shape) count *= static_cast<std::size_t>(d);
      if (tensor.values.size() != count) fuzz::finding("tensor " + key + ": values != shape");
      (void)modelgen::shape_string(tensor.shape);
      if (sd.find(key) == nullptr) fuzz::finding("find() misses key " + key);
    }
  });
  return 0;
}
