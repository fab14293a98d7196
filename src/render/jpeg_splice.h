// Spliced JPEG frames: a composited frame differs from its template frame only around the face,
// so after a template frame's first frame is encoded whole, the next frames on that template
// frame re-encode only the face's region and splice its bytes into the first one's.
//
// How: frames are encoded with a restart marker every `segment_mcus` MCUs (16 x 16 pixels at
// 4:2:0), a divisor of the MCUs in a row. Each segment between two markers is entropy coded on
// its own (the DC predictions restart), so its bytes depend only on its own pixels, and the
// Huffman and quantisation tables are the standard ones for the quality. A region aligned to
// segments, encoded alone with the same settings, gives exactly the segments a whole-frame
// encoding would have there: the spliced frame is byte for byte the frame encoded whole (a
// test holds it to that). Restart markers cost about 2.5 bytes per segment (about 1 % at 720p).
//
// Thread contract: encode_jpeg_segmented and encode_jpeg_spliced may be called from any thread;
// JpegSpliceCache may be used from any number of threads at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <span>
#include <vector>

#include "avatar/avatar.h"
#include "core/lru_cache.h"

namespace lipsync::render {

// A JPEG with restart markers and where each of its entropy-coded segments lies.
struct SegmentedJpeg {
  std::vector<std::uint8_t> bytes;
  int width = 0;
  int height = 0;
  int quality = 0;
  int segment_mcus = 0;      // MCUs per segment (the restart interval)
  int segments_per_row = 0;  // segments in one MCU row
  int mcu_rows = 0;
  std::size_t header_bytes = 0;  // everything before the first segment (through SOS)
  // Offset and length of each segment's bytes (markers excluded), in raster order.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> segments;

  int segment_width() const { return segment_mcus * 16; }
};

// The restart interval used for a frame `width` pixels wide: the largest divisor of its MCUs per
// row up to 8 (128 pixels), or a whole row when that divisor is under 4.
int segment_mcus_for_width(int width);

// Encodes an 8-bit BGR image at `quality` (1..100), 4:2:0, with restart markers every
// `segment_mcus` MCUs (0: segment_mcus_for_width), and indexes its segments. Decodes to the same
// pixels as encode_jpeg's output. Throws Error::Code::kInternal when libjpeg fails.
SegmentedJpeg encode_jpeg_segmented(const cv::Mat& bgr, int quality, int segment_mcus = 0);

// `changed` (a rectangle of the image) widened to whole segments and MCU rows, within the image.
cv::Rect splice_region(const SegmentedJpeg& base, const cv::Rect& changed);

// `base` with the pixels of splice_region(base, r) replaced by `patch` (exactly that region's
// size, 8-bit BGR): the bytes encode_jpeg_segmented gives for the whole new image.
std::vector<std::uint8_t> encode_jpeg_spliced(const SegmentedJpeg& base, const cv::Mat& patch,
                                              const cv::Rect& region);

// One avatar's frames as last encoded whole, per template frame and quality, byte-budgeted
// (least recently used go first; budget 0 keeps nothing). The generated face always lies in the
// template frame's crop rect, so a template frame's region to re-encode never changes.
class JpegSpliceCache {
 public:
  JpegSpliceCache(std::shared_ptr<const avatar::Avatar> avatar, std::size_t budget_bytes);

  // Composites the generator output [3][320][320] into template frame `template_frame` and
  // encodes it at `quality`, splicing when that template frame has been encoded before.
  // `composite_ms` and `encode_ms` (optional) receive the time spent on each.
  std::vector<std::uint8_t> composite_and_encode(int template_frame, std::span<const float> output,
                                                 int quality, double* composite_ms = nullptr,
                                                 double* encode_ms = nullptr);

  // Encodes `frame`, a picture of template frame `template_frame` that differs from it only in
  // its crop rect (a composite, a blend), the same way.
  std::vector<std::uint8_t> encode(int template_frame, const cv::Mat& frame, int quality);

  const std::shared_ptr<const avatar::Avatar>& avatar() const { return avatar_; }
  std::size_t used_bytes() const { return cache_.used_bytes(); }
  std::size_t spliced_frames() const { return spliced_.load(); }

 private:
  // Encodes `frame` whole and keeps it as template frame `template_frame`'s.
  std::vector<std::uint8_t> encode_whole(int template_frame, const cv::Mat& frame, int quality);

  std::shared_ptr<const avatar::Avatar> avatar_;
  core::LruCache<std::int64_t, SegmentedJpeg> cache_;
  std::atomic<std::size_t> spliced_{0};
};

}  // namespace lipsync::render
