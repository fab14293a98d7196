// Reads an MP4's streams with libavformat, counting video packets, for tests of the MP4 output.
#pragma once

#include <filesystem>
#include <string>

namespace lipsync::testing {

struct MediaProbe {
  int video_streams = 0;
  int audio_streams = 0;
  std::string video_codec;
  std::string audio_codec;
  int video_frames = 0;  // video packets (one per frame for H.264 in MP4)
  int width = 0;
  int height = 0;
  double video_seconds = 0;  // frames / frame rate
  double audio_seconds = 0;  // audio stream duration
};

MediaProbe probe_media(const std::filesystem::path& path);

}  // namespace lipsync::testing
