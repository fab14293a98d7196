// MelSpectrogram: the librosa-exact normalised log-mel of REFERENCE.md §2 (float32, real FFT,
// periodic Hann, zero centre padding), and Mel, its immutable [T][80] result.
// Thread contract: MelSpectrogram is immutable after construction; compute() may be called from
// many threads at once. A Mel is read-only once built.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "audio/audio_options.h"
#include "audio/mel_constants.h"
#include "audio/mel_filter_bank.h"

namespace lipsync::audio {

// A normalised log-mel spectrogram, frames-major: value(t, band) = data()[t * 80 + band],
// band 0 the lowest, values in [-4, 4].
class Mel {
 public:
  Mel() = default;
  // Takes the rows. Requires: data.size() == frames * 80.
  Mel(int frames, std::vector<float> data);

  int frames() const { return frames_; }
  static constexpr int bands() { return kMelBands; }
  std::span<const float> data() const { return data_; }
  // Row t (80 values). Requires: 0 <= t < frames().
  std::span<const float> row(int t) const {
    return {data_.data() + static_cast<std::size_t>(t) * kMelBands, kMelBands};
  }

 private:
  int frames_ = 0;
  std::vector<float> data_;
};

// Computes mel spectrograms of 16 kHz mono audio.
class MelSpectrogram {
 public:
  // Builds the filter bank and the window once.
  MelSpectrogram();

  // Number of mel frames for n samples: T = 1 + floor(n / 200) (REFERENCE.md §2.3).
  static int frames_for_samples(std::size_t samples);

  // The mel of a whole clip. Long inputs are split by frame ranges over the options' arena; the
  // result is identical to the one-thread result. Throws Error::Code::kInvalidInput when the clip
  // has fewer than 3000 samples or a NaN or infinite sample.
  Mel compute(std::span<const float> samples, const AudioOptions& options) const;

  // Writes frames [first, first + count) of the mel of `samples` into out (count * 80 values),
  // on the calling thread. Frames near the end see the zero padding after samples.size().
  // Requires: first + count <= frames_for_samples(samples.size()), out.size() == count * 80.
  void compute_frames(std::span<const float> samples, int first, int count,
                      std::span<float> out) const;

  const MelFilterBank& filter_bank() const { return filter_bank_; }

 private:
  MelFilterBank filter_bank_;
  std::vector<double> window_;  // periodic Hann, kFftSize values
};

// Throws Error::Code::kInvalidInput when samples is empty or holds a NaN or infinite value,
// naming `source` and the first bad sample.
void validate_samples(std::span<const float> samples, std::string_view source);

}  // namespace lipsync::audio
