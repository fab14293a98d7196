// `lipsync models import`: a models folder from a trained SyncTalk_2D model's PyTorch
// checkpoints, with no Python. The U-Net checkpoint (train_328.py's checkpoint/<name>/<epoch>.pth,
// `Model(6, 'ave')`) and the audio encoder's (model/checkpoints/audio_visual_encoder.pth) are
// read (torch_checkpoint.h), checked key by key against the architecture, BatchNorm-folded and
// written as generator.onnx, audio_encoder.onnx and model.json (kind "trained", the sources'
// sha256). Only the 'ave' audio mode runs here: 'wenet' checkpoints are recognised by their
// shapes and refused; 'hubert' ones have exactly the 'ave' shapes (only a stride differs) and
// cannot be told apart, so the caller must not pass them.
// Thread contract: stateless function; concurrent imports must use different outputs.
#pragma once

#include <filesystem>
#include <string>

#include "infer/model_manifest.h"

namespace lipsync::modelgen {

// Bumped when the conversion changes what it writes.
constexpr int kImporterVersion = 1;

struct ImportedModels {
  infer::ModelManifest manifest;
  double generator_width = 1.0;  // 1.0 for upstream's ch = [32 .. 512]; 0.5 for the mobile one
  std::string notes;             // what the reader adjusted ("'module.' prefix removed"), or ""
};

// Writes the folder `out` (which must not exist, or be empty) through a staging folder: on any
// error nothing is left behind. `name` is the model name (default: out's folder name). Throws
// Error::Code::kNotFound for a missing file and Error::Code::kInvalidInput naming the file and
// the fault otherwise: every missing and unexpected key, every shape mismatch with both shapes,
// a non-finite weight, a negative BatchNorm variance, an unsupported audio mode, and the reader's
// errors.
// A file a model folder was made from: its name, size and sha256. Throws
// Error::Code::kInvalidInput when it cannot be read.
infer::ModelSource model_source(const std::string& role, const std::filesystem::path& path);

ImportedModels import_synctalk_models(const std::filesystem::path& unet,
                                      const std::filesystem::path& audio_encoder,
                                      const std::filesystem::path& out, std::string name = {});

}  // namespace lipsync::modelgen
