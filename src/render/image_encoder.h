// Frame encoders: JPEG through TurboJPEG (one compressor per thread) and lossless PNG.
// Thread contract: both functions may be called from many threads at once.
#pragma once

#include <cstdint>
#include <opencv2/core/mat.hpp>
#include <string_view>
#include <vector>

namespace lipsync::render {

enum class ImageFormat { kJpeg, kPng };

// Encodes an 8-bit BGR image. Throws Error::Code::kInternal when the encoder fails.
std::vector<std::uint8_t> encode_jpeg(const cv::Mat& bgr, int quality);
std::vector<std::uint8_t> encode_png(const cv::Mat& bgr);
std::vector<std::uint8_t> encode_image(const cv::Mat& bgr, ImageFormat format, int jpeg_quality);

// "jpeg"/"png" and the file extension (".jpg"/".png").
std::string_view to_string(ImageFormat format);
std::string_view extension(ImageFormat format);

}  // namespace lipsync::render
