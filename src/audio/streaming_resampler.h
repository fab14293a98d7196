// StreamingResampler: libsoxr HQ resampling of audio that arrives in chunks (the stream API).
// Thread contract: one owner.
#pragma once

#include <memory>
#include <span>
#include <vector>

namespace lipsync::audio {

class StreamingResampler {
 public:
  // Throws Error::Code::kInvalidInput for rates outside 1000..768000 Hz.
  StreamingResampler(int in_rate_hz, int out_rate_hz);
  ~StreamingResampler();
  StreamingResampler(const StreamingResampler&) = delete;
  StreamingResampler& operator=(const StreamingResampler&) = delete;

  // Resamples the next chunk; returns the output produced so far for it.
  std::vector<float> process(std::span<const float> in);
  // Flushes what the filter still holds (call once, at the end).
  std::vector<float> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::audio
