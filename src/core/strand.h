// Strand: runs posted tasks one at a time, in order, on a WorkerPool's threads: the way one
// session's work (its audio, its feature track) stays sequential without a thread of its own.
// Tasks must not throw. close() drops queued tasks and ignores later posts; the task running at
// that moment finishes.
// Thread contract: post() and close() from any thread, also from inside a task. The pool must
// outlive the strand's queued tasks (they hold the strand's state, not the Strand object).
#pragma once

#include <functional>
#include <memory>

#include "core/worker_pool.h"

namespace lipsync::core {

class Strand {
 public:
  explicit Strand(WorkerPool& pool);
  ~Strand();
  Strand(const Strand&) = delete;
  Strand& operator=(const Strand&) = delete;

  void post(std::function<void()> task);
  void close();
  // True while called from one of this strand's tasks.
  bool running_in_this_thread() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace lipsync::core
