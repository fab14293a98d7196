// MelFilterBank: librosa's Slaney mel filter bank (80 bands, 55-7600 Hz, area normalised,
// float32 weights) stored sparsely: each band keeps only its run of non-zero bins.
// Thread contract: immutable after construction; share freely.
#pragma once

#include <span>
#include <vector>

namespace lipsync::audio {

// The 80 x 401 filter bank of REFERENCE.md §2.6, built in code exactly as librosa.filters.mel
// (htk=False, norm='slaney', dtype float32) builds it.
class MelFilterBank {
 public:
  MelFilterBank();

  int bands() const { return static_cast<int>(first_bin_.size()); }
  // First FFT bin with a non-zero weight in band m.
  int first_bin(int band) const { return first_bin_[band]; }
  // Weights of band m for bins first_bin(m), first_bin(m)+1, ...
  std::span<const float> weights(int band) const {
    return {weights_.data() + offset_[band],
            static_cast<std::size_t>(offset_[band + 1] - offset_[band])};
  }
  // Lowest and highest bin (inclusive) with a non-zero weight in any band.
  int min_bin() const { return min_bin_; }
  int max_bin() const { return max_bin_; }
  // Dense value of the weight for (band, bin), 0 outside the band's run.
  float weight(int band, int bin) const;

 private:
  std::vector<int> first_bin_;
  std::vector<int> offset_;  // bands + 1 entries into weights_
  std::vector<float> weights_;
  int min_bin_ = 0;
  int max_bin_ = 0;
};

// Slaney mel scale (librosa.hz_to_mel / mel_to_hz with htk=False).
double hz_to_mel_slaney(double hz);
double mel_to_hz_slaney(double mel);

}  // namespace lipsync::audio
