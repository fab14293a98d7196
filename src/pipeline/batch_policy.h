// The Scheduler's batching policy as a pure function of the queue, the runner and the clock, so
// it is tested on a fake clock (Triton's GetDynamicBatch in small). The Scheduler's thread locks,
// asks, and either forms a batch or sleeps until the time the policy names.
//
// Rules, in order (n = queued jobs, B = max_batch):
//   1. n == 0: wait for a job.
//   2. n >= B: take B now (batch n+1 is prepared while batch n runs).
//   3. Otherwise take min(n, B) at the earliest of
//        - max(oldest arrival + max_batch_wait, runner free - prepare time): a partial batch
//          waits at most max_batch_wait_ms from its oldest job's arrival, and no longer than
//          that while the runner is idle; while the runner is busy it keeps collecting until
//          just before the runner frees up, since it could not start earlier anyway;
//        - earliest deadline - run time of the batch - prepare time: a job with a deadline is
//          started in time to meet it.
//
// Overload (plan_deadline_batch): a batch can start running at max(now + prepare time, the
// first runner free). A job whose deadline is before that start plus one frame's run time cannot
// be on time even alone: it is skipped, not run (its frame is late either way, and running it
// would make the jobs behind it late too), so the capacity goes to frames that can still be on
// time. Of the jobs that can, the batch takes no more than lets its earliest deadline be met.
// Seniority: speech that was already playing when the overload began keeps its frames. Each job
// carries when its speech run began (`since`: the first tick of the utterances its session has
// been speaking back to back); a job whose run began more than kTogether after the oldest run
// queued is junior, and junior jobs are taken only after every senior one (the generator's
// leftover capacity goes to them). So a session speaking on its own is not made late by another
// that starts speaking beside it; the newcomer takes the lateness.
// Fairness among runs that began together (within kTogether): two sessions over capacity would
// otherwise settle into one winning every frame (the one whose ticks come a few milliseconds
// first) and the other losing almost all. So each client carries a debt (its jobs skipped
// lately, less those run since), and jobs are taken in the order of their deadline less
// kDebtStep per unit of debt: a client that lost the last frames wins the next, and over
// capacity both are served about equally.
// Thread contract: stateless.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace lipsync::pipeline {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;
using SteadyDuration = SteadyClock::duration;

// What the policy sees.
struct BatchQueueState {
  std::size_t queued = 0;
  SteadyTime oldest_arrival{};                  // of the queued jobs (when queued > 0)
  std::optional<SteadyTime> earliest_deadline;  // of the queued jobs that have one
  bool runner_busy = false;
  SteadyTime runner_free_at{};          // expected end of the running batch (when busy)
  SteadyDuration prepare_time{};        // expected time to fill a batch's inputs
  SteadyDuration run_time_per_frame{};  // expected generator time per frame
};

struct BatchPolicy {
  std::size_t max_batch = 8;
  SteadyDuration max_batch_wait = std::chrono::milliseconds(5);
};

// take > 0: form a batch of the first `take` jobs now. take == 0: sleep until `wake_at` (or
// until something changes; `wake_at` is empty when only a new job can change the answer).
struct BatchDecision {
  std::size_t take = 0;
  std::optional<SteadyTime> wake_at;
};

BatchDecision next_batch(const BatchQueueState& state, SteadyTime now, const BatchPolicy& policy);

// How much earlier a job's deadline counts per unit of its client's debt (one 25 fps tick), and
// the most debt a client carries.
inline constexpr SteadyDuration kDebtStep = std::chrono::milliseconds(40);
inline constexpr int kMaxDebt = 4;
// Speech runs that began within this of each other share the generator; a later one is junior.
inline constexpr SteadyDuration kTogether = std::chrono::milliseconds(500);

// A queued job with a deadline, as the overload rule sees it.
struct DeadlineJob {
  SteadyTime deadline{};
  int debt = 0;        // its client's (0..kMaxDebt)
  SteadyTime since{};  // when its speech run began (the epoch: senior to every run)
};

// A batch about to be formed from the jobs with deadlines.
struct DeadlinePlan {
  std::vector<std::size_t> skip;  // indices of the jobs that cannot be on time: not run
  std::vector<std::size_t> take;  // indices of the jobs to run in this batch, in order
  std::size_t size = 0;           // the batch's most frames, these and jobs without deadlines
};

// `jobs`: the queued jobs with deadlines, earliest deadline first; `take`: the batch size
// next_batch chose. Without run-time estimates (none measured yet) nothing is skipped and jobs
// are taken earliest deadline first.
DeadlinePlan plan_deadline_batch(std::span<const DeadlineJob> jobs, std::size_t take,
                                 const BatchQueueState& state, SteadyTime now);

}  // namespace lipsync::pipeline
