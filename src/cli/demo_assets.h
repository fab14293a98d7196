// The built-in demo: the demo avatar and demo models, generated on first use into a cache folder
// ($LIPSYNC_CACHE_DIR, else $XDG_CACHE_HOME/lipsync, else ~/.cache/lipsync), and the bundled
// speech clip (assets/demo_speech.wav, compiled into the binary).
// Thread contract: called from main's thread.
#pragma once

#include <filesystem>

namespace lipsync::cli {

std::filesystem::path cache_dir();
// The demo avatar (1280 x 720, 50 frames), created when missing or unreadable.
std::filesystem::path demo_avatar_dir();
// The demo models, created when missing.
std::filesystem::path demo_models_dir();
// The bundled speech clip, written into the cache folder when missing.
std::filesystem::path demo_speech_path();

}  // namespace lipsync::cli
