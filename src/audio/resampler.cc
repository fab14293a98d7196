#include "audio/resampler.h"

#include <soxr.h>

#include <cmath>
#include <string>

#include "core/error.h"

namespace lipsync::audio {
namespace {

constexpr int kMinRateHz = 1000;
constexpr int kMaxRateHz = 768000;

void require_rate(const char* what, int rate) {
  if (rate < kMinRateHz || rate > kMaxRateHz) {
    throw Error::invalid_input(std::string(what) + "=" + std::to_string(rate) + ": expected " +
                               std::to_string(kMinRateHz) + ".." + std::to_string(kMaxRateHz) +
                               " Hz");
  }
}

}  // namespace

std::vector<float> resample(std::span<const float> samples, int in_rate_hz, int out_rate_hz) {
  require_rate("sample_rate", in_rate_hz);
  require_rate("output sample_rate", out_rate_hz);
  if (in_rate_hz == out_rate_hz || samples.empty()) return {samples.begin(), samples.end()};
  const double ratio = static_cast<double>(out_rate_hz) / in_rate_hz;
  const auto out_len =
      static_cast<std::size_t>(std::llround(static_cast<double>(samples.size()) * ratio));
  // A few samples at a higher rate make no output sample; soxr would write through the empty
  // vector's null data (found by fuzzing: 1 sample at 48 kHz crashed the server).
  if (out_len == 0) return {};
  std::vector<float> out(out_len);
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  std::size_t done = 0;
  const soxr_error_t err =
      soxr_oneshot(in_rate_hz, out_rate_hz, 1, samples.data(), samples.size(), nullptr, out.data(),
                   out.size(), &done, &io, &quality, nullptr);
  if (err != nullptr) throw Error::internal(std::string("soxr resampling failed: ") + err);
  out.resize(done);
  return out;
}

}  // namespace lipsync::audio
