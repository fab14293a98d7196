// Demo models: the SyncTalk_2D tensor contract with analytic graphs instead of trained ones, so
// the built-in demo shows a talking face without any weights.
// - Audio encoder: every feature of a window is the loudness of the window's mel rows 3..6,
//   (mean mel + 4) / 8 in [0, 1]. Those rows are the 50 ms around the time of the video frame
//   that uses this window as its own row (frame i's own row is window i - 1, which starts
//   3.2 frames of mel, i.e. 40 ms, before frame i's time).
// - Generator: returns the ROI (input channels 0-2) with its mouth closed, then a dark,
//   soft-edged ellipse painted at kDemoMouth whose height follows the loudness of the frame's own
//   audio row (channel 16 of the audio tensor). Closing the mouth repaints the region around
//   kDemoMouth in the colour of the skin around it (the mean of a ring just outside) and draws the
//   demo avatar's smile (kDemoLips) there, so a talking template's open mouth is shut. Silence
//   (loudness <= kDemoClosedLoudness) gives the closed mouth alone.
// Thread contract: stateless functions.
#pragma once

#include <array>
#include <filesystem>

#include "contract/demo_mouth.h"
#include "modelgen/synth_models.h"

namespace lipsync::modelgen {

using contract::kDemoClosedLoudness;
using contract::kDemoMouth;
using contract::kDemoMouthDarkness;
using contract::kDemoOpenLoudness;

GeneratedModel demo_audio_encoder();
GeneratedModel demo_generator();

// Writes dir/audio_encoder.onnx, dir/generator.onnx and dir/model.json (kind "demo").
void write_demo_models(const std::filesystem::path& dir);

// A generator with a trained model's typical colour faults, for measuring seams (the border
// step, render/seams.h): the demo generator's picture times `gain` plus `offset` per channel
// (BGR), then, with `blur`, a 3 x 3 binomial blur; clipped to [0, 1].
struct Drift {
  std::array<float, 3> gain{1.06f, 1.0f, 0.94f};
  std::array<float, 3> offset{0.03f, 0.01f, -0.03f};
  bool blur = true;
};
GeneratedModel drifting_generator(const Drift& drift = {});
// The demo models with the drifting generator (model.json name "drifting").
void write_drifting_models(const std::filesystem::path& dir, const Drift& drift = {});

}  // namespace lipsync::modelgen
