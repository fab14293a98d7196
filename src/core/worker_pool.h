// WorkerPool: a few threads running posted tasks in order of arrival, for request work that must
// not run on RPC threads (audio processing, compositing, encoding). Tasks must not throw (one
// that does is reported on stderr; the thread goes on).
// Thread contract: post() from any thread; the destructor drains the queue and joins.
#pragma once

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

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
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
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
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }
  std::size_t pending() const {
    std::lock_guard lock(mutex_);
    return tasks_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace lipsync::core
