// Scheduler: the one generator queue of a loaded model (Triton's dynamic batcher in small).
// Frame jobs of every producer of the model (requests, streams, renders, live sessions) are
// collected into batches of up to max_batch frames and run on the scheduler's runner threads
// (one per infer.parallel_runs, Triton's instance count), while its batcher thread prepares the
// next batch (fills its inputs on the task arena): batch n+1 is ready when a runner frees up.
// With several runners batches finish out of order; producers put their frames back in order. Jobs
// with a deadline go first, earliest first; jobs without one follow in order of arrival. A job
// whose deadline will have passed before any batch could finish it is not run (skipped): under
// overload the generator's time goes to frames that can still be on time. When to
// form a batch is decided by next_batch() (batch_policy.h). The queue itself is unbounded: front
// ends bound it with their in-flight windows, so a fast client is slowed down, never refused.
// Thread contract: submit(), cancel() and the getters from any thread; stop() from any thread
// but the scheduler's own (not from a BatchClient callback). Callbacks run on the scheduler's
// threads and the task arena and must be quick.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/config_table.h"
#include "core/error.h"
#include "core/mutex.h"
#include "infer/generator.h"
#include "pipeline/batch_policy.h"

namespace lipsync::pipeline {

struct SchedulerOptions {
  // Config key scheduler.max_batch (0..256): 0 is automatic, kCpuMaxBatch when the generator
  // runs on the CPU provider and kGpuMaxBatch on a GPU provider.
  int max_batch = 0;
  int max_batch_wait_ms = 5;  // config key scheduler.max_batch_wait_ms (0..1000)
  // Config key scheduler.skip_late: a job with a deadline that no batch can meet any more is
  // skipped (BatchClient::skipped) instead of run; false runs every job however late.
  bool skip_late = true;
  void validate() const;
  static const core::ConfigTable<SchedulerOptions>& config();
  // max_batch, or when it is 0 the automatic size for the provider `generator` runs on.
  int resolved_max_batch(const infer::Generator& generator) const;
};

// Measured on the CPU (README: batching): larger batches add latency and no throughput there.
inline constexpr int kCpuMaxBatch = 8;
// A GPU runs a batch in about the time of one frame, so it batches what queues up. Provisional:
// 32 is the largest batch scripts/gpu-check measures; its figures are still to come.
inline constexpr int kGpuMaxBatch = 32;

// Who a job belongs to (a FrameProducer). The scheduler asks it for each job's inputs and hands
// it each job's output; exactly one of done(), skipped() or failed() is called per job that was
// not cancelled.
class BatchClient {
 public:
  virtual ~BatchClient() = default;
  // Writes job `tag`'s generator inputs: image [6][320][320], audio [32][16][16]. Called on the
  // batcher thread or the task arena, concurrently for different jobs. An exception fails this
  // job only.
  virtual void fill(std::int64_t tag, std::span<float> image, std::span<float> audio) = 0;
  // Job `tag` ran; its output [3][320][320] is batch->output(slot). Hold `batch` while the
  // output is needed: its buffers return to the pool when the last holder lets go.
  virtual void done(std::int64_t tag, std::shared_ptr<const infer::GeneratorBatch> batch,
                    int slot) = 0;
  // Job `tag` will not run: its fill threw, the generator failed, or the scheduler stopped.
  virtual void failed(std::int64_t tag, const Error& error) = 0;
  // Job `tag` was not run: its deadline would have passed before a batch could finish it (only
  // jobs with a deadline). Called on the batcher thread; must be quick. By default it fails.
  virtual void skipped(std::int64_t tag) {
    failed(tag, Error::unavailable("the frame's deadline passed before it could be made"));
  }
};

struct FrameJob {
  std::shared_ptr<BatchClient> client;  // held until done()/failed() returns (or cancel)
  std::int64_t tag = 0;                 // the client's name for the job (a frame index)
  std::optional<SteadyTime> deadline;   // when the output is needed; none = in arrival order
  SteadyTime since{};                   // with a deadline: its speech run's start (seniority)
};

struct SchedulerStats {
  std::uint64_t batches = 0;
  std::uint64_t frames = 0;
  double generator_ms = 0;    // time inside the generator
  double prepare_ms = 0;      // time filling inputs
  std::uint64_t skipped = 0;  // deadline jobs not run: they could not have been on time
};

class Scheduler {
 public:
  // Borrows the generator, which must outlive the scheduler, and starts generator.parallel_runs()
  // runner threads. on_batch (optional) is called on a runner thread with each batch's size and
  // generator milliseconds.
  Scheduler(const infer::Generator& generator, SchedulerOptions options,
            std::function<void(int, double)> on_batch = {});
  // stop().
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs the generator on a zero batch of max_batch frames `runs` times on the calling thread and
  // seeds the time estimates the batching policy and live sessions plan with from the last run,
  // so that the first deadlines are planned with a real batch time rather than none. A
  // session's first two runs are slow (ONNX Runtime plans its memory then; measured with the
  // int8 reference generator at batch 8: 1136, 899, then 208 ms): three runs leave a warm
  // session and a steady figure. Call before the first submit().
  void warm_up(int runs = 3);

