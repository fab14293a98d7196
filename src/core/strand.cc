#include "core/strand.h"

#include <deque>
#include <thread>

#include "core/mutex.h"

namespace lipsync::core {

struct Strand::State : std::enable_shared_from_this<State> {
  explicit State(WorkerPool& p) : pool(p) {}
  WorkerPool& pool;
  core::Mutex mutex;
  std::deque<std::function<void()>> tasks LIPSYNC_GUARDED_BY(mutex);
  bool scheduled LIPSYNC_GUARDED_BY(mutex) = false;  // a drain is posted or running
  bool closed LIPSYNC_GUARDED_BY(mutex) = false;
  std::thread::id runner LIPSYNC_GUARDED_BY(mutex);  // the thread draining now

  // Runs queued tasks; after a handful it re-posts itself so one busy strand cannot hold a
  // pool thread forever while other strands wait.
  void drain() {
    for (int budget = 16; budget > 0; --budget) {
      std::function<void()> task;
      {
        core::MutexLock lock(mutex);
        if (tasks.empty() || closed) {
          tasks.clear();
          scheduled = false;
          runner = {};
          return;
        }
        task = std::move(tasks.front());
        tasks.pop_front();
        runner = std::this_thread::get_id();
      }
      task();
    }
    {
      core::MutexLock lock(mutex);
      runner = {};
    }
    pool.post([self = shared_from_this()] { self->drain(); });
  }
};

Strand::Strand(WorkerPool& pool) : state_(std::make_shared<State>(pool)) {}

Strand::~Strand() {
  close();
}

void Strand::post(std::function<void()> task) {
  {
    core::MutexLock lock(state_->mutex);
    if (state_->closed) return;
    state_->tasks.push_back(std::move(task));
    if (state_->scheduled) return;
    state_->scheduled = true;
  }
  state_->pool.post([state = state_] { state->drain(); });
}

void Strand::close() {
  core::MutexLock lock(state_->mutex);
  state_->closed = true;
  state_->tasks.clear();
}

bool Strand::running_in_this_thread() const {
  core::MutexLock lock(state_->mutex);
  return state_->runner == std::this_thread::get_id();
}

}  // namespace lipsync::core
