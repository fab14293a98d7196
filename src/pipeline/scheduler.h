// Scheduler: the one generator queue of a loaded model (Triton's dynamic batcher in small).
// Frame jobs from every request and stream of the model are collected into batches of up to
// max_batch frames, waiting at most max_batch_wait_ms for a batch to fill, and run on the
// scheduler's own thread. The queue is bounded: a submit that does not fit is refused with
// RESOURCE_EXHAUSTED instead of growing without bound.
// Thread contract: submit() from any thread; callbacks run on the scheduler thread and must be
// quick (copy the output, hand off the rest).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/error.h"
#include "infer/generator.h"

namespace lipsync::pipeline {

struct SchedulerOptions {
  int max_batch = 8;          // config key scheduler.max_batch (1..256)
  int max_batch_wait_ms = 5;  // config key scheduler.max_batch_wait_ms (0..1000)
  int queue_limit = 512;      // config key scheduler.queue_limit: frames waiting (1..1000000)
  void validate() const;
};

struct FrameJob {
  // Writes the frame's generator inputs: image [6][320][320], audio [32][16][16].
  std::function<void(std::span<float> image, std::span<float> audio)> fill;
  // Receives the output [3][320][320] (valid during the call).
  std::function<void(std::span<const float> output)> done;
  // Called instead of done when the batch fails or the scheduler stops.
  std::function<void(const Error& error)> failed;
  // Whose job this is, for cancel(); may be null.
  const void* owner = nullptr;
};

struct SchedulerStats {
  std::uint64_t batches = 0;
  std::uint64_t frames = 0;
  double generator_ms = 0;
};

class Scheduler {
 public:
  // Borrows the generator, which must outlive the scheduler. on_batch (optional) is called on
  // the scheduler thread with each batch's size and generator milliseconds.
  Scheduler(const infer::Generator& generator, SchedulerOptions options,
            std::function<void(int, double)> on_batch = {});
  // Stops the thread; jobs still queued fail with kUnavailable.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues all jobs or none: throws Error::Code::kResourceExhausted when they do not fit, and
  // kUnavailable after stop().
  void submit(std::vector<FrameJob> jobs);
  void stop();
  // Drops every queued job of `owner` (a cancelled stream), without calling its callbacks.
  // Returns how many were dropped. Jobs already in a running batch still complete.
  std::size_t cancel(const void* owner);

  std::size_t queue_depth() const;
  SchedulerStats stats() const;
  // Number of batches of each size so far (index = batch size).
  std::vector<std::uint64_t> batch_size_counts() const;

 private:
  void loop();

  const infer::Generator& generator_;
  const SchedulerOptions options_;
  const std::function<void(int, double)> on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<FrameJob> queue_;              // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  SchedulerStats stats_;                    // guarded by mutex_
  std::vector<std::uint64_t> batch_sizes_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace lipsync::pipeline
