#include "audio/streaming_resampler.h"

#include <soxr.h>

#include <string>

#include "core/error.h"

namespace lipsync::audio {

struct StreamingResampler::Impl {
  soxr_t soxr = nullptr;
  double ratio = 1;
  ~Impl() {
    if (soxr != nullptr) soxr_delete(soxr);
  }
  std::vector<float> run(const float* in, std::size_t n) {
    std::vector<float> out(static_cast<std::size_t>(n * ratio) + 1024);
    std::vector<float> all;
    std::size_t consumed_total = 0;
    while (true) {
      std::size_t used = 0, produced = 0;
      const soxr_error_t err =
          soxr_process(soxr, in ? in + consumed_total : nullptr, in ? n - consumed_total : 0, &used,
                       out.data(), out.size(), &produced);
      if (err != nullptr) throw Error::internal(std::string("soxr resampling failed: ") + err);
      consumed_total += used;
      all.insert(all.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(produced));
      if (in != nullptr ? consumed_total >= n && produced < out.size() : produced == 0) break;
    }
    return all;
  }
};

StreamingResampler::StreamingResampler(int in_rate_hz, int out_rate_hz)
    : impl_(std::make_unique<Impl>()) {
  for (int rate : {in_rate_hz, out_rate_hz}) {
    if (rate < 1000 || rate > 768000) {
      throw Error::invalid_input("sample_rate=" + std::to_string(rate) +
                                 ": expected 1000..768000 Hz");
    }
  }
  impl_->ratio = static_cast<double>(out_rate_hz) / in_rate_hz;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  soxr_error_t err = nullptr;
  impl_->soxr = soxr_create(in_rate_hz, out_rate_hz, 1, &err, &io, &quality, nullptr);
  if (err != nullptr) throw Error::internal(std::string("soxr_create failed: ") + err);
}

StreamingResampler::~StreamingResampler() = default;

std::vector<float> StreamingResampler::process(std::span<const float> in) {
  if (in.empty()) return {};
  return impl_->run(in.data(), in.size());
}

std::vector<float> StreamingResampler::finish() {
  return impl_->run(nullptr, 0);
}

}  // namespace lipsync::audio