  // Queues the jobs. Throws Error::Code::kUnavailable after stop().
  void submit(std::vector<FrameJob> jobs);
  // Drops every queued job of `client` without calling it; returns how many. Jobs already taken
  // into a batch still complete (done or failed is called).
  std::size_t cancel(const BatchClient* client);
  // Stops and joins both threads: the running batch finishes and is delivered; prepared and
  // queued jobs fail with kUnavailable. Idempotent. When it returns, no callback runs any more.
  void stop();

  std::size_t queue_depth() const;  // jobs waiting for a batch
  std::size_t in_flight() const;    // queued, being prepared, prepared or running
  SchedulerStats stats() const;
  // The expected time to fill and run a full batch, from the runs so far; zero before the first.
  SteadyDuration expected_batch_time() const;
  // Number of batches of each size so far (index = batch size).
  std::vector<std::uint64_t> batch_size_counts() const;
  // The largest batch it makes: scheduler.max_batch, resolved for the generator's provider.
  int max_batch() const { return options_.max_batch; }

 private:
  struct Taken;
  static SchedulerOptions resolve(SchedulerOptions options, const infer::Generator& generator);
  void batcher_loop();
  void runner_loop(std::size_t runner);
  std::vector<FrameJob> take_locked(std::size_t take, const BatchQueueState& state, SteadyTime now,
                                    std::vector<FrameJob>& skipped) LIPSYNC_REQUIRES(mutex_);
  BatchQueueState state_locked() const LIPSYNC_REQUIRES(mutex_);
  void prepare(Taken& taken);
  void run(Taken& taken);

  const infer::Generator& generator_;
  const SchedulerOptions options_;
  const BatchPolicy policy_;
  const std::function<void(int, double)> on_batch_;

  mutable core::Mutex mutex_;
  core::CondVar batcher_wake_;
  core::CondVar runner_wake_;
  // Queued jobs: with a deadline (earliest first; equal deadlines in arrival order) and without
  // (in arrival order), each with its arrival time.
  std::multimap<SteadyTime, std::pair<FrameJob, SteadyTime>> by_deadline_
      LIPSYNC_GUARDED_BY(mutex_);
  std::deque<std::pair<FrameJob, SteadyTime>> fifo_ LIPSYNC_GUARDED_BY(mutex_);
  // Clients whose deadline jobs were skipped lately, with their debt (batch_policy.h); a client
  // leaves once its debt is paid.
  std::unordered_map<const BatchClient*, int> debts_ LIPSYNC_GUARDED_BY(mutex_);
  std::unique_ptr<Taken> prepared_ LIPSYNC_GUARDED_BY(mutex_);  // filled, waiting for the runner
  std::size_t preparing_ LIPSYNC_GUARDED_BY(mutex_) = 0;        // jobs being filled now
  std::size_t running_ LIPSYNC_GUARDED_BY(mutex_) = 0;          // jobs in the running batches
  // Per runner: the expected end of its batch while it runs one.
  std::vector<std::optional<SteadyTime>> busy_until_ LIPSYNC_GUARDED_BY(mutex_);
  SteadyDuration prepare_estimate_ LIPSYNC_GUARDED_BY(mutex_){};
  SteadyDuration run_estimate_per_frame_ LIPSYNC_GUARDED_BY(mutex_){};
  bool stopping_ LIPSYNC_GUARDED_BY(mutex_) = false;
  SchedulerStats stats_ LIPSYNC_GUARDED_BY(mutex_);
  std::vector<std::uint64_t> batch_sizes_ LIPSYNC_GUARDED_BY(mutex_);
  core::Mutex stop_mutex_;  // serialises stop()
  std::thread batcher_;
  std::vector<std::thread> runners_;
};

}  // namespace lipsync::pipeline
