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

DeadlinePlan plan_deadline_batch(std::span<const DeadlineJob> jobs, std::size_t take,
                                 const BatchQueueState& s, SteadyTime now) {
  DeadlinePlan plan;
  plan.size = take;
  const bool estimated = s.run_time_per_frame > SteadyDuration::zero();
  SteadyTime start = now + s.prepare_time;
  if (s.runner_busy) start = std::max(start, s.runner_free_at);
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (estimated && jobs[i].deadline < start + s.run_time_per_frame) {
      plan.skip.push_back(i);
    } else {
      order.push_back(i);
    }
  }
  if (estimated && !order.empty()) {
    SteadyTime oldest = SteadyTime::max();  // the oldest speech run that can still be on time
    for (const std::size_t i : order) oldest = std::min(oldest, jobs[i].since);
    const auto junior = [&](std::size_t i) { return jobs[i].since - oldest > kTogether; };
    const auto virtual_deadline = [&](std::size_t i) {
      return jobs[i].deadline - kDebtStep * std::clamp(jobs[i].debt, 0, kMaxDebt);
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (junior(a) != junior(b)) return junior(b);
      return virtual_deadline(a) < virtual_deadline(b);
    });
  }
  SteadyTime earliest = SteadyTime::max();  // of the jobs taken
  for (const std::size_t i : order) {
    if (plan.take.size() >= take) break;
    if (estimated) {
      // The batch with this job must still end by every taken job's deadline.
      const SteadyTime must_end = std::min(earliest, jobs[i].deadline);
      const auto frames = static_cast<SteadyDuration::rep>(plan.take.size() + 1);
      if (start + s.run_time_per_frame * frames > must_end) break;
      earliest = must_end;
    }
    plan.take.push_back(i);
  }
  if (estimated && !plan.take.empty()) {
    // Jobs without deadlines may fill the batch as far as its earliest deadline allows.
    const auto fit = static_cast<std::size_t>((earliest - start) / s.run_time_per_frame);
    plan.size = std::clamp<std::size_t>(fit, plan.take.size(), take);
  }
  return plan;
}

}  // namespace lipsync::pipeline
