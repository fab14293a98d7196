#include "render/jpeg_splice.h"

#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

// jpeglib.h uses size_t and FILE without declaring them, and jerror.h needs jpeglib.h.
// clang-format off
#include <cstdio>
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include "core/check.h"
#include "core/error.h"
#include "core/stopwatch.h"
#include "render/compositor.h"

namespace lipsync::render {
namespace {

constexpr int kMcu = 16;  // 4:2:0: an MCU is 16 x 16 pixels

// libjpeg reports errors through error_exit, which must not return: it jumps back to the encoder
// with the message (C++ exceptions must not unwind through libjpeg's C frames).
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Where libjpeg writes: one malloc'd buffer that grows by doubling (plain C, so that nothing
// throws inside libjpeg; a failed allocation is a libjpeg error).
struct Destination {
  jpeg_destination_mgr base;
  unsigned char* data;
  std::size_t capacity;
  std::size_t size;
};

void init_destination(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<Destination*>(cinfo->dest);
  d->base.next_output_byte = d->data;
  d->base.free_in_buffer = d->capacity;
}

boolean grow_destination(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<Destination*>(cinfo->dest);
  auto* bigger = static_cast<unsigned char*>(std::realloc(d->data, d->capacity * 2));
  if (bigger == nullptr) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
  d->data = bigger;
  d->base.next_output_byte = d->data + d->capacity;
  d->base.free_in_buffer = d->capacity;
  d->capacity *= 2;
  return TRUE;
}

void term_destination(j_compress_ptr cinfo) {
  auto* d = reinterpret_cast<Destination*>(cinfo->dest);
  d->size = d->capacity - d->base.free_in_buffer;
}

// The encoding itself, with nothing that needs a destructor between setjmp and longjmp. Returns
// false (and the message in err) when libjpeg failed. dest->data is the caller's to free.
bool compress(const cv::Mat& bgr, int quality, int restart_mcus, Destination* dest,
              ErrorManager* err) {
  jpeg_compress_struct cinfo{};
  cinfo.err = jpeg_std_error(&err->base);
  err->base.error_exit = on_error;
  if (setjmp(err->jump) != 0) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  dest->base.init_destination = init_destination;
  dest->base.empty_output_buffer = grow_destination;
  dest->base.term_destination = term_destination;
  cinfo.dest = &dest->base;
  cinfo.image_width = static_cast<JDIMENSION>(bgr.cols);
  cinfo.image_height = static_cast<JDIMENSION>(bgr.rows);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_EXT_BGR;
  jpeg_set_defaults(&cinfo);  // YCbCr 4:2:0, standard Huffman tables
  jpeg_set_quality(&cinfo, quality, TRUE);
  // TurboJPEG's choice (encode_jpeg): the fast integer DCT below quality 96, the accurate above.
  cinfo.dct_method = quality >= 96 ? JDCT_ISLOW : JDCT_IFAST;
  cinfo.restart_interval = static_cast<unsigned int>(restart_mcus);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW rows[kMcu];
    const int first = static_cast<int>(cinfo.next_scanline);
    const int n = std::min(kMcu, bgr.rows - first);
    for (int i = 0; i < n; ++i) {
      // libjpeg's API takes non-const rows; it only reads them.
      rows[i] = const_cast<JSAMPROW>(bgr.ptr<unsigned char>(first + i));
    }
    jpeg_write_scanlines(&cinfo, rows, static_cast<JDIMENSION>(n));
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

// Splits the entropy-coded data after SOS at its restart markers.
void index_segments(SegmentedJpeg& jpeg) {
  const std::vector<std::uint8_t>& b = jpeg.bytes;
  std::size_t pos = 2;  // after SOI
  std::size_t data = 0;
  while (pos + 4 <= b.size()) {
    LIPSYNC_CHECK_EQ(b[pos], 0xFF);
    const std::uint8_t marker = b[pos + 1];
    const std::size_t length = (static_cast<std::size_t>(b[pos + 2]) << 8) | b[pos + 3];
    pos += 2 + length;
    if (marker == 0xDA) {  // SOS
      data = pos;
      break;
    }
  }
  if (data == 0) throw Error::internal("JPEG splice: the encoder wrote no scan");
  jpeg.header_bytes = data;
  jpeg.segments.clear();
  std::size_t start = data;
  for (std::size_t i = data; i + 1 < b.size(); ++i) {
    if (b[i] != 0xFF) continue;
    const std::uint8_t next = b[i + 1];
    if (next == 0x00) {  // a stuffed 0xFF data byte
      ++i;
      continue;
    }
    jpeg.segments.emplace_back(static_cast<std::uint32_t>(start),
                               static_cast<std::uint32_t>(i - start));
    if (next == 0xD9) break;  // EOI
    if (next < 0xD0 || next > 0xD7) {
      throw Error::internal("JPEG splice: unexpected marker in the scan");
    }
    start = i + 2;
    ++i;
  }
  const auto expected = static_cast<std::size_t>(jpeg.segments_per_row) * jpeg.mcu_rows;
  if (jpeg.segments.size() != expected) {
    throw Error::internal("JPEG splice: " + std::to_string(jpeg.segments.size()) +
                          " segments in the scan, expected " + std::to_string(expected));
  }
}

std::int64_t cache_key(int template_frame, int quality) {
  return static_cast<std::int64_t>(template_frame) * 128 + quality;
}

}  // namespace

int segment_mcus_for_width(int width) {
  LIPSYNC_CHECK(width >= 1);
  const int mcus = (width + kMcu - 1) / kMcu;
  for (int d = std::min(mcus, 8); d >= 4; --d) {
    if (mcus % d == 0) return d;
  }
  return mcus;  // no divisor from 4 to 8: one segment per row
}

SegmentedJpeg encode_jpeg_segmented(const cv::Mat& bgr, int quality, int segment_mcus) {
  LIPSYNC_CHECK(bgr.type() == CV_8UC3 && !bgr.empty());
  LIPSYNC_CHECK(quality >= 1 && quality <= 100);
  const int mcus_per_row = (bgr.cols + kMcu - 1) / kMcu;
  if (segment_mcus == 0) segment_mcus = segment_mcus_for_width(bgr.cols);
  LIPSYNC_CHECK(segment_mcus >= 1 && mcus_per_row % segment_mcus == 0 && segment_mcus <= 65535);
  SegmentedJpeg out;
  out.width = bgr.cols;
  out.height = bgr.rows;
  out.quality = quality;
  out.segment_mcus = segment_mcus;
  out.segments_per_row = mcus_per_row / segment_mcus;
  out.mcu_rows = (bgr.rows + kMcu - 1) / kMcu;
  Destination dest{};
  dest.capacity = bgr.total() / 4 + 4096;  // q75 720p frames take about a twentieth of that
  dest.data = static_cast<unsigned char*>(std::malloc(dest.capacity));
  if (dest.data == nullptr) throw Error::internal("libjpeg: out of memory");
  ErrorManager err{};
  const bool ok = compress(bgr, quality, segment_mcus, &dest, &err);
  if (ok) out.bytes.assign(dest.data, dest.data + dest.size);
  std::free(dest.data);
  if (!ok) throw Error::internal(std::string("libjpeg: ") + err.message);
  index_segments(out);
  return out;
}

cv::Rect splice_region(const SegmentedJpeg& base, const cv::Rect& changed) {
  const cv::Rect image(0, 0, base.width, base.height);
  LIPSYNC_CHECK((changed & image) == changed && !changed.empty());
  const int sw = base.segment_width();
  const int x0 = changed.x / sw * sw;
  const int y0 = changed.y / kMcu * kMcu;
  const int x1 = std::min(base.width, (changed.br().x + sw - 1) / sw * sw);
  const int y1 = std::min(base.height, (changed.br().y + kMcu - 1) / kMcu * kMcu);
  return {x0, y0, x1 - x0, y1 - y0};
}

std::vector<std::uint8_t> encode_jpeg_spliced(const SegmentedJpeg& base, const cv::Mat& patch,
                                              const cv::Rect& region) {
  LIPSYNC_CHECK(splice_region(base, region) == region);
  LIPSYNC_CHECK(patch.cols == region.width && patch.rows == region.height);
  const SegmentedJpeg part = encode_jpeg_segmented(patch, base.quality, base.segment_mcus);
  const int col0 = region.x / base.segment_width();
  const int row0 = region.y / kMcu;
  std::vector<std::uint8_t> out;
  out.reserve(base.bytes.size() + part.bytes.size() / 4);
  out.insert(out.end(), base.bytes.begin(),
             base.bytes.begin() + static_cast<std::ptrdiff_t>(base.header_bytes));
  int n = 0;
  for (int row = 0; row < base.mcu_rows; ++row) {
    for (int col = 0; col < base.segments_per_row; ++col, ++n) {
      const int prow = row - row0;
      const int pcol = col - col0;
      const bool inside =
          prow >= 0 && prow < part.mcu_rows && pcol >= 0 && pcol < part.segments_per_row;
      const SegmentedJpeg& from = inside ? part : base;
      const auto [offset, length] =
          from.segments[inside ? static_cast<std::size_t>(prow * part.segments_per_row + pcol)
                               : static_cast<std::size_t>(n)];
      if (n > 0) {  // RSTm before every segment but the first, m counting 0..7 from the first
        out.push_back(0xFF);
        out.push_back(static_cast<std::uint8_t>(0xD0 + (n - 1) % 8));
      }
      out.insert(out.end(), from.bytes.begin() + offset, from.bytes.begin() + offset + length);
    }
  }
  out.push_back(0xFF);
  out.push_back(0xD9);
  return out;
}

JpegSpliceCache::JpegSpliceCache(std::shared_ptr<const avatar::Avatar> avatar,
                                 std::size_t budget_bytes)
    : avatar_(std::move(avatar)), cache_(budget_bytes) {
  LIPSYNC_CHECK(avatar_ != nullptr);
}

std::vector<std::uint8_t> JpegSpliceCache::composite_and_encode(int template_frame,
                                                                std::span<const float> output,
                                                                int quality, double* composite_ms,
                                                                double* encode_ms) {
  core::Stopwatch sw;
  std::vector<std::uint8_t> bytes;
  if (const auto base = cache_.find(cache_key(template_frame, quality))) {
    const cv::Rect region =
        splice_region(*base, avatar::as_cv_rect(avatar_->crop_rect(template_frame)));
    thread_local cv::Mat patch;
    composite_region(*avatar_, template_frame, output, region, patch);
    if (composite_ms) *composite_ms = sw.elapsed_ms();
    sw.reset();
    bytes = encode_jpeg_spliced(*base, patch, region);
    spliced_.fetch_add(1, std::memory_order_relaxed);
  } else {
    thread_local cv::Mat frame;
    composite(*avatar_, template_frame, output, frame);
    if (composite_ms) *composite_ms = sw.elapsed_ms();
    sw.reset();
    bytes = encode_whole(template_frame, frame, quality);
  }
  if (encode_ms) *encode_ms = sw.elapsed_ms();
  return bytes;
}

std::vector<std::uint8_t> JpegSpliceCache::encode(int template_frame, const cv::Mat& frame,
                                                  int quality) {
  LIPSYNC_CHECK(frame.cols == avatar_->width() && frame.rows == avatar_->height());
  if (const auto base = cache_.find(cache_key(template_frame, quality))) {
    const cv::Rect region =
        splice_region(*base, avatar::as_cv_rect(avatar_->crop_rect(template_frame)));
    spliced_.fetch_add(1, std::memory_order_relaxed);
    return encode_jpeg_spliced(*base, frame(region), region);
  }
  return encode_whole(template_frame, frame, quality);
}

// The first frame on a template frame is encoded whole and kept: its segments outside the face's
// region are the template frame's, and the ones inside are replaced every time.
std::vector<std::uint8_t> JpegSpliceCache::encode_whole(int template_frame, const cv::Mat& frame,
                                                        int quality) {
  auto whole = std::make_shared<SegmentedJpeg>(encode_jpeg_segmented(frame, quality));
  std::vector<std::uint8_t> bytes = whole->bytes;
  const std::size_t size = whole->bytes.size() + whole->segments.size() * 8 + sizeof(*whole);
  (void)cache_.get_or_make(cache_key(template_frame, quality),
                           [&] { return std::make_pair(std::move(whole), size); });
  return bytes;
}

}  // namespace lipsync::render
