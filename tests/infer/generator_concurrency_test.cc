// One Generator shared by several threads gives each caller its own, correct outputs (the old
// server mixed outputs of concurrent requests). Runs under ThreadSanitizer in CI.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "contract/model_family.h"
#include "infer/generator.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

// Inputs that differ per (thread, round).
void fill(infer::GeneratorBatch& batch, int seed) {
  for (int i = 0; i < batch.size(); ++i) {
    auto image = batch.image(i);
    for (std::size_t k = 0; k < image.size(); ++k) {
      image[k] = float((k * 31 + std::size_t(seed) * 977 + i * 13) % 251) / 251.0f;
    }
    auto audio = batch.audio(i);
    for (std::size_t k = 0; k < audio.size(); ++k) {
      audio[k] = float((k * 17 + std::size_t(seed) * 101) % 97) / 24.0f;
    }
  }
}

TEST(GeneratorConcurrency, FourThreadsGetTheSameOutputsAsOne) {
  infer::InferOptions options;
  options.intra_op_threads = 2;
  const infer::Generator generator(testing::synth_models(0.0625, 3) / "generator.onnx", options);
  constexpr int kThreads = 4;
  constexpr int kRounds = 2;
  constexpr int kBatch = 2;

  // Expected outputs, computed one call at a time.
  std::vector<std::vector<float>> expected(kThreads * kRounds);
  for (int t = 0; t < kThreads; ++t) {
    for (int r = 0; r < kRounds; ++r) {
      auto batch = generator.make_batch(kBatch);
      fill(batch, t * kRounds + r);
      generator.run(batch);
      expected[t * kRounds + r].assign(batch.outputs().begin(), batch.outputs().end());
    }
  }
  // The outputs differ between inputs, so a mix-up would show.
  ASSERT_NE(expected[0], expected[1]);

  std::vector<std::vector<float>> got(kThreads * kRounds);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        auto batch = generator.make_batch(kBatch);
        fill(batch, t * kRounds + r);
        generator.run(batch);
        got[t * kRounds + r].assign(batch.outputs().begin(), batch.outputs().end());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < kThreads * kRounds; ++i) {
    EXPECT_EQ(0, std::memcmp(got[i].data(), expected[i].data(), got[i].size() * 4)) << "call " << i;
  }
}

}  // namespace
}  // namespace lipsync
