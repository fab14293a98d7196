// The FrameSinks of `lipsync render` and `lipsync bench render`: an MP4 file with the audio, a
// folder of numbered PNG or JPEG frames, and a sink that encodes JPEGs and drops them.
// Each file sink makes its output visible only in finish(): an MP4 is written as OUT.partial and
// renamed; frames go to a hidden staging folder and are moved in. A sink destroyed before
// finish() removes what it wrote.
// Thread contract: as FrameSink (write(), add_audio() and finish() one call at a time).
#pragma once

#include <filesystem>
#include <memory>
#include <span>

#include "pipeline/offline_renderer.h"
#include "render/image_encoder.h"
#include "render/mp4_writer.h"
#include "render/output_options.h"

namespace lipsync::pipeline {

// An MP4 with the audio the renderer reads (add_audio) as its AAC track.
class Mp4Sink : public FrameSink {
 public:
  Mp4Sink(const std::filesystem::path& path, int width, int height,
          const render::OutputOptions& options);
  void add_audio(std::span<const float> samples) override;
  void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> encoded) override;
  void finish() override;

 private:
  render::Mp4Writer writer_;
};

class ImageFolderSink : public FrameSink {
 public:
  // Frames become DIR/%05d.png (or .jpg). DIR may exist (its other files are left alone).
  ImageFolderSink(const std::filesystem::path& dir, render::ImageFormat format, int jpeg_quality);
  ~ImageFolderSink() override;
  SinkFormat format() const override;
  void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> encoded) override;
  void finish() override;

 private:
  std::filesystem::path dir_;
  std::filesystem::path staging_;
  render::ImageFormat format_;
  int jpeg_quality_;
  int written_ = 0;
  bool finished_ = false;
};

// Encodes every frame as JPEG and keeps only the byte count (benchmarks).
class DiscardingJpegSink : public FrameSink {
 public:
  explicit DiscardingJpegSink(int quality) : quality_(quality) {}
  SinkFormat format() const override { return {FrameEncoding::kJpeg, quality_, false}; }
  void write(int, const cv::Mat&, std::vector<std::uint8_t> encoded) override {
    bytes_ += encoded.size();
  }
  void finish() override {}
  std::size_t bytes() const { return bytes_; }

 private:
  int quality_;
  std::size_t bytes_ = 0;
};

}  // namespace lipsync::pipeline
