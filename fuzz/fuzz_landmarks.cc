// Fuzzes a SyncTalk_2D landmark file (.lms, 110 lines "x y"): avatar::crop_from_landmarks, then
// the crop's check against a 1920 x 1080 frame, as `lipsync avatars import-synctalk` does.
#include <cstddef>
#include <cstdint>
#include <span>

#include "avatar/crop_rect.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  const fuzz::TempFile file(std::span(data, size), "0.lms");
  avatar::CropRect rect;
  if (!fuzz::accepts([&] { rect = avatar::crop_from_landmarks(file.path()); })) return 0;
  fuzz::accepts([&] { avatar::validate_crop_rect(rect, 1920, 1080, "frame 0"); });
  return 0;
}
