#include "pipeline/frame_sinks.h"

#include <fstream>

#include "avatar/avatar.h"
#include "core/error.h"

namespace lipsync::pipeline {

namespace fs = std::filesystem;

Mp4Sink::Mp4Sink(const fs::path& path, int width, int height, const render::OutputOptions& options)
    : writer_(path, width, height, /*with_audio=*/true, options) {}

void Mp4Sink::add_audio(std::span<const float> samples) {
  writer_.add_audio(samples);
}

void Mp4Sink::write(int, const cv::Mat& frame, std::vector<std::uint8_t>) {
  writer_.write(frame);
}

void Mp4Sink::finish() {
  writer_.finish();
}

ImageFolderSink::ImageFolderSink(const fs::path& dir, render::ImageFormat format, int jpeg_quality)
    : dir_(dir), format_(format), jpeg_quality_(jpeg_quality) {
  std::error_code ec;
  if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec)) {
    throw Error::invalid_input("output " + dir_.string() +
                               " exists and is not a folder (an .mp4 name makes a video)");
  }
  staging_ = dir_ / ".lipsync-partial";
  fs::remove_all(staging_, ec);
  if (!fs::create_directories(staging_, ec)) {
    throw Error::invalid_input("output " + dir_.string() + ": cannot create " + staging_.string() +
                               ": " + ec.message());
  }
}

ImageFolderSink::~ImageFolderSink() {
  std::error_code ec;
  if (!finished_) {
    fs::remove_all(staging_, ec);
    // A folder this sink created and left empty goes too.
    if (fs::is_empty(dir_, ec)) fs::remove(dir_, ec);
  }
}

SinkFormat ImageFolderSink::format() const {
  return {format_ == render::ImageFormat::kJpeg ? FrameEncoding::kJpeg : FrameEncoding::kPng,
          jpeg_quality_, false};
}

void ImageFolderSink::write(int index, const cv::Mat&, std::vector<std::uint8_t> encoded) {
  const fs::path path = staging_ / avatar::format_frame_pattern(
                                       "%05d" + std::string(render::extension(format_)), index);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(encoded.data()),
            static_cast<std::streamsize>(encoded.size()));
  if (!out) throw Error::invalid_input("output: cannot write " + path.string());
  ++written_;
}

void ImageFolderSink::finish() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(staging_)) {
    fs::rename(entry.path(), dir_ / entry.path().filename(), ec);
    if (ec) {
      throw Error::invalid_input("output: cannot move " + entry.path().string() + " into " +
                                 dir_.string() + ": " + ec.message());
    }
  }
  fs::remove_all(staging_, ec);
  finished_ = true;
}

}  // namespace lipsync::pipeline
