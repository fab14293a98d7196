// Seams: how visible the pasted face is in a composited frame, and the building blocks that hide
// it (issue 27): a feather mask over the crop, and a colour correction that matches the
// generated crop's colours to the template's in a band just inside the crop border.
//
// The border step measures a seam: over the crop rect's border pixels, the mean per channel of
// |(F_in - F_out) - (T_in - T_out)|, F the composited frame, T the template, in and out the
// pixels just inside and just outside the border. The template's own step across the border is
// taken away, so only what compositing added is left: a pasted crop whose colours drift by d
// shows a step of about d; a seamless one about 0.
// Thread contract: stateless functions.
#pragma once

#include <array>
#include <opencv2/core/mat.hpp>

namespace lipsync::render {

// Per channel (B, G, R), in 8-bit levels.
struct ChannelValues {
  std::array<double, 3> value{};
  double mean() const { return (value[0] + value[1] + value[2]) / 3.0; }
};

// The border step of `composited` against `tmpl` (both CV_8UC3, one size) around `rect`, the
// pixels compared `gap` pixels away from the edge on either side (0: the two touching it; a
// seam softened by a resize needs 1 to be seen whole); the edges with no pixel that far outside
// are left out. Requires: rect inside the frame, larger than 2 gap + 1 on each side.
ChannelValues border_step(const cv::Mat& composited, const cv::Mat& tmpl, const cv::Rect& rect,
                          int gap = 0);

// Where a pasted generator output begins inside crop rect `crop`: the reference's 328 x 328
// round trip keeps the template's pixels in the outer 4 of 328 (REFERENCE.md §6), so the seam
// of a plain paste lies there, not on the crop's own border.
cv::Rect generated_region(const cv::Rect& crop);

// The seam compositing left around crop rect `crop` (levels, the mean over channels): the larger
// of the border step where a paste's generated pixels begin (generated_region, one pixel away)
// and the step at the crop border itself (where a feather ends). One measure for every blend.
double seam_step(const cv::Mat& composited, const cv::Mat& tmpl, const cv::Rect& crop);

// The feather mask of a crop of `size`: CV_32FC1, 1 from `feather_px` inside the border on, and
// falling smoothly (a smoothstep of the distance to the nearest edge) to 0 at the border. Values
// are symmetric: the mask of a crop is its mirror image's mirror. Requires: feather_px >= 1.
cv::Mat feather_mask(cv::Size size, int feather_px);

// The feather width for a crop `crop_width` wide when render.feather_px is 0: 6 % of it, at
// least 1 pixel.
int default_feather_px(int crop_width);

// Per-channel mean and standard deviation of a CV_8UC3 image over a band: the pixels whose
// distance to the nearest edge (0 on the edge) is in [inset, inset + width).
struct BandStats {
  std::array<double, 3> mean{};
  std::array<double, 3> stddev{};
};
BandStats band_stats(const cv::Mat& image, int inset, int width);

// The band of a crop `crop_width` wide whose colours are matched: just inside the pixels that
// keep the template's in the reference's 328 x 328 round trip (its outer 4), about 8 of those
// pixels wide.
struct Band {
  int inset = 0;
  int width = 1;
};
Band ring_band(int crop_width);

// An affine correction per channel, v' = gain * v + bias (8-bit levels).
struct ColorCorrection {
  std::array<double, 3> gain{1, 1, 1};
  std::array<double, 3> bias{0, 0, 0};
};
// The correction that gives `generated`'s band the mean and standard deviation of `tmpl`'s.
// The gain is kept in [0.5, 2] (a band of nearly flat colour says little about contrast).
ColorCorrection match_colors(const BandStats& generated, const BandStats& tmpl);

// `face` (CV_8UC3, the generated crop at the crop's size) corrected by `correction` when given,
// blended into `dst` (CV_8UC3, the template's crop, same size) by `alpha` (feather_mask of that
// size): dst = alpha * face' + (1 - alpha) * dst, rounded. Where alpha is 1, dst becomes face'
// exactly.
void blend_face(const cv::Mat& face, const cv::Mat& alpha, const ColorCorrection* correction,
                cv::Mat dst);

}  // namespace lipsync::render
