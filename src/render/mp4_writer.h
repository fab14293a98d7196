// Mp4Writer: H.264 video (yuv420p, CRF, 25 fps) plus the speech as AAC in an MP4, through
// FFmpeg's libraries. Audio is handed in as it is read (add_audio) and interleaved with the video
// as frames arrive; at the end it is cut or padded to the video's length (frames x 640 samples),
// so the two durations match. Only audio not yet encoded is held. The file is written as
// OUT.partial and renamed by finish(); a writer destroyed before finish() removes it.
// Thread contract: one thread at a time.
#pragma once

#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <span>

#include "render/output_options.h"

namespace lipsync::render {

class Mp4Writer {
 public:
  // width x height frames (odd sizes lose their last row/column: yuv420p needs even sizes), with
  // an AAC track when `with_audio`. Throws Error::Code::kInvalidInput for a path that cannot be
  // created or a bad option, kUnavailable when FFmpeg lacks an encoder.
  Mp4Writer(const std::filesystem::path& path, int width, int height, bool with_audio,
            const OutputOptions& options);
  ~Mp4Writer();
  Mp4Writer(const Mp4Writer&) = delete;
  Mp4Writer& operator=(const Mp4Writer&) = delete;

  // Appends the next 16 kHz mono samples of the audio track (in order; any chunk size).
  void add_audio(std::span<const float> samples);
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
