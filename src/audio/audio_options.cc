#include "audio/audio_options.h"

#include "core/task_arena.h"

namespace lipsync::audio {

const core::ConfigTable<AudioOptions>& AudioOptions::config() {
  static const auto table =
      core::ConfigTable<AudioOptions>("audio")
          .boolean("parallel_mel_extraction", &AudioOptions::parallel_mel_extraction,
                   "split mel frames and window packing over the task arena (same results)")
          .integer("mel_frames_per_task", &AudioOptions::mel_frames_per_task, 1, 1000000,
                   "smallest mel-frame range per task")
          .integer("pack_windows_per_task", &AudioOptions::pack_windows_per_task, 1, 1000000,
                   "smallest window range per packing task (measured: src/audio/audio_options.h)")
          .integer("max_seconds", &AudioOptions::max_seconds, 1, 86400,
                   "longest audio of a render, request or stream; longer input is refused");
  return table;
}

void AudioOptions::validate() const {
  config().validate(*this);
}

const core::TaskArena* AudioOptions::parallel_arena() const {
  if (!parallel_mel_extraction) return nullptr;
  return arena != nullptr ? arena : &core::TaskArena::global();
}

}  // namespace lipsync::audio
