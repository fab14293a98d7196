#include "audio/audio_options.h"

#include <string>

#include "core/error.h"
#include "core/task_arena.h"

namespace lipsync::audio {
namespace {

void require_range(const char* field, int value, int lo, int hi) {
  if (value < lo || value > hi) {
    throw Error::invalid_input(std::string(field) + "=" + std::to_string(value) + ": expected " +
                               std::to_string(lo) + ".." + std::to_string(hi));
  }
}

}  // namespace

void AudioOptions::validate() const {
  require_range("audio.mel_frames_per_task", mel_frames_per_task, 1, 1000000);
  require_range("audio.pack_windows_per_task", pack_windows_per_task, 1, 1000000);
}

const core::TaskArena* AudioOptions::parallel_arena() const {
  if (!parallel_mel_extraction) return nullptr;
  return arena != nullptr ? arena : &core::TaskArena::global();
}

}  // namespace lipsync::audio
