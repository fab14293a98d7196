// Many threads packing windows and computing mels from shared, read-only objects at once.
// CI runs this under ThreadSanitizer.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "core/task_arena.h"

namespace lipsync::audio {
namespace {

std::vector<float> noise(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> out(n);
  for (float& v : out) v = u(rng);
  return out;
}

TEST(MelConcurrency, ManyThreadsPackFromOneSharedMel) {
  AudioOptions sequential;
  sequential.parallel_mel_extraction = false;
  const Mel mel = MelSpectrogram().compute(noise(16000 * 10, 1), sequential);
  const core::TaskArena arena(2);
  AudioOptions parallel;
  parallel.arena = &arena;
  parallel.pack_windows_per_task = 4;
  const MelWindows shared(mel, parallel);
  const MelWindows reference(mel, sequential);
  std::vector<float> expected(static_cast<std::size_t>(reference.count()) *
                              MelWindows::kPackedWindowSize);
  reference.pack_encoder_batch(0, reference.count(), expected);

  constexpr int kThreads = 8;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out;
      for (int round = 0; round < 30; ++round) {
        const int first = (t * 37 + round * 11) % (shared.count() - 25);
        const int count = t % 2 == 0 ? 25 : shared.count() - first;
        out.assign(static_cast<std::size_t>(count) * MelWindows::kPackedWindowSize, 0.0f);
        shared.pack_encoder_batch(first, count, out);
        if (std::memcmp(
                out.data(),
                expected.data() + static_cast<std::size_t>(first) * MelWindows::kPackedWindowSize,
                out.size() * sizeof(float)) != 0) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(MelConcurrency, ConcurrentMelsFromOneMelSpectrogramMatch) {
  const MelSpectrogram mel_spectrogram;
  const core::TaskArena arena(2);
  AudioOptions parallel;
  parallel.arena = &arena;
  parallel.mel_frames_per_task = 16;
  AudioOptions sequential;
  sequential.parallel_mel_extraction = false;
  constexpr int kThreads = 4;
  std::vector<std::vector<float>> clips;
  std::vector<Mel> expected;
  for (int t = 0; t < kThreads; ++t) {
    clips.push_back(noise(16000 * 3 + t * 777, 10 + t));
    expected.push_back(mel_spectrogram.compute(clips.back(), sequential));
  }
  std::vector<int> ok(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Mel mel = mel_spectrogram.compute(clips[t], parallel);
      ok[t] =
          mel.frames() == expected[t].frames() &&
          std::memcmp(mel.data().data(), expected[t].data().data(), mel.data().size_bytes()) == 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(ok[t]) << "thread " << t;
}

}  // namespace
}  // namespace lipsync::audio
