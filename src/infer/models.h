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

class Models {
 public:
  // Loads both networks and the manifest when present. Throws Error::Code::kNotFound when the
  // folder or a network file is missing, kInvalidInput for a bad file (named in the message).
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
