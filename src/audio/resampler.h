// Sample-rate conversion with libsoxr at high quality (the quality librosa.load uses).
// Thread contract: stateless function; call from any thread.
#pragma once

#include <span>
#include <vector>

namespace lipsync::audio {

// Resamples mono float audio from in_rate_hz to out_rate_hz (soxr "HQ" recipe). Returns the input
// unchanged when the rates are equal. Output length is round(n * out / in).
// Throws Error::Code::kInvalidInput for a rate outside 1000..768000 Hz.
std::vector<float> resample(std::span<const float> samples, int in_rate_hz, int out_rate_hz);

}  // namespace lipsync::audio
