// ModelManifest: the optional model.json beside a model folder's two ONNX files. It says what
// the models are (family, kind, width, seed, parameter counts); lipsync checks the family and
// reports the rest (ListModels, bench output).
// Thread contract: plain value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace lipsync::infer {

// A file an imported model was made from.
struct ModelSource {
  std::string role;    // "unet" or "audio_encoder"
  std::string file;    // its name when imported (no folder)
  std::string sha256;  // lower-case hex of its bytes
  std::uint64_t bytes = 0;
};

struct ModelManifest {
  std::string name;                    // display name, e.g. "synth-w0.125-s1"
  std::string family = "synctalk_2d";  // the only family lipsync runs today
  std::string kind;                    // "synthetic", "demo" or "trained"
  double width = 1.0;                  // channel-width factor of a synthetic model
  std::uint64_t seed = 0;              // weight seed of a synthetic model
  // Trainable parameters, counted as PyTorch does (conv weights and biases, BatchNorm scale and
  // shift), before BatchNorm folding. 0 when unknown.
  std::int64_t generator_parameters = 0;
  std::int64_t encoder_parameters = 0;
  // Imported models ("trained"): the checkpoints they came from and the tool that converted
  // them, e.g. "lipsync 0.1.0 models import v1". Empty (and not written) otherwise.
  std::vector<ModelSource> sources;
  std::string importer;
  // Quantised models: "int8" (empty, and not written, for float32), the calibration method,
  // frames and speech files they were calibrated on, and how Concat inputs were quantised
  // ("shared" or "per-input"; empty in folders written before the choice existed, which are
  // "per-input"). The fp32 source files are in `sources`.
  std::string precision;
  std::string calibration;
  int calibration_frames = 0;
  std::vector<std::string> calibration_audio;
  std::string concat_scales;
  // The int8 weights' bits: 7 (-63..63, correct on every CPU) or 8 (-127..127, CPUs with VNNI
  // only); 0 in folders written before the choice existed, which are 8.
  int weight_bits = 0;
  // Convs left in float at each end of the generator (models quantize --float-convs; 0, and not
  // written, when every one is int8).
  int float_convs = 0;

  // Reads and checks model.json. Throws Error::Code::kInvalidInput naming the file and the key
  // for malformed JSON, unknown keys, wrong types and a family other than synctalk_2d.
  static ModelManifest load(const std::filesystem::path& path);
  // Writes it atomically.
  void save(const std::filesystem::path& path) const;
  nlohmann::json to_json() const;
};

}  // namespace lipsync::infer
