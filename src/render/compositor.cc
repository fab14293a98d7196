#include "render/compositor.h"

#include <algorithm>
#include <map>
#include <memory>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <tuple>

#include "avatar/avatar.h"
#include "contract/model_family.h"
#include "core/check.h"

namespace lipsync::render {

namespace {

// Steps 1-3: the generator output through the canvas, back at the crop's size (into `face`).
void make_face(const avatar::CropRect& rect, const cv::Mat& canvas, std::span<const float> output,
               cv::Mat& face) {
  constexpr int kRoi = contract::kRoiSize;
  constexpr std::size_t kPlane = static_cast<std::size_t>(kRoi) * kRoi;
  LIPSYNC_CHECK_EQ(output.size(), contract::kOutputSize);
  LIPSYNC_CHECK(canvas.rows == avatar::kCanvasSize && canvas.cols == avatar::kCanvasSize &&
                canvas.type() == CV_8UC3);
  // 1-2: pred = uint8(trunc(float32(out) * 255)), HWC BGR, into the canvas at [4:324].
  thread_local cv::Mat work;
  canvas.copyTo(work);
  for (int y = 0; y < kRoi; ++y) {
    unsigned char* row = work.ptr<unsigned char>(y + avatar::kRoiOffset) + avatar::kRoiOffset * 3;
    const std::size_t base = static_cast<std::size_t>(y) * kRoi;
    for (int x = 0; x < kRoi; ++x) {
      for (int c = 0; c < 3; ++c) {
        const float v = std::clamp(output[c * kPlane + base + x], 0.0f, 1.0f) * 255.0f;
        row[x * 3 + c] = static_cast<unsigned char>(v);  // truncation toward zero
      }
    }
  }
  // 3: back to the crop size.
  cv::resize(work, face, cv::Size(rect.width(), rect.height()), 0, 0, cv::INTER_CUBIC);
}

}  // namespace

void composite(const cv::Mat& frame, const avatar::CropRect& rect, const cv::Mat& canvas,
               std::span<const float> output, cv::Mat& dst) {
  thread_local cv::Mat face;
  make_face(rect, canvas, output, face);
  // 4: hard paste into a copy of the template frame.
  frame.copyTo(dst);
  face.copyTo(dst(avatar::as_cv_rect(rect)));
}

void make_face(const avatar::Avatar& avatar, int template_frame, std::span<const float> output,
               cv::Mat& face) {
  make_face(avatar.crop_rect(template_frame), *avatar.canvas(template_frame), output, face);
}

std::pair<BandStats, BandStats> face_band_stats(const avatar::Avatar& avatar, int template_frame,
                                                const cv::Mat& face) {
  const cv::Rect rect = avatar::as_cv_rect(avatar.crop_rect(template_frame));
  const Band band = ring_band(rect.width);
  return {band_stats(face, band.inset, band.width),
          band_stats((*avatar.frame(template_frame))(rect), band.inset, band.width)};
}

void composite_face(const avatar::Avatar& avatar, int template_frame, const cv::Mat& face,
                    const BlendOptions& blend, const ColorCorrection* correction, cv::Mat& dst) {
  // Hold the frame: the avatar's cache may drop its own reference while this copies.
  const std::shared_ptr<const cv::Mat> held = avatar.frame(template_frame);
  const cv::Mat& frame = *held;
  const cv::Rect rect = avatar::as_cv_rect(avatar.crop_rect(template_frame));
  frame.copyTo(dst);
  if (!blend.feather && correction == nullptr) {
    face.copyTo(dst(rect));
    return;
  }
  // The masks of the crop sizes this thread has seen (an avatar has a few).
  thread_local std::map<std::tuple<int, int, int>, cv::Mat> masks;
  const int px = blend.feather ? blend.feather_for(rect.width) : 0;
  auto it = masks.find({rect.width, rect.height, px});
  if (it == masks.end()) {
    if (masks.size() >= 64) masks.clear();
    it = masks
             .emplace(std::make_tuple(rect.width, rect.height, px),
                      px > 0 ? feather_mask(rect.size(), px)
                             : cv::Mat(rect.size(), CV_32FC1, cv::Scalar(1.0f)))
             .first;
  }
  blend_face(face, it->second, correction, dst(rect));
}

void composite(const avatar::Avatar& avatar, int template_frame, std::span<const float> output,
               const BlendOptions& blend, cv::Mat& dst) {
  thread_local cv::Mat face;
  make_face(avatar, template_frame, output, face);
  composite_face(avatar, template_frame, face, blend, dst);
}

void composite_face(const avatar::Avatar& avatar, int template_frame, const cv::Mat& face,
                    const BlendOptions& blend, cv::Mat& dst) {
  std::optional<ColorCorrection> k;
  if (blend.color_match) {
    const auto [generated, tmpl] = face_band_stats(avatar, template_frame, face);
    k = match_colors(generated, tmpl);
  }
  composite_face(avatar, template_frame, face, blend, k ? &*k : nullptr, dst);
}

void composite(const avatar::Avatar& avatar, int template_frame, std::span<const float> output,
               cv::Mat& dst) {
  composite(*avatar.frame(template_frame), avatar.crop_rect(template_frame),
            *avatar.canvas(template_frame), output, dst);
}

void composite_region(const avatar::Avatar& avatar, int template_frame,
                      std::span<const float> output, const cv::Rect& region, cv::Mat& dst) {
  // Hold the frame: the avatar's cache may drop its own reference while this copies.
  const std::shared_ptr<const cv::Mat> held = avatar.frame(template_frame);
  const cv::Mat& frame = *held;
  const avatar::CropRect& rect = avatar.crop_rect(template_frame);
  const cv::Rect face_rect = avatar::as_cv_rect(rect);
  LIPSYNC_CHECK((region & cv::Rect(0, 0, frame.cols, frame.rows)) == region);
  LIPSYNC_CHECK((face_rect & region) == face_rect);
  thread_local cv::Mat face;
  make_face(rect, *avatar.canvas(template_frame), output, face);
  frame(region).copyTo(dst);
  face.copyTo(dst(face_rect - region.tl()));
}

}  // namespace lipsync::render
