#include "render/output_options.h"

#include "render/seams.h"

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
        .choice("mp4_preset", &OutputOptions::mp4_preset, presets, "x264 preset")
        .choice("blend", &OutputOptions::blend,
                std::vector<std::pair<std::string, std::string>>{{"paste", "paste"},
                                                                 {"feather", "feather"}},
                "how the generated face goes back into its frame: paste, the reference's hard "
                "paste (a box shows where a model's colours drift), or feather, blended in "
                "through a mask that falls to 0 at the crop border over render.feather_px")
        .choice("color_match", &OutputOptions::color_match,
                std::vector<std::pair<std::string, std::string>>{{"off", "off"}, {"ring", "ring"}},
                "ring: the generated face's colours matched to the template's in a band just "
                "inside the crop border (mean and spread per channel), smoothed over "
                "render.color_match_frames frames")
        .integer("feather_px", &OutputOptions::feather_px, 0, 200,
                 "width of the feather at the crop border, in pixels (0: 6 % of the crop width)")
        .integer("color_match_frames", &OutputOptions::color_match_frames, 1, 100,
                 "frames the ring colour correction is averaged over (a moving average, so it "
                 "cannot flicker)");
  }();
  return table;
}

int BlendOptions::feather_for(int crop_width) const {
  return feather_px > 0 ? feather_px : default_feather_px(crop_width);
}

BlendOptions OutputOptions::blend_options() const {
  return {blend == "feather", color_match == "ring", feather_px, color_match_frames};
}

void OutputOptions::validate() const {
  config().validate(*this);
}

}  // namespace lipsync::render
