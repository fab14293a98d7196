// WorkerPool: a few threads running posted tasks in order of arrival, for request work that must
// not run on RPC threads (audio processing, compositing, encoding). Tasks must not throw (one
// that does is reported on stderr; the thread goes on).
// Thread contract: post() from any thread; the destructor drains the queue and joins.
#pragma once

#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "core/mutex.h"

namespace lipsync::core {

class WorkerPool {
 public:
  // Requires: threads >= 1.
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        while (true) {
          std::function<void()> task;
          {
            core::MutexLock lock(mutex_);
            wake_.wait(lock,
                       [&]() LIPSYNC_REQUIRES(mutex_) { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping and drained
            task = std::move(tasks_.front());
            tasks_.pop_front();
          }
          try {
            task();
          } catch (const std::exception& e) {
            // A task broke the contract: say so and keep the thread (and the process) alive.
            std::fprintf(stderr, "lipsync: a worker task failed: %s\n", e.what());
          } catch (...) {
            std::fputs("lipsync: a worker task failed\n", stderr);
          }
        }
      });
    }
  }
  ~WorkerPool() {
    {
      core::MutexLock lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void post(std::function<void()> task) {
    {
      core::MutexLock lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }
  std::size_t pending() const {
    core::MutexLock lock(mutex_);
    return tasks_.size();
  }

 private:
  mutable core::Mutex mutex_;
  core::CondVar wake_;
  std::deque<std::function<void()>> tasks_ LIPSYNC_GUARDED_BY(mutex_);
  bool stopping_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace lipsync::core
