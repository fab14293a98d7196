// The scheduler's batching policy on a fake clock: no thread, no model, just times.
#include "pipeline/batch_policy.h"

#include <gtest/gtest.h>

#include <vector>

namespace lipsync::pipeline {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

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

// Overload: deadlines that no batch can meet any more.
BatchQueueState planning(bool busy, milliseconds free_in) {
  BatchQueueState s;
  s.runner_busy = busy;
  s.runner_free_at = kNow + free_in;
  s.prepare_time = milliseconds(5);
  s.run_time_per_frame = milliseconds(40);
  return s;
}

// Jobs due `ms` from now, with no debt.
std::vector<DeadlineJob> due(std::initializer_list<int> ms_from_now) {
  std::vector<DeadlineJob> out;
  for (int ms : ms_from_now) out.push_back({kNow + milliseconds(ms), 0});
  return out;
}

using Indices = std::vector<std::size_t>;

TEST(BatchPolicy, JobsThatCannotBeOnTimeEvenAloneAreSkipped) {
  // Idle runner: a batch starts running 5 ms from now, one frame ends at 45 ms.
  const auto idle = planning(false, milliseconds(0));
  EXPECT_EQ(plan_deadline_batch(due({-100, 0, 44, 45, 500}), 8, idle, kNow).skip,
            (Indices{0, 1, 2}));
  // Busy until 300 ms: one frame ends at 340 ms at the earliest.
  const auto busy = planning(true, milliseconds(300));
  EXPECT_EQ(plan_deadline_batch(due({100, 339, 340, 1000}), 8, busy, kNow).skip, (Indices{0, 1}));
  // A runner that overran its estimate: the batch starts after its preparation.
  const auto overran = planning(true, milliseconds(-50));
  EXPECT_EQ(plan_deadline_batch(due({44, 45}), 8, overran, kNow).skip, (Indices{0}));
  // Every one hopeless: all skipped, and jobs without deadlines may fill the whole batch.
  const DeadlinePlan all = plan_deadline_batch(due({-5, 10, 20}), 8, idle, kNow);
  EXPECT_EQ(all.skip, (Indices{0, 1, 2}));
  EXPECT_TRUE(all.take.empty());
  EXPECT_EQ(all.size, 8u);
}

TEST(BatchPolicy, TheBatchTakesNoMoreThanItsEarliestDeadlineAllows) {
  const auto idle = planning(false, milliseconds(0));
  // 125 ms after the start fits 3 frames of 40 ms: a batch of 8 would make all of them late.
  const DeadlinePlan three = plan_deadline_batch(due({130, 131, 132, 133, 900}), 8, idle, kNow);
  EXPECT_EQ(three.take, (Indices{0, 1, 2}));
  EXPECT_EQ(three.size, 3u);  // nor may jobs without deadlines lengthen it
  // Plenty of time: the batch next_batch chose, earliest first.
  const DeadlinePlan two = plan_deadline_batch(due({2000, 2001}), 2, idle, kNow);
  EXPECT_EQ(two.take, (Indices{0, 1}));
  // Just one frame's time: one.
  const DeadlinePlan one = plan_deadline_batch(due({45, 46, 47}), 8, idle, kNow);
  EXPECT_TRUE(one.skip.empty());
  EXPECT_EQ(one.take, (Indices{0}));
}

TEST(BatchPolicy, AClientInDebtGoesBeforeOneThatIsNot) {
  const auto idle = planning(false, milliseconds(0));
  // Two sessions' frames of the same tick, 10 ms apart, room for one: the first wins...
  auto jobs = due({60, 70});
  EXPECT_EQ(plan_deadline_batch(jobs, 8, idle, kNow).take, (Indices{0}));
  // ...unless the other lost the last frames: its deadline counts 40 ms earlier per debt.
  jobs[1].debt = 1;
  EXPECT_EQ(plan_deadline_batch(jobs, 8, idle, kNow).take, (Indices{1}));
  // Debt never makes a job that cannot be on time run.
  jobs = due({30, 900});
  jobs[0].debt = kMaxDebt;
  const DeadlinePlan plan = plan_deadline_batch(jobs, 8, idle, kNow);
  EXPECT_EQ(plan.skip, (Indices{0}));
  EXPECT_EQ(plan.take, (Indices{1}));
}

TEST(BatchPolicy, SpeechThatWasPlayingFirstKeepsItsFrames) {
  const auto idle = planning(false, milliseconds(0));
  // A run that began 5 s ago and one that began 2 s after it, room for one frame: the older
  // run's frame goes, though its deadline is later and the newcomer is in debt.
  auto jobs = due({60, 70});
  jobs[0].since = kNow - seconds(3);
  jobs[1].since = kNow - seconds(5);
  jobs[0].debt = kMaxDebt;
  EXPECT_EQ(plan_deadline_batch(jobs, 8, idle, kNow).take, (Indices{1}));
  // The newcomer gets what is left: every senior job first, then its own.
  jobs = due({600, 900, 700});
  jobs[0].since = kNow - seconds(3);
  jobs[1].since = kNow - seconds(5);
  jobs[2].since = kNow - seconds(5);
  EXPECT_EQ(plan_deadline_batch(jobs, 8, idle, kNow).take, (Indices{2, 1, 0}));
  // Runs that began within kTogether of each other share: deadline and debt decide.
  jobs = due({60, 70});
  jobs[0].since = kNow - seconds(5) + kTogether;
  jobs[1].since = kNow - seconds(5);
  EXPECT_EQ(plan_deadline_batch(jobs, 8, idle, kNow).take, (Indices{0}));
  jobs[1].debt = 1;
  EXPECT_EQ(plan_deadline_batch(jobs, 8, idle, kNow).take, (Indices{1}));
  // Seniority never makes a job that cannot be on time run; the oldest run that can still be
  // on time sets the bar.
  jobs = due({30, 900});
  jobs[0].since = kNow - seconds(60);
  jobs[1].since = kNow - seconds(5);
  const DeadlinePlan plan = plan_deadline_batch(jobs, 8, idle, kNow);
  EXPECT_EQ(plan.skip, (Indices{0}));
  EXPECT_EQ(plan.take, (Indices{1}));
}

TEST(BatchPolicy, WithoutRunTimeEstimatesNothingIsSkipped) {
  BatchQueueState s;  // nothing measured yet
  const DeadlinePlan plan = plan_deadline_batch(due({-1000, -10}), 8, s, kNow);
  EXPECT_TRUE(plan.skip.empty());
  EXPECT_EQ(plan.take, (Indices{0, 1}));
  EXPECT_EQ(plan.size, 8u);
}

}  // namespace
}  // namespace lipsync::pipeline
