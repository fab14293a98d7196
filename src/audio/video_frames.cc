#include "audio/video_frames.h"

#include <string>

#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "core/check.h"
#include "core/error.h"

namespace lipsync::audio {

int clip_frames_for_samples(std::size_t samples) {
  if (samples < static_cast<std::size_t>(kMinSamples)) {
    throw Error::invalid_input("audio: " + std::to_string(samples) +
                               " samples is too short; at least " + std::to_string(kMinSamples) +
                               " (0.1875 s) are needed");
  }
  return MelWindows::count_for_frames(MelSpectrogram::frames_for_samples(samples)) + 2;
}

std::size_t min_samples_for_clip_frames(int frames) {
  LIPSYNC_CHECK(frames >= 1);
  // The count only changes at multiples of the 200-sample hop, and grows with the length:
  // bisect over hops.
  std::size_t lo = kMinSamples;  // gives at least 3 frames
  if (clip_frames_for_samples(lo) >= frames) return lo;
  std::size_t hi = lo;
  while (clip_frames_for_samples(hi) < frames) hi *= 2;
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    (clip_frames_for_samples(mid) >= frames ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace lipsync::audio
