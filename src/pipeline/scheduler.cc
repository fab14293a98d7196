#include "pipeline/scheduler.h"

#include <chrono>

#include "core/stopwatch.h"
#include "core/task_arena.h"

namespace lipsync::pipeline {

void SchedulerOptions::validate() const {
  require_in_range("scheduler.max_batch", max_batch, 1, 256);
  require_in_range("scheduler.max_batch_wait_ms", max_batch_wait_ms, 0, 1000);
  require_in_range("scheduler.queue_limit", queue_limit, 1, 1000000);
}

Scheduler::Scheduler(const infer::Generator& generator, SchedulerOptions options,
                     std::function<void(int, double)> on_batch)
    : generator_(generator),
      options_(options),
      on_batch_(std::move(on_batch)),
      batch_sizes_(options.max_batch + 1, 0) {
  options_.validate();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
}

void Scheduler::submit(std::vector<FrameJob> jobs) {
  std::lock_guard lock(mutex_);
  if (stopping_) throw Error::unavailable("the model is being unloaded or the server is stopping");
  if (queue_.size() + jobs.size() > static_cast<std::size_t>(options_.queue_limit)) {
    throw Error::resource_exhausted("the generator queue is full (" +
                                    std::to_string(queue_.size()) + " frames waiting, " +
                                    std::to_string(jobs.size()) + " more asked, limit " +
                                    std::to_string(options_.queue_limit) + "); retry later");
  }
  for (auto& job : jobs) queue_.push_back(std::move(job));
  wake_.notify_all();
}

std::size_t Scheduler::cancel(const void* owner) {
  if (owner == nullptr) return 0;
  std::lock_guard lock(mutex_);
  const std::size_t before = queue_.size();
  std::erase_if(queue_, [&](const FrameJob& job) { return job.owner == owner; });
  return before - queue_.size();
}

std::size_t Scheduler::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::vector<std::uint64_t> Scheduler::batch_size_counts() const {
  std::lock_guard lock(mutex_);
  return batch_sizes_;
}

void Scheduler::loop() {
  const auto max = static_cast<std::size_t>(options_.max_batch);
  while (true) {
    std::vector<FrameJob> jobs;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      // Give a partial batch up to max_batch_wait_ms to fill.
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.max_batch_wait_ms);
      wake_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= max; });
      if (stopping_) break;
      const std::size_t n = std::min(max, queue_.size());
      for (std::size_t i = 0; i < n; ++i) {
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    const int count = static_cast<int>(jobs.size());
    try {
      infer::GeneratorBatch batch = generator_.make_batch(count);
      core::TaskArena::global().parallel_for(jobs.size(), 1, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
          jobs[i].fill(batch.image(static_cast<int>(i)), batch.audio(static_cast<int>(i)));
        }
      });
      core::Stopwatch sw;
      generator_.run(batch);
      const double ms = sw.elapsed_ms();
      {
        std::lock_guard lock(mutex_);
        ++stats_.batches;
        stats_.frames += jobs.size();
        stats_.generator_ms += ms;
        ++batch_sizes_[jobs.size()];
      }
      if (on_batch_) on_batch_(count, ms);
      for (int i = 0; i < count; ++i) jobs[i].done(batch.output(i));
    } catch (const Error& e) {
      for (auto& job : jobs) job.failed(e);
    } catch (const std::exception& e) {
      const Error error = Error::internal(std::string("generator batch failed: ") + e.what());
      for (auto& job : jobs) job.failed(error);
    }
  }
  // Stopping: fail what is left.
  std::deque<FrameJob> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(queue_);
  }
  const Error stopped = Error::unavailable("the model was unloaded or the server is stopping");
  for (auto& job : left) job.failed(stopped);
}

}  // namespace lipsync::pipeline
