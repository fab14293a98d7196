// Synthetic SyncTalk_2D models: the two networks of REFERENCE.md §8 with seeded random weights
// (PyTorch's default conv initialisation bounds, random BatchNorm statistics folded into the
// convolutions, as the exporter does), at full width or narrower for fast tests. Same width and
// seed give the same bytes. No trained weights exist here; these have the real models' cost.
// Thread contract: stateless functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "modelgen/synctalk_net.h"

namespace lipsync::modelgen {

// width scales every internal channel count (width 1.0 is the real model: 12.19 M generator
// parameters, 2.81 M encoder parameters); the tensor contract never changes.
// Requires: 0 < width <= 4.
GeneratedModel synth_generator(double width, std::uint64_t seed);
GeneratedModel synth_audio_encoder(double width, std::uint64_t seed);

// Writes dir/audio_encoder.onnx, dir/generator.onnx and dir/model.json (kind "synthetic"),
// creating dir. Each file is written atomically. Throws Error::Code::kInvalidInput for a bad
// width or an unwritable folder.
void write_synth_models(const std::filesystem::path& dir, double width, std::uint64_t seed);

}  // namespace lipsync::modelgen
