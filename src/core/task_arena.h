// TaskArena: the CPU worker pool for data-parallel work (window packing, mel frames, ROI prep,
// compositing). One process-wide arena (global()) is shared by every component; tests and
// benchmarks may build their own with a given thread count. The caller of parallel_for always
// works on its own call, helped by idle workers, so concurrent callers never wait on each other.
// (A plain mutex/condition-variable pool rather than oneTBB: see docs/design.md.) Work is split by
// index ranges, so callers that write disjoint outputs per index get results bit-identical to a
// sequential loop. Thread contract: parallel_for may be called from any number of threads at once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace lipsync::core {

// A fixed set of threads - 1 workers with a blocking parallel_for that the caller joins.
class TaskArena {
 public:
  // Requires: threads >= 1. With 1 thread every parallel_for runs inline on the caller.
  explicit TaskArena(int threads);
  ~TaskArena();
  TaskArena(const TaskArena&) = delete;
  TaskArena& operator=(const TaskArena&) = delete;

  int threads() const { return threads_; }

  // Calls body(begin, end) over disjoint ranges covering [0, n), each at least min_grain long
  // (except a shorter tail), and returns when all are done. Runs inline on the caller when
  // n <= min_grain or the arena has one thread. Exceptions thrown by body propagate.
  void parallel_for(std::size_t n, std::size_t min_grain,
                    const std::function<void(std::size_t, std::size_t)>& body) const;

  // The process-wide arena, created on first use with configure_global()'s thread count (default:
  // the thread budget, core/thread_budget.h).
  static TaskArena& global();

  // Sets the global arena's thread count. Requires: threads >= 1 and global() not yet used
  // (throws Error::Code::kInternal otherwise, unless the count is unchanged).
  static void configure_global(int threads);

 private:
  struct Impl;
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::core
