#include "render/seams.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/check.h"

namespace lipsync::render {
namespace {

// Distance of pixel (x, y) of a w x h image to its nearest edge: 0 on the edge.
int edge_distance(int x, int y, int w, int h) {
  return std::min(std::min(x, w - 1 - x), std::min(y, h - 1 - y));
}

}  // namespace

ChannelValues border_step(const cv::Mat& composited, const cv::Mat& tmpl, const cv::Rect& rect,
                          int gap) {
  LIPSYNC_CHECK(composited.type() == CV_8UC3 && tmpl.type() == CV_8UC3 &&
                composited.size() == tmpl.size());
  LIPSYNC_CHECK(gap >= 0 && rect.width > 2 * gap + 1 && rect.height > 2 * gap + 1 &&
                (rect & cv::Rect(0, 0, tmpl.cols, tmpl.rows)) == rect);
  std::array<double, 3> sum{};
  std::int64_t n = 0;
  const auto add = [&](cv::Point in, cv::Point out) {
    const auto& fi = composited.at<cv::Vec3b>(in);
    const auto& fo = composited.at<cv::Vec3b>(out);
    const auto& ti = tmpl.at<cv::Vec3b>(in);
    const auto& to = tmpl.at<cv::Vec3b>(out);
    for (int c = 0; c < 3; ++c) {
      sum[c] += std::abs((double(fi[c]) - fo[c]) - (double(ti[c]) - to[c]));
    }
    ++n;
  };
  const int x1 = rect.x, y1 = rect.y, x2 = rect.x + rect.width, y2 = rect.y + rect.height;
  for (int x = x1 + gap; x < x2 - gap; ++x) {
    if (y1 - 1 - gap >= 0) add({x, y1 + gap}, {x, y1 - 1 - gap});
    if (y2 + gap < tmpl.rows) add({x, y2 - 1 - gap}, {x, y2 + gap});
  }
  for (int y = y1 + gap; y < y2 - gap; ++y) {
    if (x1 - 1 - gap >= 0) add({x1 + gap, y}, {x1 - 1 - gap, y});
    if (x2 + gap < tmpl.cols) add({x2 - 1 - gap, y}, {x2 + gap, y});
  }
  ChannelValues out;
  for (int c = 0; c < 3; ++c) out.value[c] = n > 0 ? sum[c] / double(n) : 0.0;
  return out;
}

cv::Rect generated_region(const cv::Rect& crop) {
  const int inset = static_cast<int>(std::ceil(4.0 * crop.width / 328.0));
  return {crop.x + inset, crop.y + inset, crop.width - 2 * inset, crop.height - 2 * inset};
}

double seam_step(const cv::Mat& composited, const cv::Mat& tmpl, const cv::Rect& crop) {
  return std::max(border_step(composited, tmpl, generated_region(crop), 1).mean(),
                  border_step(composited, tmpl, crop).mean());
}

int default_feather_px(int crop_width) {
  return std::max(1, static_cast<int>(std::lround(0.06 * crop_width)));
}

cv::Mat feather_mask(cv::Size size, int feather_px) {
  LIPSYNC_CHECK(feather_px >= 1 && size.width >= 1 && size.height >= 1);
  cv::Mat alpha(size, CV_32FC1);
  for (int y = 0; y < size.height; ++y) {
    float* row = alpha.ptr<float>(y);
    for (int x = 0; x < size.width; ++x) {
      // The border pixel's centre is half a pixel in: t = 0.5 / feather there, 1 from
      // feather_px - 0.5 in.
      const double t =
          std::min(1.0, (edge_distance(x, y, size.width, size.height) + 0.5) / feather_px);
      row[x] = static_cast<float>(t * t * (3.0 - 2.0 * t));
    }
  }
  return alpha;
}

BandStats band_stats(const cv::Mat& image, int inset, int width) {
  LIPSYNC_CHECK(image.type() == CV_8UC3 && inset >= 0 && width >= 1);
  std::array<double, 3> sum{}, sum2{};
  std::int64_t n = 0;
  const auto add_span = [&](const cv::Vec3b* row, int y, int from, int to) {
    for (int x = from; x < to; ++x) {
      const int d = edge_distance(x, y, image.cols, image.rows);
      if (d < inset || d >= inset + width) continue;
      for (int c = 0; c < 3; ++c) {
        sum[c] += row[x][c];
        sum2[c] += double(row[x][c]) * row[x][c];
      }
      ++n;
    }
  };
  for (int y = 0; y < image.rows; ++y) {
    const int row_distance = std::min(y, image.rows - 1 - y);
    if (row_distance < inset) continue;  // every pixel of the row is nearer the edge
    const auto* row = image.ptr<cv::Vec3b>(y);
    if (row_distance < inset + width) {
      add_span(row, y, 0, image.cols);
      continue;
    }
    // Between the band's rows only its two column strips can be in it.
    const int left_end = std::min(inset + width, image.cols);
    add_span(row, y, 0, left_end);
    add_span(row, y, std::max(left_end, image.cols - inset - width), image.cols);
  }
  BandStats s;
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = n > 0 ? sum[c] / double(n) : 0.0;
    s.stddev[c] = n > 0 ? std::sqrt(std::max(0.0, sum2[c] / double(n) - s.mean[c] * s.mean[c])) : 0;
  }
  return s;
}

Band ring_band(int crop_width) {
  const double scale = crop_width / 328.0;  // crop pixels per canvas pixel
  return {static_cast<int>(std::ceil(5 * scale)),
          std::max(2, static_cast<int>(std::lround(8 * scale)))};
}

ColorCorrection match_colors(const BandStats& generated, const BandStats& tmpl) {
  ColorCorrection k;
  for (int c = 0; c < 3; ++c) {
    // A flat band (stddev near 0) keeps gain 1: only the mean is matched.
    const double gain = generated.stddev[c] > 1.0 && tmpl.stddev[c] > 1.0
                            ? tmpl.stddev[c] / generated.stddev[c]
                            : 1.0;
    k.gain[c] = std::clamp(gain, 0.5, 2.0);
    k.bias[c] = tmpl.mean[c] - k.gain[c] * generated.mean[c];
  }
  return k;
}

void blend_face(const cv::Mat& face, const cv::Mat& alpha, const ColorCorrection* correction,
                cv::Mat dst) {
  LIPSYNC_CHECK(face.type() == CV_8UC3 && dst.type() == CV_8UC3 && alpha.type() == CV_32FC1 &&
                face.size() == dst.size() && alpha.size() == dst.size());
  // The correction as a table per channel: 256 entries, rounded and clamped once.
  std::array<std::array<float, 256>, 3> lut;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const double w = correction != nullptr ? correction->gain[c] * v + correction->bias[c] : v;
      lut[c][v] = static_cast<float>(std::clamp(std::round(w), 0.0, 255.0));
    }
  }
  for (int y = 0; y < dst.rows; ++y) {
    const auto* f = face.ptr<cv::Vec3b>(y);
    const float* a = alpha.ptr<float>(y);
    auto* d = dst.ptr<cv::Vec3b>(y);
    for (int x = 0; x < dst.cols; ++x) {
      for (int c = 0; c < 3; ++c) {
        const float g = lut[c][f[x][c]];
        if (a[x] >= 1.0f) {
          d[x][c] = static_cast<std::uint8_t>(g);
        } else {
          d[x][c] = static_cast<std::uint8_t>(std::lround(a[x] * g + (1.0f - a[x]) * d[x][c]));
        }
      }
    }
  }
}

}  // namespace lipsync::render
