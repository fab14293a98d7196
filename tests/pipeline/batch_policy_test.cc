// The scheduler's batching policy on a fake clock: no thread, no model, just times.
#include "pipeline/batch_policy.h"

#include <gtest/gtest.h>

namespace lipsync::pipeline {
namespace {

using std::chrono::milliseconds;

// A fixed "now" for every case; times are offsets from it.
const SteadyTime kNow = SteadyTime{} + std::chrono::hours(1);

BatchPolicy policy(std::size_t max_batch = 8, int wait_ms = 5) {
  return {max_batch, milliseconds(wait_ms)};
}

BatchQueueState queued(std::size_t n, milliseconds oldest_age) {
  BatchQueueState s;
  s.queued = n;
  s.oldest_arrival = kNow - oldest_age;
  return s;
}

TEST(BatchPolicy, EmptyQueueWaitsForAJob) {
  const BatchDecision d = next_batch({}, kNow, policy());
  EXPECT_EQ(d.take, 0u);
  EXPECT_FALSE(d.wake_at.has_value());
}

TEST(BatchPolicy, FullBatchGoesAtOnceEvenWhileTheRunnerIsBusy) {
  auto s = queued(20, milliseconds(0));
  s.runner_busy = true;
  s.runner_free_at = kNow + milliseconds(500);
  const BatchDecision d = next_batch(s, kNow, policy(8));
  EXPECT_EQ(d.take, 8u);  // prepared now, so it is ready when the running batch ends
}

TEST(BatchPolicy, PartialBatchWaitsFromTheOldestArrival) {
  // Oldest job 2 ms old, wait 5 ms: wake 3 ms from now.
  BatchDecision d = next_batch(queued(3, milliseconds(2)), kNow, policy(8, 5));
  EXPECT_EQ(d.take, 0u);
  ASSERT_TRUE(d.wake_at.has_value());
  EXPECT_EQ(*d.wake_at, kNow + milliseconds(3));
  // At that time (or later) it goes, with every queued job.
  d = next_batch(queued(3, milliseconds(5)), kNow, policy(8, 5));
  EXPECT_EQ(d.take, 3u);
  d = next_batch(queued(3, milliseconds(50)), kNow, policy(8, 5));
  EXPECT_EQ(d.take, 3u);
}

TEST(BatchPolicy, ZeroWaitTakesWhatIsThere) {
  EXPECT_EQ(next_batch(queued(1, milliseconds(0)), kNow, policy(8, 0)).take, 1u);
}

TEST(BatchPolicy, BusyRunnerKeepsCollectingUntilJustBeforeItFrees) {
  auto s = queued(3, milliseconds(50));  // waited long past max_batch_wait
  s.runner_busy = true;
  s.runner_free_at = kNow + milliseconds(100);
  s.prepare_time = milliseconds(10);
  BatchDecision d = next_batch(s, kNow, policy(8, 5));
  EXPECT_EQ(d.take, 0u);
  ASSERT_TRUE(d.wake_at.has_value());
  EXPECT_EQ(*d.wake_at, kNow + milliseconds(90));  // free time minus the preparation
  // Once there, it goes.
  d = next_batch(s, kNow + milliseconds(90), policy(8, 5));
  EXPECT_EQ(d.take, 3u);
  // A runner that overran its estimate does not hold the batch back.
  s.runner_free_at = kNow - milliseconds(20);
  EXPECT_EQ(next_batch(s, kNow, policy(8, 5)).take, 3u);
}

TEST(BatchPolicy, ADeadlineStartsTheBatchInTime) {
  auto s = queued(2, milliseconds(0));
  s.runner_busy = true;
  s.runner_free_at = kNow + milliseconds(400);
  s.prepare_time = milliseconds(5);
  s.run_time_per_frame = milliseconds(40);
  s.earliest_deadline = kNow + milliseconds(200);
  // 2 frames take 80 ms to run and 5 ms to prepare: start by 115 ms from now.
  BatchDecision d = next_batch(s, kNow, policy(8, 5));
  EXPECT_EQ(d.take, 0u);
  ASSERT_TRUE(d.wake_at.has_value());
  EXPECT_EQ(*d.wake_at, kNow + milliseconds(115));
  EXPECT_EQ(next_batch(s, kNow + milliseconds(115), policy(8, 5)).take, 2u);
  // A deadline already too close: now.
  s.earliest_deadline = kNow + milliseconds(10);
  EXPECT_EQ(next_batch(s, kNow, policy(8, 5)).take, 2u);
}

TEST(BatchPolicy, NeverTakesMoreThanMaxBatch) {
  for (std::size_t n : {1u, 7u, 8u, 9u, 100u}) {
    const BatchDecision d = next_batch(queued(n, milliseconds(100)), kNow, policy(8, 5));
    EXPECT_EQ(d.take, std::min<std::size_t>(n, 8)) << n;
  }
}

}  // namespace
}  // namespace lipsync::pipeline
