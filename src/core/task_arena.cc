#include "core/task_arena.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "core/thread_budget.h"

namespace lipsync::core {
namespace {

// One parallel_for call: its pieces are claimed by index, by the caller and by any idle worker.
struct Job {
  const std::function<void(std::size_t, std::size_t)>* body = nullptr;
  std::size_t n = 0;
  std::size_t piece = 0;
  std::size_t pieces = 0;
  std::atomic<std::size_t> next{0};

  core::Mutex mu;
  core::CondVar all_done;
  std::size_t done LIPSYNC_GUARDED_BY(mu) = 0;
  std::exception_ptr error LIPSYNC_GUARDED_BY(mu);  // the first exception thrown by a piece

  bool exhausted() const { return next.load(std::memory_order_relaxed) >= pieces; }

  // Runs pieces until none is left to claim.
  void work() {
    for (;;) {
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= pieces) return;
      const std::size_t begin = i * piece;
      const std::size_t end = std::min(n, begin + piece);
      std::exception_ptr thrown;
      try {
        (*body)(begin, end);
      } catch (...) {
        thrown = std::current_exception();
      }
      core::MutexLock lock(mu);
      if (thrown && !error) error = thrown;
      if (++done == pieces) all_done.notify_all();
    }
  }
};

}  // namespace

// Worker threads that help with queued jobs. Callers always work on their own job too, so a
// call makes progress even when every worker is busy with other callers' jobs.
struct TaskArena::Impl {
  explicit Impl(int workers) {
    threads.reserve(static_cast<std::size_t>(workers));
    for (int i = 0; i < workers; ++i) threads.emplace_back([this] { worker_loop(); });
  }

  ~Impl() {
    {
      core::MutexLock lock(mu);
      stopping = true;
    }
    wake.notify_all();
    for (auto& t : threads) t.join();
  }

  void worker_loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        core::MutexLock lock(mu);
        wake.wait(lock, [this]() LIPSYNC_REQUIRES(mu) { return stopping || !queue.empty(); });
        if (stopping) return;
        job = queue.front();
        if (job->exhausted()) {
          queue.pop_front();
          continue;
        }
      }
      job->work();
    }
  }

  void submit(const std::shared_ptr<Job>& job) {
    {
      core::MutexLock lock(mu);
      queue.push_back(job);
    }
    wake.notify_all();
  }

  void withdraw(const std::shared_ptr<Job>& job) {
    core::MutexLock lock(mu);
    queue.erase(std::remove(queue.begin(), queue.end(), job), queue.end());
  }

  core::Mutex mu;
  core::CondVar wake;
  std::deque<std::shared_ptr<Job>> queue LIPSYNC_GUARDED_BY(mu);
  bool stopping LIPSYNC_GUARDED_BY(mu) = false;
  std::vector<std::thread> threads;
};

TaskArena::TaskArena(int threads) : threads_(threads) {
  if (threads < 1) {
    throw Error::invalid_input("threads=" + std::to_string(threads) + ": expected >= 1");
  }
  if (threads > 1) impl_ = std::make_unique<Impl>(threads - 1);
}

TaskArena::~TaskArena() = default;

void TaskArena::parallel_for(std::size_t n, std::size_t min_grain,
                             const std::function<void(std::size_t, std::size_t)>& body) const {
  if (n == 0) return;
  if (min_grain == 0) min_grain = 1;
  if (!impl_ || n <= min_grain) {
    body(0, n);
    return;
  }
  // Up to 4 pieces per thread balance uneven work; never fewer than min_grain indices a piece.
  const std::size_t target_pieces = static_cast<std::size_t>(threads_) * 4;
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->n = n;
  job->piece = std::max(min_grain, (n + target_pieces - 1) / target_pieces);
  job->pieces = (n + job->piece - 1) / job->piece;
  impl_->submit(job);
  job->work();
  {
    core::MutexLock lock(job->mu);
    job->all_done.wait(lock, [&]() LIPSYNC_REQUIRES(job->mu) { return job->done == job->pieces; });
  }
  impl_->withdraw(job);
  std::exception_ptr error;
  {
    core::MutexLock lock(job->mu);
    error = job->error;
  }
  if (error) std::rethrow_exception(error);
}

namespace {
core::Mutex g_global_mu;
int g_global_threads LIPSYNC_GUARDED_BY(g_global_mu) = 0;  // 0: not configured
bool g_global_created LIPSYNC_GUARDED_BY(g_global_mu) = false;
}  // namespace

TaskArena& TaskArena::global() {
  // Never destroyed: components may use it from static destructors and detached work.
  static TaskArena* arena = [] {
    core::MutexLock lock(g_global_mu);
    g_global_created = true;
    return new TaskArena(g_global_threads > 0 ? g_global_threads : thread_budget());
  }();
  return *arena;
}

void TaskArena::configure_global(int threads) {
  if (threads < 1) {
    throw Error::invalid_input("threads=" + std::to_string(threads) + ": expected >= 1");
  }
  core::MutexLock lock(g_global_mu);
  const int current = g_global_threads > 0 ? g_global_threads : thread_budget();
  if (g_global_created && threads != current) {
    throw Error::internal("TaskArena::configure_global called after the global arena was created");
  }
  g_global_threads = threads;
}

}  // namespace lipsync::core
