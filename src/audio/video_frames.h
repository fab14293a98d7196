// Video-frame and sample arithmetic: 25 video frames a second of 16 kHz audio, so 640 samples
// and 40 ms per frame, and the clip rule of REFERENCE.md §3-§4 (a clip of N samples gives L + 2
// frames). Each function here has its inverse beside it; nothing else in lipsync spells out 640,
// 40 or 16000.
// Thread contract: stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "audio/mel_constants.h"

namespace lipsync::audio {

inline constexpr int kFramesPerSecond = 25;  // REFERENCE.md §4: the clip yields 25 fps video
inline constexpr int kSamplesPerFrame = kSampleRateHz / kFramesPerSecond;  // 640
inline constexpr int kMsPerFrame = 1000 / kFramesPerSecond;                // 40
static_assert(kSamplesPerFrame * kFramesPerSecond == kSampleRateHz);

// Samples of `frames` video frames at 16 kHz (frame k's own audio is samples [640 k, 640 k + 640)).
constexpr std::int64_t samples_for_frames(std::int64_t frames) {
  return frames * kSamplesPerFrame;
}
// The video frame whose own 40 ms holds sample `sample`.
constexpr std::int64_t frame_for_sample(std::int64_t sample) {
  return sample / kSamplesPerFrame;
}

// Presentation time of frame k, and the frame shown at a time.
constexpr std::int64_t frame_pts_ms(std::int64_t frame) {
  return frame * kMsPerFrame;
}
constexpr std::int64_t frame_at_ms(std::int64_t ms) {
  return ms / kMsPerFrame;
}

// Samples in a duration at 16 kHz, and the duration of a sample count.
constexpr std::int64_t samples_for_seconds(std::int64_t seconds) {
  return seconds * kSampleRateHz;
}
constexpr double seconds_for_samples(std::int64_t samples) {
  return static_cast<double>(samples) / kSampleRateHz;
}

// Video frames a clip of `samples` samples gives: L + 2 (REFERENCE.md §3-§4). Throws
// Error::Code::kInvalidInput for fewer than kMinSamples (3000) samples.
int clip_frames_for_samples(std::size_t samples);
// The inverse: the fewest samples whose clip gives at least `frames` frames (at least 3000).
// Requires: frames >= 1.
std::size_t min_samples_for_clip_frames(int frames);

}  // namespace lipsync::audio
