// Mp4Writer: H.264 video (yuv420p, CRF, 25 fps) plus the speech as AAC in an MP4, through
// FFmpeg's libraries. Audio is interleaved with the video as frames arrive and cut or padded to
// the video's length, so the two durations match. The file is written as OUT.partial and renamed
// by finish(); a writer destroyed before finish() removes it.
// Thread contract: one thread at a time.
#pragma once

#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <span>
#include <string>

namespace lipsync::render {

struct Mp4Options {
  int crf = 20;                     // config key render.mp4_crf (0..51)
  std::string preset = "veryfast";  // config key render.mp4_preset (an x264 preset)
  int audio_bitrate = 64000;        // bits per second
};

class Mp4Writer {
 public:
  // width x height frames (odd sizes lose their last row/column: yuv420p needs even sizes);
  // `audio` is 16 kHz mono (may be empty: no audio stream); it is borrowed and must outlive
  // the writer.
  Mp4Writer(const std::filesystem::path& path, int width, int height, std::span<const float> audio,
            const Mp4Options& options);
  ~Mp4Writer();
  Mp4Writer(const Mp4Writer&) = delete;
  Mp4Writer& operator=(const Mp4Writer&) = delete;

  // Appends the next 8-bit BGR frame (in order).
  void write(const cv::Mat& bgr);
  // Flushes the encoders, writes the trailer and renames the file into place.
  void finish();
  int frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::render
