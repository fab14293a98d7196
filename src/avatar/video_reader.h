// VideoReader: decodes a video file frame by frame into BGR images through FFmpeg's libraries
// (libavformat, libavcodec, libswscale), for importing template videos. Only local files of
// video containers are opened (no playlist, list or image sequence that would read other files,
// no protocol but file), and every frame must have the first frame's size.
// Thread contract: one thread at a time.
#pragma once

#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>

namespace lipsync::avatar {

class VideoReader {
 public:
  // Opens the first video stream. Throws Error::Code::kNotFound for a missing file and
  // kInvalidInput naming the file when it is not a decodable video.
  explicit VideoReader(const std::filesystem::path& path);
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  // The next frame as 8-bit BGR; false at the end of the stream. Throws kInvalidInput naming the
  // frame when its size differs from frame 0's.
  bool read(cv::Mat& out);
  int width() const;
  int height() const;
  // Frames per second from the container (0 when unknown).
  double fps() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when the file opens as a container with a video stream (used to tell a video from a
// folder or an image).
bool looks_like_video(const std::filesystem::path& path);

}  // namespace lipsync::avatar
