// Compositor: puts a generator output back into its template frame with the reference's round
// trip (REFERENCE.md §6): truncate to uint8, write into rows/cols 4..323 of the 328 x 328 canvas,
// INTER_CUBIC back to the crop size, hard paste into a copy of the template frame.
// Thread contract: stateless; concurrent calls must use different destinations.
#pragma once

#include <opencv2/core/mat.hpp>
#include <span>
#include <utility>

#include "avatar/avatar.h"
#include "avatar/crop_rect.h"
#include "render/output_options.h"
#include "render/seams.h"

namespace lipsync::render {

// Writes into `dst` (reallocated only when its size or type differs, so a reused Mat is a
// pooled frame buffer) the template `frame` with the output [3][320][320] (BGR planes, values in
// (0, 1)) composited into `rect` through `canvas` (the frame's 328 x 328 cubic crop).
// Output values outside [0, 1] are clamped before the truncation (a trained sigmoid never
// produces them).
void composite(const cv::Mat& frame, const avatar::CropRect& rect, const cv::Mat& canvas,
               std::span<const float> output, cv::Mat& dst);

// The same for template frame `template_frame` of an avatar (its frame, crop rect and cached
// canvas): what every renderer and server path calls.
void composite(const avatar::Avatar& avatar, int template_frame, std::span<const float> output,
               cv::Mat& dst);

// Steps 1-3 alone: the generated face, the output through the canvas at the crop's size.
void make_face(const avatar::Avatar& avatar, int template_frame, std::span<const float> output,
               cv::Mat& face);

// The band statistics ring matching compares (seams.h ring_band): the face's, its template
// crop's.
std::pair<BandStats, BandStats> face_band_stats(const avatar::Avatar& avatar, int template_frame,
                                                const cv::Mat& face);

// Template frame `template_frame` with `face` put back into its crop rect as `blend` says:
// pasted (step 4), or blended through the feather mask after `correction` when given.
void composite_face(const avatar::Avatar& avatar, int template_frame, const cv::Mat& face,
                    const BlendOptions& blend, const ColorCorrection* correction, cv::Mat& dst);

// composite_face() with ring's correction (when `blend` asks for it) made from this face alone.
void composite_face(const avatar::Avatar& avatar, int template_frame, const cv::Mat& face,
                    const BlendOptions& blend, cv::Mat& dst);

// composite() as `blend` says, ring's correction made from this frame alone (a picture outside
// a stream of frames: a live session's fade).
void composite(const avatar::Avatar& avatar, int template_frame, std::span<const float> output,
               const BlendOptions& blend, cv::Mat& dst);

// Only `region` of that composite (a rectangle of the frame holding its crop rect): `dst`
// becomes region.size(), equal to the full composite's pixels there.
void composite_region(const avatar::Avatar& avatar, int template_frame,
                      std::span<const float> output, const cv::Rect& region, cv::Mat& dst);

}  // namespace lipsync::render
