#include "render/output_options.h"

namespace lipsync::render {

const core::ConfigTable<OutputOptions>& OutputOptions::config() {
  static const auto table = [] {
    std::vector<std::pair<std::string, std::string>> presets;
    for (const char* p : {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                          "slower", "veryslow"}) {
      presets.emplace_back(p, p);
    }
    return core::ConfigTable<OutputOptions>("render")
        .integer("jpeg_quality", &OutputOptions::jpeg_quality, 1, 100,
                 "JPEG quality of streamed and returned frames and of `--format jpeg` folders")
        .integer("mp4_crf", &OutputOptions::mp4_crf, 0, 51, "H.264 constant rate factor")
        .choice("mp4_preset", &OutputOptions::mp4_preset, presets, "x264 preset");
  }();
  return table;
}

void OutputOptions::validate() const {
  config().validate(*this);
}

}  // namespace lipsync::render
