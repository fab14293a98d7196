// FeatureTrack: the per-frame audio tensors of REFERENCE.md §4, whole-clip and streaming.
#include "pipeline/feature_track.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "audio/audio_file.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "infer/audio_encoder.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using testing::read_f32;
using testing::testdata;

using testing::two_threads;

std::vector<float> frame_audio(const pipeline::FeatureTrack& track, int frame) {
  std::vector<float> out(contract::kAudioInputSize);
  track.frame_audio(frame, out);
  return out;
}

TEST(FeatureTrack, ReproducesThePythonFrameTensorsExactly) {
  pipeline::ClipFeatures f{116, read_f32(testdata("reference/features.f32"))};
  const auto track = pipeline::FeatureTrack::from_features(std::move(f));
  EXPECT_TRUE(track.finished());
  EXPECT_EQ(track.total_frames(), 118);
  EXPECT_EQ(track.ready_frames(), 118);
  for (int i : {0, 1, 2, 3, 4, 5, 6, 7, 110, 111, 112, 113, 114, 115, 116, 117}) {
    char name[64];
    std::snprintf(name, sizeof name, "reference/audio_%05d.f32", i);
    const auto expected = read_f32(testdata(name));
    const auto got = frame_audio(track, i);
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), got.size() * 4)) << "frame " << i;
  }
}

TEST(FeatureTrack, EdgeRulesOnHandMadeFeatures) {
  // Feature k filled with k + 1, so every row says which feature it came from (0 = zero row).
  const int L = 20;
  pipeline::ClipFeatures f{L, std::vector<float>(L * 512)};
  for (int k = 0; k < L; ++k) std::fill_n(f.values.begin() + k * 512, 512, float(k + 1));
  const auto track = pipeline::FeatureTrack::from_features(std::move(f));
  ASSERT_EQ(track.total_frames(), L + 2);
  for (int i = 0; i < L + 2; ++i) {
    const auto a = frame_audio(track, i);
    for (int r = 0; r < 16; ++r) {
      const int row = i - 8 + r;
      float expected = 0;                               // outside [0, L + 2): zero
      if (row == 0) expected = 1;                       // f0 repeated
      if (row >= 1 && row <= L) expected = float(row);  // f(row - 1)
      if (row == L + 1) expected = float(L);            // f(L-1) repeated
      // Row r is channels 2r and 2r + 1 (halves of 256 values).
      EXPECT_EQ(a[r * 512], expected) << "frame " << i << " row " << r;
      EXPECT_EQ(a[r * 512 + 511], expected) << "frame " << i << " row " << r;
    }
  }
}

TEST(FeatureTrack, FromFeaturesRejectsBadSizes) {
  EXPECT_THROW(pipeline::FeatureTrack::from_features({0, {}}), Error);
  EXPECT_THROW(pipeline::FeatureTrack::from_features({2, std::vector<float>(1000)}), Error);
}

// Deterministic speech-like audio: tones and noise under a syllable envelope, with pauses.
std::vector<float> speechlike(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double t = double(i) / 16000.0;
    const double env = std::max(0.0, std::sin(2 * M_PI * 3.0 * t));
    out[i] = float(env * (0.3 * std::sin(2 * M_PI * 220.0 * t) + noise(rng)));
  }
  return out;
}

// Streams `samples` in random chunks (1 sample to 2 s), checks every frame when it first becomes
// ready against the whole-clip result, and the state after finish.
void check_streaming_equals_clip(const std::vector<float>& samples, unsigned seed) {
  const infer::AudioEncoder encoder(testing::synth_models() / "audio_encoder.onnx", two_threads());
  const audio::AudioOptions options;
  const auto clip = pipeline::FeatureTrack::from_features(
      pipeline::encode_clip_features(samples, encoder, options));

  pipeline::FeatureTrack track(encoder, options);
  std::mt19937 rng(seed);
  // Mostly small chunks, some large: log-uniform between 1 and 32000 samples.
  std::uniform_real_distribution<double> log_size(0.0, std::log(32000.0));
  std::size_t pos = 0;
  int checked = 0;
  while (pos < samples.size()) {
    const auto size =
        std::min<std::size_t>(samples.size() - pos, std::size_t(std::exp(log_size(rng))));
    const int before = track.ready_frames();
    track.append(std::span(samples).subspan(pos, size));
    pos += size;
    ASSERT_GE(track.ready_frames(), before);
    ASSERT_LE(track.ready_frames(), clip.total_frames());
    for (; checked < track.ready_frames(); ++checked) {
      ASSERT_EQ(frame_audio(track, checked), frame_audio(clip, checked))
          << "frame " << checked << " differs when it became ready at sample " << pos;
    }
    track.release_before(checked);
  }
  track.finish();
  ASSERT_EQ(track.total_frames(), clip.total_frames());
  ASSERT_EQ(track.windows_encoded(), clip.windows_encoded());
  for (; checked < track.total_frames(); ++checked) {
    ASSERT_EQ(frame_audio(track, checked), frame_audio(clip, checked)) << "tail frame " << checked;
  }
}

TEST(FeatureTrack, StreamingEqualsWholeClipOnTheReferenceSpeech) {
  // 76,700 samples: T = 384, where L is one less than exact arithmetic gives.
  const auto samples = audio::load_audio_file(testdata("reference/speech_a_en.wav"));
  for (unsigned seed : {1u, 2u, 3u}) check_streaming_equals_clip(samples, seed);
}

