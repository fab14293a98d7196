// The demo model family's one shared fact: where the demo generator paints the mouth in the ROI
// and how loud the audio must be to open it. The demo models (modelgen/) paint it there and the
// demo avatar (avatar/) draws its own mouth there; header-only, so neither links the other.
// Thread contract: constants only.
#pragma once

namespace lipsync::contract {

// Where the demo generator paints the mouth, in ROI pixels (320 x 320): centre and the
// half-axes of the fully open mouth. The demo avatar's talking template frames open theirs here
// too (scaled by how open they are).
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

// The closed mouth, in the demo avatar's own units: a smile (the lower half of an ellipse centred
// on the mouth centre) of these half-axes and stroke width, times the avatar's scale (its height /
// 720), in this BGR colour. The demo avatar's crop maps 200 of those units onto the 328-pixel
// canvas, so in ROI pixels each is kDemoRoiPerUnit; the demo generator draws the same smile there.
struct DemoLips {
  double half_width = 34.0;
  double half_height = 6.0;
  double stroke = 4.0;
  double blue = 60.0, green = 50.0, red = 150.0;  // 0..255
};
inline constexpr DemoLips kDemoLips{};
inline constexpr double kDemoRoiPerUnit = 328.0 / 200.0;
// The region the demo generator repaints as a closed mouth, whatever the ROI holds there (a
// talking template's open mouth): the open mouth's ellipse grown by this many ROI pixels.
inline constexpr double kDemoMouthRegionMargin = 8.0;

}  // namespace lipsync::contract
