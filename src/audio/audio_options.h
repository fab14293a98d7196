// AudioOptions: how the audio front end uses the CPU. The numbers themselves are fixed by the
// reference (mel_constants.h); these options only change speed, never results.
// Thread contract: plain value; validate() before use.
#pragma once

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
  // Smallest number of mel frames per task (1..1000000). Below 2x this a mel runs on one thread.
  // 256 frames (3.2 s of audio) take about 1.3 ms, well above the task overhead.
  int mel_frames_per_task = 256;
  // Smallest number of windows per packing task (1..1000000). Measured with
  // `lipsync bench windows`: a window packs in about 0.25 us and a TBB hand-off costs a few us,
  // so splitting pays only from a few hundred windows on.
  int pack_windows_per_task = 256;
  // The arena to split over; nullptr means core::TaskArena::global(). Borrowed.
  const core::TaskArena* arena = nullptr;

  // Throws Error::Code::kInvalidInput naming the field when a value is out of range.
  void validate() const;
  // The arena parallel work should use, or nullptr when parallel_mel_extraction is off.
  const core::TaskArena* parallel_arena() const;
};

}  // namespace lipsync::audio
