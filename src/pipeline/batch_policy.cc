#include "pipeline/batch_policy.h"

#include <algorithm>

namespace lipsync::pipeline {

BatchDecision next_batch(const BatchQueueState& s, SteadyTime now, const BatchPolicy& policy) {
  if (s.queued == 0) return {};
  const std::size_t take = std::min(s.queued, policy.max_batch);
  if (s.queued >= policy.max_batch) return {take, std::nullopt};

  SteadyTime start_at = s.oldest_arrival + policy.max_batch_wait;
  if (s.runner_busy) start_at = std::max(start_at, s.runner_free_at - s.prepare_time);
  if (s.earliest_deadline) {
    const auto run = s.run_time_per_frame * static_cast<SteadyDuration::rep>(take);
    start_at = std::min(start_at, *s.earliest_deadline - run - s.prepare_time);
  }
  if (now >= start_at) return {take, std::nullopt};
  return {0, start_at};
}

DeadlinePlan plan_deadline_batch(std::span<const SteadyTime> deadlines, std::size_t take,
                                 const BatchQueueState& s, SteadyTime now) {
  DeadlinePlan plan{0, take};
  if (s.run_time_per_frame <= SteadyDuration::zero() || take == 0) return plan;
  SteadyTime start = now + s.prepare_time;
  if (s.runner_busy) start = std::max(start, s.runner_free_at);
  while (plan.skip < deadlines.size() && deadlines[plan.skip] < start + s.run_time_per_frame) {
    ++plan.skip;
  }
  if (plan.skip < deadlines.size()) {
    // Frames of the batch that fit before its earliest deadline (at least one: it fits alone).
    const auto fit =
        static_cast<std::size_t>((deadlines[plan.skip] - start) / s.run_time_per_frame);
    plan.take = std::clamp<std::size_t>(fit, 1, take);
  }
  return plan;
}

}  // namespace lipsync::pipeline
