#include "audio/mel_windows.h"

#include <cmath>
#include <string>

#include "core/check.h"
#include "core/error.h"
#include "core/task_arena.h"

namespace lipsync::audio {

int MelWindows::count_for_frames(int frames) {
  LIPSYNC_CHECK(frames >= kWindowFrames);
  // REFERENCE.md §3: evaluated in double, divide by 80 then multiply by 25. For T = 384 this
  // gives 116 where exact arithmetic gives 117.
  return static_cast<int>(std::trunc((frames - kWindowFrames) / kMelFramesPerSecond * kVideoFps)) +
         2;
}

int MelWindows::unclamped_start(int index) {
  return static_cast<int>(std::trunc(kMelFramesPerSecond * (index / kVideoFps)));
}

int MelWindows::start_for(int index, int frames) {
  const int start = unclamped_start(index);
  return start + kWindowFrames > frames ? frames - kWindowFrames : start;
}

MelWindows::MelWindows(const Mel& mel, const AudioOptions& options)
    : mel_(&mel), options_(options) {
  options_.validate();
  if (mel.frames() < kWindowFrames) {
    throw Error::invalid_input("mel has " + std::to_string(mel.frames()) + " frames; at least " +
                               std::to_string(kWindowFrames) + " are needed for one window");
  }
  const int n = count_for_frames(mel.frames());
  starts_.resize(n);
  for (int k = 0; k < n; ++k) starts_[k] = start_for(k, mel.frames());
}

MelWindow MelWindows::window(int index) const {
  LIPSYNC_CHECK(index >= 0 && index < count());
  return {index, starts_[index], mel_->row(starts_[index]).data()};
}

void MelWindows::pack_range(int first, int begin, int end, float* out) const {
  const float* mel = mel_->data().data();
  for (int i = begin; i < end; ++i) {
    const float* src = mel + static_cast<std::size_t>(starts_[first + i]) * kMelBands;
    pack_window(src, out + static_cast<std::size_t>(i) * kPackedWindowSize);
  }
}

void pack_window(const float* rows, float* out) {
  // out is [80][16] (band-major), rows is [16][80] (frame-major).
  for (int t = 0; t < kWindowFrames; ++t) {
    const float* row = rows + t * kMelBands;
    for (int b = 0; b < kMelBands; ++b) out[b * kWindowFrames + t] = row[b];
  }
}

void MelWindows::pack_encoder_batch(int first, int count, std::span<float> out) const {
  LIPSYNC_CHECK(first >= 0 && count >= 0);
  LIPSYNC_CHECK_LE(first + count, this->count());
  LIPSYNC_CHECK_EQ(out.size(), static_cast<std::size_t>(count) * kPackedWindowSize);
  const core::TaskArena* arena = options_.parallel_arena();
  if (arena == nullptr) {
    pack_range(first, 0, count, out.data());
    return;
  }
  arena->parallel_for(
      static_cast<std::size_t>(count), static_cast<std::size_t>(options_.pack_windows_per_task),
      [&](std::size_t begin, std::size_t end) {
        pack_range(first, static_cast<int>(begin), static_cast<int>(end), out.data());
      });
}

}  // namespace lipsync::audio
