#include "cli/demo_assets.h"

#include <unistd.h>

#include <cstdlib>
#include <span>
#include <string>

#include "avatar/avatar.h"
#include "avatar/avatar_import.h"
#include "core/error.h"
#include "core/file_util.h"
#include "infer/models.h"
#include "modelgen/demo_models.h"

namespace lipsync::cli {

// Generated from assets/demo_speech.wav by CMake (demo_speech_data.cc).
extern const unsigned char kDemoSpeechWav[];
extern const std::size_t kDemoSpeechWavSize;

namespace {

namespace fs = std::filesystem;

constexpr int kDemoFrames = 50;
constexpr int kDemoWidth = 1280;
constexpr int kDemoHeight = 720;

}  // namespace

fs::path cache_dir() {
  return core::cache_dir();
}

fs::path demo_avatar_dir() {
  const fs::path dir = cache_dir() / "demo-avatar-v2";
  std::error_code ec;
  if (fs::exists(dir / avatar::kAvatarFileName, ec)) {
    try {
      (void)avatar::Avatar::open(dir, avatar::AvatarOptions{});
      return dir;
    } catch (const Error&) {
      fs::remove_all(dir, ec);  // damaged: make it again
    }
  }
  fs::remove_all(dir, ec);
  avatar::write_demo_avatar(dir, kDemoFrames, kDemoWidth, kDemoHeight);
  return dir;
}

fs::path demo_models_dir() {
  const fs::path dir = cache_dir() / "demo-models-v3";
  std::error_code ec;
  if (fs::exists(dir / infer::kManifestFileName, ec)) return dir;
  const fs::path partial = cache_dir() / ("demo-models-v3.partial-" + std::to_string(::getpid()));
  fs::remove_all(partial, ec);
  modelgen::write_demo_models(partial);
  fs::remove_all(dir, ec);
  fs::rename(partial, dir, ec);
  if (ec) throw Error::unavailable("cannot create " + dir.string() + ": " + ec.message());
  return dir;
}

fs::path demo_speech_path() {
  const fs::path path = cache_dir() / "demo_speech.wav";
  std::error_code ec;
  if (fs::exists(path, ec) && fs::file_size(path, ec) == kDemoSpeechWavSize) return path;
  core::write_file_atomically(path, std::as_bytes(std::span(kDemoSpeechWav, kDemoSpeechWavSize)));
  return path;
}

}  // namespace lipsync::cli
