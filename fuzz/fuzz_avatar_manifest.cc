// Fuzzes an avatar folder's avatar.json: avatar::AvatarManifest::load, then the frame pattern
// it names (format_frame_pattern for the first and last frame, as Avatar::frame_path does) and
// a save() / load() round trip.
#include <cstddef>
#include <cstdint>
#include <span>

#include "avatar/avatar.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  const fuzz::TempFile file(std::span(data, size), "avatar.json");
  avatar::AvatarManifest m;
  if (!fuzz::accepts([&] { m = avatar::AvatarManifest::load(file.path()); })) return 0;
  // load() validated the pattern: formatting it must not throw.
  (void)avatar::format_frame_pattern(m.frames, 0);
  (void)avatar::format_frame_pattern(m.frames, m.frame_count - 1);
  const fuzz::TempFile copy("", "avatar.saved.json");
  m.save(copy.path());
  avatar::AvatarManifest again;
  if (!fuzz::accepts([&] { again = avatar::AvatarManifest::load(copy.path()); })) {
    fuzz::finding("an avatar.json that loaded does not load again after save()");
  }
  if (again.frames != m.frames || again.frame_count != m.frame_count || again.width != m.width ||
      again.height != m.height || again.name != m.name || again.crop_rects != m.crop_rects) {
    fuzz::finding("avatar.json changed in a save() / load() round trip");
  }
  return 0;
}
