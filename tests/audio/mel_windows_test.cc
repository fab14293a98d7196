#include "audio/mel_windows.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "audio/audio_file.h"
#include "core/error.h"
#include "core/task_arena.h"
#include "support/test_data.h"

namespace lipsync::audio {
namespace {

using lipsync::testing::diff;
using lipsync::testing::read_f32;
using lipsync::testing::read_text;
using lipsync::testing::testdata;

AudioOptions sequential_options() {
  AudioOptions o;
  o.parallel_mel_extraction = false;
  return o;
}

// A mel whose every value tells where it came from: value(t, b) = t * 80 + b.
Mel indexed_mel(int frames) {
  std::vector<float> data(static_cast<std::size_t>(frames) * kMelBands);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  return Mel(frames, std::move(data));
}

class WindowParity : public ::testing::TestWithParam<const char*> {};

TEST_P(WindowParity, CountStartsAndContentsMatchReference) {
  const std::string name = GetParam();
  const auto sidecar = nlohmann::json::parse(read_text(testdata("audio/" + name + ".json")));
  const Mel mel =
      MelSpectrogram().compute(load_audio_file(testdata("audio/" + name + ".f32")), AudioOptions{});
  const MelWindows windows(mel, AudioOptions{});
  ASSERT_EQ(windows.count(), sidecar["windows"]["data_len"].get<int>()) << name;
  EXPECT_EQ(windows.starts(), sidecar["windows"]["window_start_frames"].get<std::vector<int>>());
  const std::string windows_file = "audio/" + name + ".windows16x80.f32";
  // Only speech_a_en, sine_440 and short_0p3s have stored window contents (README.md).
  if (name == "sweep_log_50_8000" || name == "silence") return;
  const std::vector<float> expected = read_f32(testdata(windows_file));
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(windows.count()) * 16 * 80);
  for (int k = 0; k < windows.count(); ++k) {
    const MelWindow w = windows.window(k);
    const auto d =
        diff(std::span<const float>(w.rows, 16 * 80),
             std::span<const float>(expected).subspan(static_cast<std::size_t>(k) * 1280, 1280));
    ASSERT_LE(d.max_abs, 2e-4) << name << " window " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, WindowParity,
                         ::testing::Values("speech_a_en", "sine_440", "sweep_log_50_8000",
                                           "silence", "short_0p3s"));

TEST(MelWindows, CountRoundsDownInDoubleLikeTheReference) {
  EXPECT_EQ(MelWindows::count_for_frames(16), 2);
  EXPECT_EQ(MelWindows::count_for_frames(17), 2);
  EXPECT_EQ(MelWindows::count_for_frames(25), 4);
  EXPECT_EQ(MelWindows::count_for_frames(161), 47);
  EXPECT_EQ(MelWindows::count_for_frames(384), 116);  // exact arithmetic gives 117
  EXPECT_EQ(MelWindows::count_for_frames(401), 122);
  EXPECT_EQ(MelWindows::count_for_frames(672), 206);  // exact: 207
  EXPECT_EQ(MelWindows::count_for_frames(752), 231);  // exact: 232
  EXPECT_EQ(MelWindows::count_for_frames(673), 207);
}

TEST(MelWindows, StartsFollowSixteenFifthsAndClampAtTheEnd) {
  const int expected[] = {0, 3, 6, 9, 12, 16, 19, 22, 25, 28, 32};
  for (int k = 0; k < 11; ++k) EXPECT_EQ(MelWindows::start_for(k, 1000), expected[k]) << k;
  EXPECT_EQ(MelWindows::start_for(1, 16), 0);      // 3 + 16 > 16 -> T - 16
  EXPECT_EQ(MelWindows::start_for(1, 17), 1);      // 3 + 16 > 17 -> 1
  EXPECT_EQ(MelWindows::start_for(46, 161), 145);  // 147 + 16 > 161
  EXPECT_EQ(MelWindows::start_for(45, 161), 144);
  EXPECT_EQ(MelWindows::start_for(100000, 1000000), 320000);
}

TEST(MelWindows, BoundaryFrameCounts) {
  const Mel m16 = indexed_mel(16);
  const MelWindows w16(m16, AudioOptions{});
  EXPECT_EQ(w16.count(), 2);
  EXPECT_EQ(w16.starts(), (std::vector<int>{0, 0}));
  const Mel m17 = indexed_mel(17);
  const MelWindows w17(m17, AudioOptions{});
  EXPECT_EQ(w17.starts(), (std::vector<int>{0, 1}));
  const Mel m15 = indexed_mel(15);
  try {
    const MelWindows w15(m15, AudioOptions{});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find("15 frames"), std::string::npos) << e.message();
  }
}

TEST(MelWindows, ThreeThousandSamplesGiveTwoWindowsAndOneLessIsAnError) {
  const MelSpectrogram mel_spectrogram;
  const Mel mel = mel_spectrogram.compute(std::vector<float>(3000, 0.25f), AudioOptions{});
  EXPECT_EQ(MelWindows(mel, AudioOptions{}).count(), 2);
  EXPECT_THROW((void)mel_spectrogram.compute(std::vector<float>(2999, 0.25f), AudioOptions{}),
               Error);
}

TEST(MelWindows, ViewsPointIntoTheMelWithoutCopying) {
  const Mel mel = indexed_mel(100);
  const MelWindows windows(mel, AudioOptions{});
  for (int k = 0; k < windows.count(); ++k) {
    const MelWindow w = windows.window(k);
    EXPECT_EQ(w.rows, mel.row(windows.start(k)).data());
    EXPECT_EQ(w.at(3, 7), static_cast<float>((w.start + 3) * 80 + 7));
  }
}

TEST(MelWindows, PackedBatchHoldsEveryElementAtItsTransposedPlace) {
  const Mel mel = indexed_mel(401);
  const MelWindows windows(mel, sequential_options());
  const int first = 5;
  const int count = windows.count() - first;
  std::vector<float> out(static_cast<std::size_t>(count) * MelWindows::kPackedWindowSize, -1.0f);
  windows.pack_encoder_batch(first, count, out);
  for (int i = 0; i < count; ++i) {
    const int s = windows.start(first + i);
    for (int b = 0; b < 80; ++b) {
      for (int t = 0; t < 16; ++t) {
        ASSERT_EQ(out[(static_cast<std::size_t>(i) * 80 + b) * 16 + t],
                  static_cast<float>((s + t) * 80 + b))
            << "window " << first + i << " band " << b << " row " << t;
      }
    }
  }
}

TEST(MelWindows, ParallelPackingIsBitIdenticalToSequential) {
  const std::vector<float> samples = load_audio_file(testdata("audio/sweep_log_50_8000.f32"));
  const Mel mel = MelSpectrogram().compute(samples, sequential_options());
  const core::TaskArena arena(4);
  const MelWindows seq(mel, sequential_options());
  for (int grain : {1, 5, 256}) {
    AudioOptions parallel;
    parallel.arena = &arena;
    parallel.pack_windows_per_task = grain;
    const MelWindows par(mel, parallel);
    for (auto [first, count] : {std::pair{0, seq.count()}, std::pair{3, 25}, std::pair{97, 25},
                                std::pair{seq.count() - 1, 1}, std::pair{10, 0}}) {
      std::vector<float> a(static_cast<std::size_t>(count) * MelWindows::kPackedWindowSize, 1.0f);
      std::vector<float> b(a.size(), 2.0f);
      seq.pack_encoder_batch(first, count, a);
      par.pack_encoder_batch(first, count, b);
      ASSERT_TRUE(a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0)
          << "grain " << grain << " first " << first << " count " << count;
    }
  }
}

TEST(MelWindows, OutOfRangePackIsAnInternalError) {
  const Mel mel = indexed_mel(20);
  const MelWindows windows(mel, AudioOptions{});
  ASSERT_EQ(windows.count(), 3);
  std::vector<float> out(4 * MelWindows::kPackedWindowSize);
  EXPECT_THROW(windows.pack_encoder_batch(0, 4, out), Error);
  EXPECT_THROW(windows.pack_encoder_batch(-1, 1, std::span(out).first(1280)), Error);
  std::vector<float> small(10);
  EXPECT_THROW(windows.pack_encoder_batch(0, 1, small), Error);
}

}  // namespace
}  // namespace lipsync::audio
