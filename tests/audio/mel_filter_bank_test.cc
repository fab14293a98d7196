#include "audio/mel_filter_bank.h"

#include <gtest/gtest.h>

#include <cmath>

#include "audio/mel_constants.h"

namespace lipsync::audio {
namespace {

// Facts about librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) stated in
// ../shared/testdata/audio/README.md.
TEST(MelFilterBank, NonZeroBinsAndPeakMatchLibrosa) {
  const MelFilterBank bank;
  ASSERT_EQ(bank.bands(), kMelBands);
  EXPECT_EQ(bank.min_bin(), 3);
  EXPECT_EQ(bank.max_bin(), 379);
  float peak = 0;
  for (int m = 0; m < bank.bands(); ++m) {
    ASSERT_FALSE(bank.weights(m).empty()) << "band " << m;
    for (float w : bank.weights(m)) peak = std::max(peak, w);
  }
  EXPECT_NEAR(peak, 0.02688, 5e-6);
}

TEST(MelFilterBank, BandsAreTrianglesInIncreasingOrder) {
  const MelFilterBank bank;
  for (int m = 1; m < bank.bands(); ++m) EXPECT_GE(bank.first_bin(m), bank.first_bin(m - 1));
  for (int m = 0; m < bank.bands(); ++m) {
    const auto w = bank.weights(m);
    for (float v : w) EXPECT_GT(v, 0.0f) << "band " << m;  // runs hold only non-zero weights
    EXPECT_EQ(bank.weight(m, bank.first_bin(m) - 1), 0.0f);
  }
}

TEST(MelFilterBank, SlaneyScaleIsLinearBelow1kHzAndLogAbove) {
  EXPECT_DOUBLE_EQ(hz_to_mel_slaney(1000.0), 15.0);
  EXPECT_DOUBLE_EQ(hz_to_mel_slaney(200.0), 3.0);
  EXPECT_NEAR(hz_to_mel_slaney(6400.0), 15.0 + 27.0, 1e-12);
  for (double hz : {55.0, 700.0, 1000.0, 3000.0, 7600.0}) {
    EXPECT_NEAR(mel_to_hz_slaney(hz_to_mel_slaney(hz)), hz, 1e-9);
  }
}

}  // namespace
}  // namespace lipsync::audio
