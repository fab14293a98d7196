// Reading PyTorch checkpoints without PyTorch: the zip archive `torch.save` writes since PyTorch
// 1.6 (`<top>/data.pkl`, a pickle of the state dict, plus one raw storage file per tensor under
// `<top>/data/`). The pickle reader knows the opcodes and the few globals a state dict uses
// (collections.OrderedDict, torch._utils._rebuild_tensor_v2 and _rebuild_parameter, the typed
// storages) and nothing else: anything else is an error, never code run. Tensors are gathered
// through their offset and strides into C order. Dtypes float32, float64 and int64.
//
//   const TorchStateDict sd = read_torch_checkpoint("99.pth");
//   const TorchTensor* w = sd.find("outc.conv.weight");
//
// Thread contract: stateless functions; the results are plain values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lipsync::modelgen {

// One tensor of a state dict, in C order. Every value is held as a double (float32 and int64
// counts are exact).
struct TorchTensor {
  std::string dtype;                // "float32", "float64" or "int64"
  std::vector<std::int64_t> shape;  // empty for a 0-dim tensor
  std::vector<double> values;       // product(shape) values, C order
};

// A state dict: names and tensors in the checkpoint's order.
struct TorchStateDict {
  std::vector<std::pair<std::string, TorchTensor>> entries;
  // Where the state dict was found inside the pickle: "" for the top level, else the key of the
  // wrapping dict ("state_dict", "model", ...). A "module." prefix on every key (DataParallel)
  // is removed and noted here too.
  std::string note;

  const TorchTensor* find(const std::string& key) const;
};

// Reads a zip checkpoint. Throws Error::Code::kNotFound when the file does not exist and
// Error::Code::kInvalidInput naming the file and the fault otherwise: not a zip (a legacy pre-1.6
// checkpoint is recognised and the message says how to re-save it), a truncated or damaged
// archive, no data.pkl, an unsupported pickle opcode or global, a storage shorter than its
// tensor, an unsupported dtype, or no state dict inside.
TorchStateDict read_torch_checkpoint(const std::filesystem::path& path);

// The shape as PyTorch prints it: "[64, 32, 1, 1]".
std::string shape_string(const std::vector<std::int64_t>& shape);

}  // namespace lipsync::modelgen
