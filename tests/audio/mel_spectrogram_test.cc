#include "audio/mel_spectrogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "audio/audio_file.h"
#include "core/error.h"
#include "core/task_arena.h"
#include "support/test_data.h"

namespace lipsync::audio {
namespace {

using lipsync::testing::diff;
using lipsync::testing::read_f32;
using lipsync::testing::testdata;

// REFERENCE.md §2: a float32 port lands within about 5e-5 of librosa; this is the agreed limit.
constexpr double kMaxAbsTolerance = 2e-4;
constexpr double kMeanAbsTolerance = 1e-5;

AudioOptions sequential_options() {
  AudioOptions o;
  o.parallel_mel_extraction = false;
  return o;
}

class MelParity : public ::testing::TestWithParam<const char*> {};

TEST_P(MelParity, MatchesLibrosa) {
  const std::string name = GetParam();
  const std::vector<float> samples = load_audio_file(testdata("audio/" + name + ".f32"));
  const std::vector<float> expected = read_f32(testdata("audio/" + name + ".mel.f32"));
  const Mel mel = MelSpectrogram().compute(samples, AudioOptions{});
  ASSERT_EQ(mel.frames(), MelSpectrogram::frames_for_samples(samples.size()));
  ASSERT_EQ(mel.data().size(), expected.size());
  const auto d = diff(mel.data(), expected);
  EXPECT_LE(d.max_abs, kMaxAbsTolerance)
      << name << ": max |diff| at frame " << d.max_index / 80 << " band " << d.max_index % 80;
  EXPECT_LE(d.mean_abs, kMeanAbsTolerance) << name;
  RecordProperty("max_abs_diff", std::to_string(d.max_abs));
}

INSTANTIATE_TEST_SUITE_P(AllCases, MelParity,
                         ::testing::Values("speech_a_en", "sine_440", "sweep_log_50_8000",
                                           "silence", "short_0p3s"));

TEST(MelSpectrogram, SilenceIsExactlyMinusFour) {
  const std::vector<float> zeros(32000, 0.0f);
  const Mel mel = MelSpectrogram().compute(zeros, AudioOptions{});
  for (float v : mel.data()) ASSERT_EQ(v, -4.0f);
}

TEST(MelSpectrogram, FrameCountRule) {
  EXPECT_EQ(MelSpectrogram::frames_for_samples(0), 1);
  EXPECT_EQ(MelSpectrogram::frames_for_samples(199), 1);
  EXPECT_EQ(MelSpectrogram::frames_for_samples(200), 2);
  EXPECT_EQ(MelSpectrogram::frames_for_samples(2999), 15);
  EXPECT_EQ(MelSpectrogram::frames_for_samples(3000), 16);
  EXPECT_EQ(MelSpectrogram::frames_for_samples(76700), 384);
}

TEST(MelSpectrogram, ParallelResultIsIdenticalToOneThread) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.8f, 0.8f);
  std::vector<float> samples(16000 * 20 + 123);
  for (float& s : samples) s = u(rng);
  const MelSpectrogram mel_spectrogram;
  const Mel sequential = mel_spectrogram.compute(samples, sequential_options());
  const core::TaskArena arena(4);
  AudioOptions parallel;
  parallel.arena = &arena;
  for (int grain : {1, 7, 256}) {
    parallel.mel_frames_per_task = grain;
    const Mel p = mel_spectrogram.compute(samples, parallel);
    ASSERT_EQ(p.frames(), sequential.frames());
    ASSERT_EQ(std::memcmp(p.data().data(), sequential.data().data(), p.data().size_bytes()), 0)
        << "grain " << grain;
  }
}

TEST(MelSpectrogram, ComputeFramesMatchesWholeClipRows) {
  const std::vector<float> samples = load_audio_file(testdata("audio/short_0p3s.f32"));
  const MelSpectrogram mel_spectrogram;
  const Mel whole = mel_spectrogram.compute(samples, sequential_options());
  std::vector<float> part(5 * kMelBands);
  mel_spectrogram.compute_frames(samples, 20, 5, part);
  EXPECT_EQ(std::memcmp(part.data(), whole.row(20).data(), part.size() * sizeof(float)), 0);
}

TEST(MelSpectrogram, ShortestValidInputIs3000Samples) {
  const MelSpectrogram mel_spectrogram;
  const std::vector<float> ok(3000, 0.1f);
  EXPECT_EQ(mel_spectrogram.compute(ok, AudioOptions{}).frames(), 16);
  const std::vector<float> short_by_one(2999, 0.1f);
  try {
    (void)mel_spectrogram.compute(short_by_one, AudioOptions{});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find("2999 samples"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("at least 3000"), std::string::npos) << e.message();
  }
  EXPECT_THROW((void)mel_spectrogram.compute(std::vector<float>{}, AudioOptions{}), Error);
}

TEST(MelSpectrogram, RejectsNonFiniteSamples) {
  const MelSpectrogram mel_spectrogram;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> samples(5000, 0.0f);
    samples[4321] = bad;
    try {
      (void)mel_spectrogram.compute(samples, AudioOptions{});
      FAIL() << "no throw for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
      EXPECT_NE(e.message().find("sample 4321"), std::string::npos) << e.message();
    }
  }
}

TEST(AudioOptions, DefaultsArePinned) {
  const AudioOptions o;
  EXPECT_TRUE(o.parallel_mel_extraction);
  EXPECT_EQ(o.mel_frames_per_task, 256);
  EXPECT_EQ(o.pack_windows_per_task, 128);
  EXPECT_EQ(o.arena, nullptr);
}

TEST(AudioOptions, ValidateNamesTheField) {
  AudioOptions o;
  o.pack_windows_per_task = 0;
  try {
    o.validate();
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "audio.pack_windows_per_task: 0 is out of range; expected 1 to 1000000");
  }
}

}  // namespace
}  // namespace lipsync::audio
