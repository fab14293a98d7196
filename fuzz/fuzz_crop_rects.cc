// Fuzzes an avatar's crop_rects.json: avatar::load_crop_rects, then each rect's check against a
// 1920 x 1080 frame (validate_crop_rect, as Avatar::open and the importers do) and a
// save_crop_rects() / load_crop_rects() round trip.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "avatar/crop_rect.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  const fuzz::TempFile file(std::span(data, size), "crop_rects.json");
  std::vector<avatar::CropRect> rects;
  if (!fuzz::accepts([&] { rects = avatar::load_crop_rects(file.path()); })) return 0;
  for (std::size_t i = 0; i < rects.size(); ++i) {
    fuzz::accepts(
        [&] { avatar::validate_crop_rect(rects[i], 1920, 1080, "frame " + std::to_string(i)); });
  }
  const fuzz::TempFile copy("", "crop_rects.saved.json");
  avatar::save_crop_rects(copy.path(), rects);
  std::vector<avatar::CropRect> again;
  if (!fuzz::accepts([&] { again = avatar::load_crop_rects(copy.path()); }) || again != rects) {
    fuzz::finding("crop rects changed in a save_crop_rects() / load_crop_rects() round trip");
  }
  return 0;
}
