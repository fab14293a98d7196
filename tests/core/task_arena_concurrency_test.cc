#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "core/task_arena.h"

namespace lipsync::core {
namespace {

// Many threads submit to one arena at once; each sees only its own results.
TEST(TaskArenaConcurrency, ConcurrentParallelForsStayIndependent) {
  const TaskArena arena(2);
  constexpr int kThreads = 8;
  std::vector<std::vector<int>> results(kThreads, std::vector<int>(5000));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        arena.parallel_for(results[t].size(), 64, [&](std::size_t b, std::size_t e) {
          for (std::size_t i = b; i < e; ++i) results[t][i] = static_cast<int>(i) * (t + 1) + round;
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (std::size_t i = 0; i < results[t].size(); ++i) {
      ASSERT_EQ(results[t][i], static_cast<int>(i) * (t + 1) + 19);
    }
  }
}

}  // namespace
}  // namespace lipsync::core
