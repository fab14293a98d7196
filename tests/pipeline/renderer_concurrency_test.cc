// The renderer's producer, scheduler threads, workers and the task arena work on shared avatar
// caches at once; the frames must not depend on batch size, window or parallel generator runs. Runs
// under ThreadSanitizer in CI.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>

#include "audio/mel_constants.h"
#include "avatar/avatar_import.h"
#include "infer/models.h"
#include "pipeline/offline_renderer.h"
#include "support/collectors.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

TEST(RendererConcurrency, FramesDoNotDependOnBatchingWindowOrParallelRuns) {
  testing::TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 7, 320, 240);
  avatar::AvatarOptions small;
  small.frame_cache_mb = 1;  // forces evictions while stages share the caches
  small.roi_cache_mb = 1;
  const auto avatar = avatar::Avatar::open(dir / "demo", small);
  const infer::Models models(testing::demo_models(), testing::two_threads());
  std::vector<float> samples(16000 * 2);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    samples[i] = 0.3f * float(std::sin(i * 0.03)) * float((i / 3000) % 2);
  }
  std::vector<std::vector<cv::Mat>> runs;
  for (auto [batch, window] : {std::pair{1, 1}, std::pair{5, 3}, std::pair{3, 17}}) {
    pipeline::RenderOptions options;
    options.batch = batch;
    options.window_frames = window;
    testing::FrameCollector sink;
    pipeline::OfflineRenderer(avatar, models, options).render(samples, sink);
    EXPECT_TRUE(sink.finished);
    EXPECT_TRUE(sink.in_order);
    runs.push_back(std::move(sink.images));
  }
  {
    // Three generator runs at once (infer.parallel_runs): batches finish out of order.
    infer::InferOptions parallel;
    parallel.intra_op_threads = 1;
    parallel.parallel_runs = 3;
    const infer::Models parallel_models(testing::demo_models(), parallel);
    pipeline::RenderOptions options;
    options.batch = 2;
    options.window_frames = 9;
    testing::FrameCollector sink;
    pipeline::OfflineRenderer(avatar, parallel_models, options).render(samples, sink);
    EXPECT_TRUE(sink.finished);
    EXPECT_TRUE(sink.in_order);
    runs.push_back(std::move(sink.images));
  }
  ASSERT_EQ(runs[0].size(), 49u);  // 32000 samples: T = 161, L = 47
  for (std::size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (std::size_t i = 0; i < runs[0].size(); ++i) {
      ASSERT_EQ(cv::norm(runs[r][i], runs[0][i], cv::NORM_INF), 0.0)
          << "run " << r << " frame " << i;
    }
  }
}

}  // namespace
}  // namespace lipsync
