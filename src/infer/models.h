// Models: a model folder loaded for inference: `audio_encoder.onnx` + `generator.onnx`, and
// optionally `model.json` (the layout `--models DIR` means everywhere).
// Thread contract: immutable after construction; shared by any number of callers.
#pragma once

#include <filesystem>
#include <optional>

#include "infer/audio_encoder.h"
#include "infer/generator.h"
#include "infer/infer_options.h"
#include "infer/model_manifest.h"

namespace lipsync::infer {

inline constexpr const char* kEncoderFileName = "audio_encoder.onnx";
inline constexpr const char* kGeneratorFileName = "generator.onnx";
inline constexpr const char* kManifestFileName = "model.json";

// Refuses an int8 generator with 8-bit weights (model.json weight_bits 8, or an int8 folder
// from before the key) when it runs on the CPU provider of a CPU whose int8 kernels saturate
// (`pairs_saturate`: core::int8_pairs_saturate(), x86 without VNNI): its frames would be wrong
// there (the reference generator: 19 dB against float32 instead of 38). Throws
// Error::Code::kInvalidInput naming the folder, the CPU and the fix.
void check_int8_weights(const std::filesystem::path& dir,
                        const std::optional<ModelManifest>& manifest, const std::string& provider,
                        bool pairs_saturate);

class Models {
 public:
  // Loads both networks and the manifest when present. Throws Error::Code::kNotFound when the
  // folder or a network file is missing, kInvalidInput for a bad file (named in the message) and
  // for an int8 generator this CPU cannot run correctly (check_int8_weights).
  Models(const std::filesystem::path& dir, const InferOptions& options);

  const AudioEncoder& encoder() const { return encoder_; }
  const Generator& generator() const { return generator_; }
  // The manifest, or nullopt when the folder has none.
  const std::optional<ModelManifest>& manifest() const { return manifest_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static std::filesystem::path checked_dir(const std::filesystem::path& dir);

  std::filesystem::path dir_;
  std::optional<ModelManifest> manifest_;
  AudioEncoder encoder_;
  Generator generator_;
};

}  // namespace lipsync::infer
