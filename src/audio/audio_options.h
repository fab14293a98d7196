// AudioOptions: how the audio front end uses the CPU. The numbers themselves are fixed by the
// reference (mel_constants.h); these options only change speed, never results.
// Thread contract: plain value; validate() before use.
#pragma once

#include "core/config_table.h"

namespace lipsync::core {
class TaskArena;
}

namespace lipsync::audio {

struct AudioOptions {
  // Behaviour --------------------------------------------------------------------------------
  // Config key audio.parallel_mel_extraction (CLI --parallel-mel-extraction). Splits mel frames
  // and window packing over the task arena; results are bit-identical either way.
  bool parallel_mel_extraction = true;

  // Performance ------------------------------------------------------------------------------
  // Smallest number of mel frames per task (1..1000000). A mel of at most this many frames runs
  // on the calling thread.
  // 256 frames (3.2 s of audio) take about 1.3 ms, well above the task overhead.
  int mel_frames_per_task = 256;
  // Smallest number of windows per packing task (1..1000000). Measured with
  // `lipsync bench windows --threads 2 --grain G --batch B` on the 2-core dev machine: a window
  // packs in about 0.37 us and waking a sleeping worker costs about 20 us, so splitting loses
  // below about 128 windows (batch 64: 23 us alone, 36 us split) and wins above (batch 256:
  // 95 -> 73 us, batch 1024: 386 -> 226 us). The usual 25-64 window batches stay on one thread.
  int pack_windows_per_task = 128;
  // The arena to split over; nullptr means core::TaskArena::global(). Borrowed.
  const core::TaskArena* arena = nullptr;

  // Limits -----------------------------------------------------------------------------------
  // The longest audio a render, a request or a stream may have, in seconds (1..86400). Longer
  // input is refused before it is read (a file whose header says so) or when it gets there.
  int max_seconds = 14400;

  // Throws Error::Code::kInvalidInput naming the field when a value is out of range.
  void validate() const;
  // The `audio.*` config keys.
  static const core::ConfigTable<AudioOptions>& config();
  // The arena parallel work should use, or nullptr when parallel_mel_extraction is off.
  const core::TaskArena* parallel_arena() const;
};

}  // namespace lipsync::audio
