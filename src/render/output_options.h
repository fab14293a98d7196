// OutputOptions: how frames are encoded on the way out: JPEG quality (streams, requests, frame
// folders) and the MP4's H.264 settings (`lipsync render -o OUT.mp4`). The `render.*` keys of
// this layer (render.batch is the pipeline's).
// Thread contract: plain value; validate() before use.
#pragma once

#include <string>

#include "core/config_table.h"

namespace lipsync::render {

// How a generated face goes back into its frame (issue 27). paste + off is the reference's hard
// paste (REFERENCE.md §6); feather blends the crop in through a mask that falls to 0 at the crop
// border; ring first matches the generated crop's colours to the template's in a band inside the
// border (render/seams.h), smoothed over a stream's last color_match_frames frames.
// The defaults are feather + ring; reference() is the reference pipeline, byte for byte (what
// every parity test against the Python frames pins).
struct BlendOptions {
  bool feather = true;         // render.blend: paste | feather
  bool color_match = true;     // render.color_match: off | ring
  int feather_px = 0;          // render.feather_px: 0 = 6 % of the crop width
  int color_match_frames = 5;  // render.color_match_frames
  static BlendOptions reference() { return {false, false, 0, 5}; }
  // The feather width for a crop `crop_width` wide.
  int feather_for(int crop_width) const;
};

struct OutputOptions {
  int jpeg_quality = 75;                // render.jpeg_quality (1..100)
  int mp4_crf = 20;                     // render.mp4_crf: H.264 constant rate factor (0..51)
  std::string mp4_preset = "veryfast";  // render.mp4_preset: an x264 preset
  int mp4_audio_bitrate = 64000;        // AAC bits per second (not a config key)
  std::string blend = "feather";        // render.blend: paste | feather
  std::string color_match = "ring";     // render.color_match: off | ring
  int feather_px = 0;                   // render.feather_px (0..200; 0: 6 % of the crop width)
  int color_match_frames = 5;           // render.color_match_frames (1..100)

  BlendOptions blend_options() const;

  // Throws Error::Code::kInvalidInput naming the key.
  void validate() const;
  static const core::ConfigTable<OutputOptions>& config();
};

}  // namespace lipsync::render
