// OutputOptions: how frames are encoded on the way out: JPEG quality (streams, requests, frame
// folders) and the MP4's H.264 settings (`lipsync render -o OUT.mp4`). The `render.*` keys of
// this layer (render.batch is the pipeline's).
// Thread contract: plain value; validate() before use.
#pragma once

#include <string>

#include "core/config_table.h"

namespace lipsync::render {

struct OutputOptions {
  int jpeg_quality = 75;                // render.jpeg_quality (1..100)
  int mp4_crf = 20;                     // render.mp4_crf: H.264 constant rate factor (0..51)
  std::string mp4_preset = "veryfast";  // render.mp4_preset: an x264 preset
  int mp4_audio_bitrate = 64000;        // AAC bits per second (not a config key)

  // Throws Error::Code::kInvalidInput naming the key.
  void validate() const;
  static const core::ConfigTable<OutputOptions>& config();
};

}  // namespace lipsync::render
