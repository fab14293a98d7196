// Demo models: the SyncTalk_2D tensor contract with analytic graphs instead of trained ones, so
// the built-in demo shows a talking face without any weights.
// - Audio encoder: every feature of a window is the loudness of the window's mel rows 3..6,
//   (mean mel + 4) / 8 in [0, 1]. Those rows are the 50 ms around the time of the video frame
//   that uses this window as its own row (frame i's own row is window i - 1, which starts
//   3.2 frames of mel, i.e. 40 ms, before frame i's time).
// - Generator: returns the ROI (input channels 0-2) with a dark, soft-edged ellipse painted at
//   kDemoMouth; its height follows the loudness of the frame's own audio row (channel 16 of the
//   audio tensor). Silence (loudness <= kDemoClosedLoudness) leaves the ROI unchanged.
// Thread contract: stateless functions.
#pragma once

#include <filesystem>

#include "infer/demo_mouth.h"
#include "modelgen/synth_models.h"

namespace lipsync::modelgen {

using infer::kDemoClosedLoudness;
using infer::kDemoMouth;
using infer::kDemoMouthDarkness;
using infer::kDemoOpenLoudness;

GeneratedModel demo_audio_encoder();
GeneratedModel demo_generator();

// Writes dir/audio_encoder.onnx, dir/generator.onnx and dir/model.json (kind "demo").
void write_demo_models(const std::filesystem::path& dir);

}  // namespace lipsync::modelgen
