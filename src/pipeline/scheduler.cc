#include "pipeline/scheduler.h"

#include <algorithm>
#include <exception>
#include <unordered_set>

#include "core/mutex.h"
#include "core/stopwatch.h"
#include "core/task_arena.h"

namespace lipsync::pipeline {
namespace {

// Moving averages of the stage times the policy plans with (new samples weigh 1/4).
SteadyDuration blend(SteadyDuration average, SteadyDuration sample) {
  if (average == SteadyDuration::zero()) return sample;
  return (average * 3 + sample) / 4;
}

SteadyDuration from_ms(double ms) {
  return std::chrono::duration_cast<SteadyDuration>(std::chrono::duration<double, std::milli>(ms));
}

// More clients in debt than this, and those with nothing queued are forgotten.
constexpr std::size_t kMostDebtors = 64;

// Fails jobs outside any lock.
void fail_all(std::vector<FrameJob>& jobs, const Error& error) {
  for (auto& job : jobs) job.client->failed(job.tag, error);
  jobs.clear();
}

}  // namespace

const core::ConfigTable<SchedulerOptions>& SchedulerOptions::config() {
  static const auto table =
      core::ConfigTable<SchedulerOptions>("scheduler")
          .integer("max_batch", &SchedulerOptions::max_batch, 0, 256,
                   "frames per generator batch, across all requests and streams of a model; 0 = "
                   "8 on the CPU provider, 32 on a GPU provider")
          .integer("max_batch_wait_ms", &SchedulerOptions::max_batch_wait_ms, 0, 1000,
                   "how long a partial batch waits to fill, from its oldest frame's arrival")
          .boolean("skip_late", &SchedulerOptions::skip_late,
                   "a live frame that cannot be ready by its tick is not made (it is shown late "
                   "either way), so that under overload the generator makes frames that can "
                   "still be on time; false: every frame is made, however late");
  return table;
}

void SchedulerOptions::validate() const {
  config().validate(*this);
}

int SchedulerOptions::resolved_max_batch(const infer::Generator& generator) const {
  if (max_batch > 0) return max_batch;
  return generator.session().providers().front() == "cpu" ? kCpuMaxBatch : kGpuMaxBatch;
}

// Validated options with max_batch resolved for the generator's provider.
SchedulerOptions Scheduler::resolve(SchedulerOptions options, const infer::Generator& generator) {
  options.validate();
  options.max_batch = options.resolved_max_batch(generator);
  return options;
}

// Jobs taken from the queue into one batch, with their buffers.
struct Scheduler::Taken {
  std::vector<FrameJob> jobs;
  std::vector<char> filled;  // 0 when a job's fill threw (it has failed already)
  infer::GeneratorBatch batch;
};

Scheduler::Scheduler(const infer::Generator& generator, SchedulerOptions options,
                     std::function<void(int, double)> on_batch)
    : generator_(generator),
      options_(resolve(options, generator)),
      policy_{static_cast<std::size_t>(options_.max_batch),
              std::chrono::milliseconds(options_.max_batch_wait_ms)},
      on_batch_(std::move(on_batch)),
      busy_until_(static_cast<std::size_t>(std::max(1, generator.parallel_runs()))),
      batch_sizes_(static_cast<std::size_t>(options_.max_batch) + 1, 0) {
  batcher_ = std::thread([this] { batcher_loop(); });
  for (std::size_t r = 0; r < busy_until_.size(); ++r) {
    runners_.emplace_back([this, r] { runner_loop(r); });
  }
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::stop() {
  core::MutexLock stop_lock(stop_mutex_);
  {
    core::MutexLock lock(mutex_);
    stopping_ = true;
  }
  batcher_wake_.notify_all();
  runner_wake_.notify_all();
  if (batcher_.joinable()) batcher_.join();
  for (auto& runner : runners_) {
    if (runner.joinable()) runner.join();
  }
  // Whatever is still queued or prepared fails.
  std::vector<FrameJob> left;
  {
    core::MutexLock lock(mutex_);
    for (auto& [deadline, item] : by_deadline_) left.push_back(std::move(item.first));
    for (auto& item : fifo_) left.push_back(std::move(item.first));
    by_deadline_.clear();
    fifo_.clear();
    if (prepared_) {
      for (std::size_t i = 0; i < prepared_->jobs.size(); ++i) {
        if (prepared_->filled[i]) left.push_back(std::move(prepared_->jobs[i]));
      }
      prepared_.reset();
    }
  }
  fail_all(left, Error::unavailable("the model was unloaded or the server is stopping"));
}

void Scheduler::warm_up(int runs) {
  if (runs <= 0) return;
  double ms = 0;
  for (int r = 0; r < runs; ++r) {
    core::Stopwatch sw;
    generator_.warm_up(options_.max_batch);
    ms = sw.elapsed_ms();
  }
  core::MutexLock lock(mutex_);
  run_estimate_per_frame_ = from_ms(ms / options_.max_batch);
}

void Scheduler::submit(std::vector<FrameJob> jobs) {
  {
    core::MutexLock lock(mutex_);
    if (stopping_) {
      throw Error::unavailable("the model is being unloaded or the server is stopping");
    }
    const SteadyTime now = SteadyClock::now();
    for (auto& job : jobs) {
      if (job.deadline) {
        const SteadyTime deadline = *job.deadline;
        by_deadline_.emplace(deadline, std::pair{std::move(job), now});
      } else {
        fifo_.emplace_back(std::move(job), now);
      }
    }
  }
  batcher_wake_.notify_all();
}

std::size_t Scheduler::cancel(const BatchClient* client) {
  std::vector<FrameJob> dropped;  // released outside the lock
  core::MutexLock lock(mutex_);
  debts_.erase(client);
  std::size_t n = 0;
  for (auto it = by_deadline_.begin(); it != by_deadline_.end();) {
    if (it->second.first.client.get() == client) {
      dropped.push_back(std::move(it->second.first));
      it = by_deadline_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  for (auto it = fifo_.begin(); it != fifo_.end();) {
    if (it->first.client.get() == client) {
      dropped.push_back(std::move(it->first));
      it = fifo_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

std::size_t Scheduler::queue_depth() const {
  core::MutexLock lock(mutex_);
  return by_deadline_.size() + fifo_.size();
}

std::size_t Scheduler::in_flight() const {
  core::MutexLock lock(mutex_);
  return by_deadline_.size() + fifo_.size() + preparing_ +
         (prepared_ ? prepared_->jobs.size() : 0) + running_;
}

SchedulerStats Scheduler::stats() const {
  core::MutexLock lock(mutex_);
  return stats_;
}

SteadyDuration Scheduler::expected_batch_time() const {
  core::MutexLock lock(mutex_);
  return prepare_estimate_ +
         run_estimate_per_frame_ * static_cast<SteadyDuration::rep>(options_.max_batch);
}

std::vector<std::uint64_t> Scheduler::batch_size_counts() const {
  core::MutexLock lock(mutex_);
  return batch_sizes_;
}

BatchQueueState Scheduler::state_locked() const {
  BatchQueueState s;
  s.queued = by_deadline_.size() + fifo_.size();
  if (s.queued == 0) return s;
  s.oldest_arrival = SteadyTime::max();
  if (!fifo_.empty()) s.oldest_arrival = fifo_.front().second;
  for (const auto& [deadline, item] : by_deadline_) {
    s.oldest_arrival = std::min(s.oldest_arrival, item.second);
  }
  if (!by_deadline_.empty()) s.earliest_deadline = by_deadline_.begin()->first;
  // The policy plans for the first runner to free up: busy only when every runner is.
  s.runner_busy = std::all_of(busy_until_.begin(), busy_until_.end(),
                              [](const auto& until) { return until.has_value(); });
  if (s.runner_busy) {
    s.runner_free_at = SteadyTime::max();
    for (const auto& until : busy_until_) s.runner_free_at = std::min(s.runner_free_at, *until);
  }
  s.prepare_time = prepare_estimate_;
  s.run_time_per_frame = run_estimate_per_frame_;
  return s;
}

// The jobs of the next batch of at most `take`: jobs with deadlines as
// plan_deadline_batch says (those that cannot be on time go to `skipped`, with scheduler.
// skip_late), then jobs without, in order of arrival, as far as the batch may grow.
std::vector<FrameJob> Scheduler::take_locked(std::size_t take, const BatchQueueState& state,
                                             SteadyTime now, std::vector<FrameJob>& skipped) {
  std::vector<FrameJob> jobs;
  std::size_t size = take;
  if (!by_deadline_.empty()) {
    std::vector<decltype(by_deadline_)::iterator> queued;
    std::vector<DeadlineJob> planned;
    queued.reserve(by_deadline_.size());
    planned.reserve(by_deadline_.size());
    for (auto it = by_deadline_.begin(); it != by_deadline_.end(); ++it) {
      queued.push_back(it);
      const auto debt = debts_.find(it->second.first.client.get());
      planned.push_back(
          {it->first, debt == debts_.end() ? 0 : debt->second, it->second.first.since});
    }
    DeadlinePlan plan;
    if (options_.skip_late) {
      plan = plan_deadline_batch(planned, take, state, now);
    } else {  // earliest deadline first, however late
      for (std::size_t i = 0; i < std::min(take, planned.size()); ++i) plan.take.push_back(i);
      plan.size = take;
    }
    for (const std::size_t i : plan.skip) {
      FrameJob& job = queued[i]->second.first;
      int& debt = debts_[job.client.get()];
      debt = std::min(debt + 1, kMaxDebt);
      skipped.push_back(std::move(job));
    }
    for (const std::size_t i : plan.take) {
      FrameJob& job = queued[i]->second.first;
      const auto debt = debts_.find(job.client.get());
      if (debt != debts_.end() && --debt->second <= 0) debts_.erase(debt);
      jobs.push_back(std::move(job));
    }
    for (const std::size_t i : plan.skip) by_deadline_.erase(queued[i]);
    for (const std::size_t i : plan.take) by_deadline_.erase(queued[i]);
    stats_.skipped += plan.skip.size();
    size = plan.size;
    if (debts_.size() > kMostDebtors) {  // clients that ended in debt: forget them
      std::unordered_set<const BatchClient*> queued_clients;
      for (const auto& [deadline, item] : by_deadline_)
        queued_clients.insert(item.first.client.get());
      std::erase_if(debts_, [&](const auto& d) { return !queued_clients.contains(d.first); });
    }
  }
  while (jobs.size() < size && !fifo_.empty()) {
    jobs.push_back(std::move(fifo_.front().first));
    fifo_.pop_front();
  }
  return jobs;
}

void Scheduler::batcher_loop() {
  while (true) {
    auto taken = std::make_unique<Taken>();
    std::vector<FrameJob> skipped;
    {
      core::MutexLock lock(mutex_);
      while (true) {
        if (stopping_) return;
        // One prepared batch at most waits for the runner.
        if (prepared_) {
          batcher_wake_.wait(lock);
          continue;
        }
        const SteadyTime now = SteadyClock::now();
        const BatchQueueState state = state_locked();
        const BatchDecision d = next_batch(state, now, policy_);
        if (d.take > 0) {
          taken->jobs = take_locked(d.take, state, now, skipped);
          if (!taken->jobs.empty() || !skipped.empty()) break;
          continue;
        }
        if (d.wake_at) {
          batcher_wake_.wait_until(lock, *d.wake_at);
        } else {
          batcher_wake_.wait(lock);
        }
      }
      preparing_ = taken->jobs.size();
    }
    for (auto& job : skipped) job.client->skipped(job.tag);
    skipped.clear();
    if (taken->jobs.empty()) continue;  // only skipped jobs this time
    prepare(*taken);
    {
      core::MutexLock lock(mutex_);
      preparing_ = 0;
      prepared_ = std::move(taken);
    }
    runner_wake_.notify_all();
  }
}

void Scheduler::prepare(Taken& taken) {
  const int count = static_cast<int>(taken.jobs.size());
  taken.filled.assign(taken.jobs.size(), 1);
  core::Stopwatch sw;
  std::vector<std::exception_ptr> errors(taken.jobs.size());
  try {
    taken.batch = generator_.make_batch(count);
    core::TaskArena::global().parallel_for(taken.jobs.size(), 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) {
        try {
          const int slot = static_cast<int>(i);
          taken.jobs[i].client->fill(taken.jobs[i].tag, taken.batch.image(slot),
                                     taken.batch.audio(slot));
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    });
  } catch (const std::exception& e) {  // the buffers could not be had
    const Error error = Error::internal(std::string("generator batch: ") + e.what());
    for (auto& job : taken.jobs) job.client->failed(job.tag, error);
    taken.jobs.clear();
    taken.filled.clear();
    return;
  }
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i]) continue;
    taken.filled[i] = 0;
    try {
      std::rethrow_exception(errors[i]);
    } catch (const Error& e) {
      taken.jobs[i].client->failed(taken.jobs[i].tag, e);
    } catch (const std::exception& e) {
      taken.jobs[i].client->failed(taken.jobs[i].tag,
                                   Error::internal(std::string("frame input: ") + e.what()));
    }
  }
  const double ms = sw.elapsed_ms();
  core::MutexLock lock(mutex_);
  prepare_estimate_ = blend(prepare_estimate_, from_ms(ms));
  stats_.prepare_ms += ms;
}

void Scheduler::runner_loop(std::size_t runner) {
  while (true) {
    std::unique_ptr<Taken> taken;
    {
      core::MutexLock lock(mutex_);
      runner_wake_.wait(
          lock, [&]() LIPSYNC_REQUIRES(mutex_) { return stopping_ || prepared_ != nullptr; });
      if (stopping_) return;  // stop() fails the prepared batch
      taken = std::move(prepared_);
      running_ += taken->jobs.size();
      busy_until_[runner] =
          SteadyClock::now() +
          run_estimate_per_frame_ * static_cast<SteadyDuration::rep>(taken->jobs.size());
    }
    batcher_wake_.notify_all();  // the slot is free: the next batch may be prepared
    if (!taken->jobs.empty()) run(*taken);
    {
      core::MutexLock lock(mutex_);
      running_ -= taken->jobs.size();
      busy_until_[runner].reset();
    }
    batcher_wake_.notify_all();
  }
}

void Scheduler::run(Taken& taken) {
  const int count = static_cast<int>(taken.jobs.size());
  std::shared_ptr<infer::GeneratorBatch> batch;
  try {
    core::Stopwatch sw;
    generator_.run(taken.batch);
    const double ms = sw.elapsed_ms();
    {
      core::MutexLock lock(mutex_);
      ++stats_.batches;
      stats_.frames += static_cast<std::uint64_t>(count);
      stats_.generator_ms += ms;
      ++batch_sizes_[static_cast<std::size_t>(count)];
      run_estimate_per_frame_ = blend(run_estimate_per_frame_, from_ms(ms / count));
    }
    if (on_batch_) on_batch_(count, ms);
    taken.batch.release_inputs();
    batch = std::make_shared<infer::GeneratorBatch>(std::move(taken.batch));
  } catch (const std::exception& e) {
    const Error error = [&] {
      if (const auto* lipsync_error = dynamic_cast<const Error*>(&e)) return *lipsync_error;
      return Error::internal(std::string("generator batch failed: ") + e.what());
    }();
    for (int i = 0; i < count; ++i) {
      if (taken.filled[i]) taken.jobs[i].client->failed(taken.jobs[i].tag, error);
    }
    return;
  }
  for (int i = 0; i < count; ++i) {
    if (taken.filled[i]) taken.jobs[i].client->done(taken.jobs[i].tag, batch, i);
  }
}

}  // namespace lipsync::pipeline
