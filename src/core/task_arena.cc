#include "core/task_arena.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.h"

namespace lipsync::core {

struct TaskArena::Impl {
  explicit Impl(int threads) : arena(threads) {}
  mutable tbb::task_arena arena;
};

TaskArena::TaskArena(int threads) : threads_(threads) {
  if (threads < 1) {
    throw Error::invalid_input("threads=" + std::to_string(threads) + ": expected >= 1");
  }
  if (threads > 1) impl_ = std::make_unique<Impl>(threads);
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
  impl_->arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, min_grain),
                      [&](const tbb::blocked_range<std::size_t>& r) { body(r.begin(), r.end()); });
  });
}

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

namespace {
std::mutex g_global_mu;
int g_global_threads = 0;  // 0: not configured; guarded by g_global_mu
bool g_global_created = false;
}  // namespace

TaskArena& TaskArena::global() {
  static TaskArena* arena = [] {
    std::lock_guard lock(g_global_mu);
    g_global_created = true;
    return new TaskArena(g_global_threads > 0 ? g_global_threads : hardware_threads());
  }();
  return *arena;
}

void TaskArena::configure_global(int threads) {
  if (threads < 1) {
    throw Error::invalid_input("threads=" + std::to_string(threads) + ": expected >= 1");
  }
  std::lock_guard lock(g_global_mu);
  if (g_global_created && threads != (g_global_threads > 0 ? g_global_threads : hardware_threads())) {
    throw Error::internal("TaskArena::configure_global called after the global arena was created");
  }
  g_global_threads = threads;
}

}  // namespace lipsync::core
