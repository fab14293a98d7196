#include "render/image_encoder.h"

#include <turbojpeg.h>

#include <opencv2/imgcodecs.hpp>
#include <string>

#include "core/check.h"
#include "core/error.h"

namespace lipsync::render {
namespace {

// One TurboJPEG compressor per thread, destroyed with the thread.
class Compressor {
 public:
  Compressor() : handle_(tjInitCompress()) {}
  ~Compressor() {
    if (handle_ != nullptr) tjDestroy(handle_);
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;
  tjhandle get() const { return handle_; }

 private:
  tjhandle handle_;
};

}  // namespace

std::vector<std::uint8_t> encode_jpeg(const cv::Mat& bgr, int quality) {
  LIPSYNC_CHECK(bgr.type() == CV_8UC3);
  LIPSYNC_CHECK(quality >= 1 && quality <= 100);
  thread_local Compressor compressor;
  if (compressor.get() == nullptr) throw Error::internal("TurboJPEG: tjInitCompress failed");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(compressor.get(), bgr.data, bgr.cols, static_cast<int>(bgr.step),
                             bgr.rows, TJPF_BGR, &buffer, &size, TJSAMP_420, quality, 0);
  if (rc != 0) {
    const std::string message = tjGetErrorStr2(compressor.get());
    tjFree(buffer);
    throw Error::internal("TurboJPEG: " + message);
  }
  std::vector<std::uint8_t> out(buffer, buffer + size);
  tjFree(buffer);
  return out;
}

std::vector<std::uint8_t> encode_png(const cv::Mat& bgr) {
  std::vector<std::uint8_t> out;
  // Level 1: the fastest zlib setting; PNG is lossless at every level.
  if (!cv::imencode(".png", bgr, out, {cv::IMWRITE_PNG_COMPRESSION, 1})) {
    throw Error::internal("PNG encoding failed");
  }
  return out;
}

std::vector<std::uint8_t> encode_image(const cv::Mat& bgr, ImageFormat format, int jpeg_quality) {
  return format == ImageFormat::kJpeg ? encode_jpeg(bgr, jpeg_quality) : encode_png(bgr);
}

std::string_view to_string(ImageFormat format) {
  return format == ImageFormat::kJpeg ? "jpeg" : "png";
}

std::string_view extension(ImageFormat format) {
  return format == ImageFormat::kJpeg ? ".jpg" : ".png";
}

}  // namespace lipsync::render
