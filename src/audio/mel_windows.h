// MelWindows: the encoder windows of a mel (REFERENCE.md §3): their count, their start rows,
// zero-copy views of them, and packing into the audio encoder's [B,1,80,16] input.
// Thread contract: immutable after construction; every method may be called from many threads
// at once (concurrent packs write only to their own `out`).
#pragma once

#include <span>
#include <vector>

#include "audio/audio_options.h"
#include "audio/mel_spectrogram.h"

namespace lipsync::audio {

// A view of one window: mel rows [start, start + 16), frames-major. Valid while the Mel lives.
struct MelWindow {
  int index = 0;
  int start = 0;
  const float* rows = nullptr;  // 16 x 80 values

  // Value of mel row start + t, band b.
  float at(int t, int band) const { return rows[t * kMelBands + band]; }
};

// The windows of one mel. Borrows the Mel, which must outlive this object and not change.
class MelWindows {
 public:
  // Requires: mel.frames() >= 16 (throws Error::Code::kInvalidInput otherwise).
  MelWindows(const Mel& mel, const AudioOptions& options);

  // L = trunc((T - 16) / 80.0 * 25.0) + 2, in double, in this order. Requires T >= 16.
  static int count_for_frames(int frames);
  // s_k = trunc(80.0 * (k / 25.0)), clamped to T - 16 when the window would pass the end.
  static int start_for(int index, int frames);
  // s_k before the end clamp: trunc(80.0 * (k / 25.0)). A growing stream uses it to tell which
  // windows can no longer change.
  static int unclamped_start(int index);

  int count() const { return static_cast<int>(starts_.size()); }
  int frames() const { return mel_->frames(); }
  int start(int index) const { return starts_[index]; }
  const std::vector<int>& starts() const { return starts_; }
  // Requires: 0 <= index < count().
  MelWindow window(int index) const;

  // Writes windows [first, first + count) transposed into an encoder input [count][1][80][16]:
  // out[((i * 80) + b) * 16 + t] = mel[start(first + i) + t][b]. Splits over the task arena when
  // parallel_mel_extraction is on and count is large enough; the bytes are the same either way.
  // Requires: 0 <= first, first + count <= count(), out.size() == count * 1280.
  void pack_encoder_batch(int first, int count, std::span<float> out) const;

  // Floats per packed window (1 x 80 x 16).
  static constexpr int kPackedWindowSize = kMelBands * kWindowFrames;

 private:
  void pack_range(int first, int begin, int end, float* out) const;

  const Mel* mel_;
  AudioOptions options_;
  std::vector<int> starts_;
};

// Transposes one window, 16 mel rows of 80 bands (frame-major, contiguous), into the encoder's
// band-major [1][80][16] layout: out[b * 16 + t] = rows[t * 80 + b]. The one packing routine, used
// by MelWindows and by the streaming feature track.
void pack_window(const float* rows, float* out);

}  // namespace lipsync::audio
