// The demo model family's one shared fact: where the demo generator paints the mouth in the ROI
// and how loud the audio must be to open it. The demo models (modelgen/) paint it there and the
// demo avatar (avatar/) puts its closed mouth there; header-only, so neither links the other.
// Thread contract: constants only.
#pragma once

namespace lipsync::infer {

// Where the demo generator paints the mouth, in ROI pixels (320 x 320): centre and the
// half-axes of the fully open mouth. The demo avatar puts its closed mouth here.
struct DemoMouth {
  double centre_x = 160.0;
  double centre_y = 150.0;
  double half_width = 62.0;
  double half_height_open = 40.0;
};
inline constexpr DemoMouth kDemoMouth{};
// Loudness (0..1) at or below which the mouth is closed, and at or above which it is fully open.
inline constexpr float kDemoClosedLoudness = 0.18f;
inline constexpr float kDemoOpenLoudness = 0.40f;
// How much the open mouth darkens the ROI (1 would be black).
inline constexpr float kDemoMouthDarkness = 0.85f;

}  // namespace lipsync::infer
