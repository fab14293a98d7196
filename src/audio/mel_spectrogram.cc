#include "audio/mel_spectrogram.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <opencv2/core.hpp>
#include <string>

#include "core/check.h"
#include "core/error.h"
#include "core/task_arena.h"

namespace lipsync::audio {
namespace {

// A real FFT of one frame in double precision (OpenCV's cv::dft): librosa computes the STFT in
// float64, and a float32 FFT loses up to 1.2e-4 on the quietest bands of a loud sweep.
// Owned by one thread.
class FftWorkspace {
 public:
  FftWorkspace() : input_(1, kFftSize, CV_64F), packed_(1, kFftSize, CV_64F) {}

  double* frame() { return input_.ptr<double>(); }
  // |X[k]| for k in [lo, hi] into magnitude[k]. Requires: 1 <= lo <= hi < N / 2.
  void magnitudes(int lo, int hi, float* magnitude) {
    cv::dft(input_, packed_, 0);
    // CCS packing of a real row of even length N: Re0, Re1, Im1, ..., Re(N/2-1), Im(N/2-1),
    // Re(N/2).
    const double* p = packed_.ptr<double>();
    for (int k = lo; k <= hi; ++k) {
      const double re = p[2 * k - 1];
      const double im = p[2 * k];
      magnitude[k] = static_cast<float>(std::sqrt(re * re + im * im));
    }
  }

 private:
  cv::Mat input_;
  cv::Mat packed_;
};

// 20 * log10(2), rounded to float.
constexpr float kDbPerOctave = 6.02059991327962f;

}  // namespace

Mel::Mel(int frames, std::vector<float> data) : frames_(frames), data_(std::move(data)) {
  LIPSYNC_CHECK_EQ(data_.size(), static_cast<std::size_t>(frames) * kMelBands);
}

MelSpectrogram::MelSpectrogram() : window_(kFftSize) {
  // Periodic Hann (scipy get_window('hann', 800, fftbins=True)), REFERENCE.md §2.4.
  for (int n = 0; n < kFftSize; ++n) {
    window_[n] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * n / kFftSize);
  }
}

int MelSpectrogram::frames_for_samples(std::size_t samples) {
  return 1 + static_cast<int>(samples / kHopSamples);
}

void validate_samples(std::span<const float> samples, std::string_view source) {
  if (samples.empty()) {
    throw Error::invalid_input(std::string(source) + ": no audio samples");
  }
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (!std::isfinite(samples[i])) {
      throw Error::invalid_input(std::string(source) + ": sample " + std::to_string(i) + " is " +
                                 (std::isnan(samples[i]) ? "NaN" : "infinite") +
                                 "; audio must be finite");
    }
  }
}

Mel MelSpectrogram::compute(std::span<const float> samples, const AudioOptions& options) const {
  options.validate();
  if (samples.size() < static_cast<std::size_t>(kMinSamples)) {
    throw Error::invalid_input("audio has " + std::to_string(samples.size()) + " samples (" +
                               std::to_string(samples.size() * 1000 / kSampleRateHz) +
                               " ms at 16 kHz); at least " + std::to_string(kMinSamples) +
                               " samples (16 mel frames, 187.5 ms) are needed");
  }
  validate_samples(samples, "audio");
  const int frames = frames_for_samples(samples.size());
  std::vector<float> data(static_cast<std::size_t>(frames) * kMelBands);
  auto fill = [&](std::size_t begin, std::size_t end) {
    const int first = static_cast<int>(begin);
    const int count = static_cast<int>(end - begin);
    compute_frames(
        samples, first, count,
        std::span<float>(data).subspan(begin * kMelBands, end * kMelBands - begin * kMelBands));
  };
  const core::TaskArena* arena = options.parallel_arena();
  if (arena != nullptr) {
    arena->parallel_for(static_cast<std::size_t>(frames),
                        static_cast<std::size_t>(options.mel_frames_per_task), fill);
  } else {
    fill(0, static_cast<std::size_t>(frames));
  }
  return Mel(frames, std::move(data));
}

void MelSpectrogram::compute_frames(std::span<const float> samples, int first, int count,
                                    std::span<float> out) const {
  LIPSYNC_CHECK(first >= 0 && count >= 0);
  LIPSYNC_CHECK_LE(first + count, frames_for_samples(samples.size()));
  LIPSYNC_CHECK_EQ(out.size(), static_cast<std::size_t>(count) * kMelBands);
  if (count == 0) return;

  FftWorkspace fft;
  const auto n_samples = static_cast<std::ptrdiff_t>(samples.size());
  const float* x = samples.data();
  // The bank's non-zero bins are 3..379 (never DC or Nyquist), which magnitudes() relies on.
  const int lo_bin = filter_bank_.min_bin();
  const int hi_bin = filter_bank_.max_bin();
  LIPSYNC_CHECK(lo_bin >= 1 && hi_bin < kFftSize / 2);
  float magnitude[kFftBins];

  for (int t = first; t < first + count; ++t) {
    // Frame t covers padded samples [200 t, 200 t + 800), i.e. signal index 200 t - 400 + n.
    const std::ptrdiff_t base = static_cast<std::ptrdiff_t>(t) * kHopSamples - kCenterPadSamples;
    double* frame = fft.frame();
    if (base >= 1 && base + kFftSize <= n_samples) {
      for (int n = 0; n < kFftSize; ++n) {
        const double y = static_cast<double>(x[base + n]) - kPreemphasis * x[base + n - 1];
        frame[n] = y * window_[n];
      }
    } else {
      for (int n = 0; n < kFftSize; ++n) {
        const std::ptrdiff_t i = base + n;
        double y = 0.0;  // centre padding is zeros (REFERENCE.md §2.2)
        if (i == 0) {
          y = x[0];
        } else if (i > 0 && i < n_samples) {
          y = static_cast<double>(x[i]) - kPreemphasis * x[i - 1];
        }
        frame[n] = y * window_[n];
      }
    }
    fft.magnitudes(lo_bin, hi_bin, magnitude);
    float* row = out.data() + static_cast<std::size_t>(t - first) * kMelBands;
    for (int m = 0; m < kMelBands; ++m) {
      const auto w = filter_bank_.weights(m);
      const float* mag = magnitude + filter_bank_.first_bin(m);
      float acc = 0.0f;
      for (std::size_t j = 0; j < w.size(); ++j) acc += w[j] * mag[j];
      // 20 log10(x) as 20 log10(2) log2(x): glibc's log2f is several times faster than log10f.
      const float db = kDbPerOctave * std::log2(std::max(acc, kMinMagnitude)) - kRefLevelDb;
      const float normalised =
          2.0f * kMaxAbsValue * ((db - kMinLevelDb) / -kMinLevelDb) - kMaxAbsValue;
      row[m] = std::clamp(normalised, -kMaxAbsValue, kMaxAbsValue);
    }
  }
}

}  // namespace lipsync::audio
