#include "audio/mel_filter_bank.h"

#include <algorithm>
#include <cmath>

#include "audio/mel_constants.h"

namespace lipsync::audio {
namespace {

// Slaney scale: linear below 1 kHz at 200/3 Hz per mel, logarithmic above it.
constexpr double kLinearHzPerMel = 200.0 / 3.0;
constexpr double kLogMinHz = 1000.0;
constexpr double kLogMinMel = kLogMinHz / kLinearHzPerMel;  // 15 mel
const double kLogStep = std::log(6.4) / 27.0;               // librosa: log(6.4) / 27

}  // namespace

double hz_to_mel_slaney(double hz) {
  if (hz >= kLogMinHz) return kLogMinMel + std::log(hz / kLogMinHz) / kLogStep;
  return hz / kLinearHzPerMel;
}

double mel_to_hz_slaney(double mel) {
  if (mel >= kLogMinMel) return kLogMinHz * std::exp(kLogStep * (mel - kLogMinMel));
  return kLinearHzPerMel * mel;
}

MelFilterBank::MelFilterBank() {
  // Band edges: n_mels + 2 points evenly spaced in mel (numpy.linspace: i * step + start, the
  // last point set to stop), converted back to Hz.
  constexpr int kEdges = kMelBands + 2;
  const double min_mel = hz_to_mel_slaney(kMelFminHz);
  const double max_mel = hz_to_mel_slaney(kMelFmaxHz);
  const double step = (max_mel - min_mel) / (kEdges - 1);
  std::vector<double> edge_hz(kEdges);
  for (int i = 0; i < kEdges; ++i) {
    const double mel = (i == kEdges - 1) ? max_mel : static_cast<double>(i) * step + min_mel;
    edge_hz[i] = mel_to_hz_slaney(mel);
  }
  // FFT bin frequencies as numpy.fft.rfftfreq(n_fft, 1 / sr) computes them.
  const double bin_hz = 1.0 / (kFftSize * (1.0 / kSampleRateHz));

  first_bin_.resize(kMelBands);
  offset_.assign(kMelBands + 1, 0);
  min_bin_ = kFftBins;
  max_bin_ = -1;
  for (int m = 0; m < kMelBands; ++m) {
    const double lower_width = edge_hz[m + 1] - edge_hz[m];
    const double upper_width = edge_hz[m + 2] - edge_hz[m + 1];
    const double area_norm = 2.0 / (edge_hz[m + 2] - edge_hz[m]);
    std::vector<float> band(kFftBins);
    int first = -1;
    int last = -1;
    for (int k = 0; k < kFftBins; ++k) {
      const double f = static_cast<double>(k) * bin_hz;
      const double lower = -(edge_hz[m] - f) / lower_width;
      const double upper = (edge_hz[m + 2] - f) / upper_width;
      // librosa stores the triangle in float32, then scales it in float64 and stores again.
      const float triangle = static_cast<float>(std::max(0.0, std::min(lower, upper)));
      band[k] = static_cast<float>(static_cast<double>(triangle) * area_norm);
      if (band[k] != 0.0f) {
        if (first < 0) first = k;
        last = k;
      }
    }
    first_bin_[m] = std::max(first, 0);
    if (first >= 0) {
      weights_.insert(weights_.end(), band.begin() + first, band.begin() + last + 1);
      min_bin_ = std::min(min_bin_, first);
      max_bin_ = std::max(max_bin_, last);
    }
    offset_[m + 1] = static_cast<int>(weights_.size());
  }
}

float MelFilterBank::weight(int band, int bin) const {
  const auto w = weights(band);
  const int i = bin - first_bin_[band];
  if (i < 0 || i >= static_cast<int>(w.size())) return 0.0f;
  return w[i];
}

}  // namespace lipsync::audio
