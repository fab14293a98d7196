// Writes PyTorch zip checkpoints the way torch.save does (pickle protocol 2, an OrderedDict of
// _rebuild_tensor_v2 calls with ('storage', torch.<Type>Storage, key, 'cpu', numel) persistent
// ids, one ZIP_STORED entry per storage), so tests can make checkpoints with exactly the faults
// they need. Test-only: the product reads checkpoints, it never writes them.
// Thread contract: stateless functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "modelgen/torch_checkpoint.h"

namespace lipsync::testing {

struct WrittenTensor {
  WrittenTensor() = default;
  WrittenTensor(std::string k, modelgen::TorchTensor t, bool swap = false, std::int64_t skip = 0)
      : key(std::move(k)), tensor(std::move(t)), transposed(swap), offset(skip) {}

  std::string key;
  modelgen::TorchTensor tensor;  // values in C order
  // Store the data transposed (last two dims swapped in memory, strides to match) behind
  // `offset` leading padding elements, as a view of a bigger storage would be.
  bool transposed = false;
  std::int64_t offset = 0;
  std::optional<std::int64_t> storage_elements;  // write fewer (or more) elements than needed
};

struct CheckpointFaults {
  std::string pickle;         // non-empty: written as data.pkl instead of the real pickle
  std::string top = "model";  // the archive's top folder
  std::string wrap;           // non-empty: save {"epoch": 7, wrap: state_dict} instead
  std::vector<std::string> extra_entries;  // more (empty) entries under top/, e.g. TorchScript's
  std::function<void(std::string&)> mutate_pickle;  // changes the pickle before it is written
};

void write_torch_checkpoint(const std::filesystem::path& path,
                            const std::vector<WrittenTensor>& tensors,
                            const CheckpointFaults& faults = {});

// A state dict's entries as WrittenTensors (to change some and write it back).
std::vector<WrittenTensor> to_written(const modelgen::TorchStateDict& sd);

}  // namespace lipsync::testing