TEST(FeatureTrack, StreamingEqualsWholeClipAtAwkwardLengths) {
  // The shortest clip, lengths around hop and window boundaries, and a longer one.
  for (std::size_t n : {3000u, 3001u, 3199u, 3200u, 16000u, 16399u, 134400u, 150523u}) {
    SCOPED_TRACE(n);
    check_streaming_equals_clip(speechlike(n, unsigned(n)), unsigned(n) + 1);
  }
}

TEST(FeatureTrack, FramesBecomeReadyWithinHalfASecondOfTheirTime) {
  const infer::AudioEncoder encoder(testing::synth_models() / "audio_encoder.onnx", two_threads());
  pipeline::FeatureTrack track(encoder, audio::AudioOptions{});
  const auto samples = speechlike(10 * 16000, 5);
  for (std::size_t pos = 0; pos < samples.size(); pos += 160) {  // 10 ms chunks
    track.append(std::span(samples).subspan(pos, 160));
    const double received_ms = double(pos + 160) / 16.0;
    // Frame i (time 40 i ms) needs audio up to about 40 i + 465 ms.
    const int must_be_ready = int(std::floor((received_ms - 470.0) / 40.0)) + 1;
    ASSERT_GE(track.ready_frames(), must_be_ready) << "at " << received_ms << " ms";
    // And never earlier than the audio it depends on: 40 i + 440 ms at the least.
    const int may_be_ready = int(std::floor((received_ms - 440.0) / 40.0)) + 1;
    ASSERT_LE(track.ready_frames(), std::max(0, may_be_ready)) << "at " << received_ms << " ms";
  }
}

TEST(FeatureTrack, TooShortStreamIsRejectedAtFinish) {
  const infer::AudioEncoder encoder(testing::synth_models() / "audio_encoder.onnx", two_threads());
  pipeline::FeatureTrack track(encoder, audio::AudioOptions{});
  track.append(std::vector<float>(2999, 0.1f));
  EXPECT_EQ(track.ready_frames(), 0);
  try {
    track.finish();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find("2999 samples is too short"), std::string::npos) << e.message();
  }
}

TEST(FeatureTrack, BadChunkIsRejectedAndLosesNothing) {
  const infer::AudioEncoder encoder(testing::synth_models() / "audio_encoder.onnx", two_threads());
  const auto samples = speechlike(8000, 9);
  pipeline::FeatureTrack track(encoder, audio::AudioOptions{});
  track.append(std::span(samples).first(4000));
  std::vector<float> bad(100, 0.0f);
  bad[50] = std::nanf("");
  EXPECT_THROW(track.append(bad), Error);
  EXPECT_EQ(track.samples_received(), 4000);
  track.append(std::span(samples).subspan(4000));
  track.finish();
  const auto clip = pipeline::FeatureTrack::from_features(
      pipeline::encode_clip_features(samples, encoder, audio::AudioOptions{}));
  ASSERT_EQ(track.total_frames(), clip.total_frames());
  for (int i = 0; i < clip.total_frames(); ++i)
    EXPECT_EQ(frame_audio(track, i), frame_audio(clip, i));
}

TEST(FeatureTrack, MemoryStaysFlatOnALongStream) {
  const infer::AudioEncoder encoder(testing::synth_models() / "audio_encoder.onnx", two_threads());
  pipeline::FeatureTrack track(encoder, audio::AudioOptions{});
  const auto chunk = speechlike(8000, 11);  // 0.5 s, repeated for 5 minutes
  std::size_t peak = 0;
  for (int i = 0; i < 600; ++i) {
    track.append(chunk);
    track.release_before(track.ready_frames());
    peak = std::max(peak, track.buffered_values());
  }
  // 4.8 M samples: 23,999 final mel rows; windows with s_k + 16 <= 23,999 are k <= 7494, so
  // 7495 final features and frames 0 .. 7488 (frame i needs feature i + 6).
  EXPECT_EQ(track.ready_frames(), 7489);
  // Whole-stream buffers would hold 4.8 M samples + 2.4 M mel values + 3.8 M feature values.
  EXPECT_LT(peak, 60000u) << "buffers grow with the stream";
}

TEST(FeatureTrack, FrameRowsWriteTheSameTensorsAsFrameAudio) {
  const int L = 30;
  pipeline::ClipFeatures f{L, std::vector<float>(L * 512)};
  for (std::size_t i = 0; i < f.values.size(); ++i) f.values[i] = float(i % 977) * 0.01f;
  auto track = pipeline::FeatureTrack::from_features(std::move(f));
  for (auto [first, count] :
       {std::pair{0, 1}, std::pair{0, 32}, std::pair{5, 7}, std::pair{27, 5}}) {
    const auto rows = track.frame_rows(first, count);
    EXPECT_EQ(rows->first(), first);
    EXPECT_EQ(rows->count(), count);
    for (int i = first; i < first + count; ++i) {
      std::vector<float> got(contract::kAudioInputSize);
      rows->write(i, got);
      EXPECT_EQ(got, frame_audio(track, i)) << "frame " << i;
    }
  }
  // A snapshot stays whole after the track released the frames it covers.
  const auto rows = track.frame_rows(10, 5);
  const auto expected = frame_audio(track, 12);
  track.release_before(15);
  std::vector<float> got(contract::kAudioInputSize);
  rows->write(12, got);
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace lipsync
