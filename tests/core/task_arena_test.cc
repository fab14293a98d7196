#include "core/task_arena.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/error.h"

namespace lipsync::core {
namespace {

// Every index is visited exactly once, in ranges no shorter than the grain (but the tail).
void expect_exact_cover(const TaskArena& arena, std::size_t n, std::size_t grain) {
  std::vector<std::atomic<int>> hits(n);
  std::atomic<std::size_t> short_ranges{0};
  arena.parallel_for(n, grain, [&](std::size_t b, std::size_t e) {
    ASSERT_LT(b, e);
    ASSERT_LE(e, n);
    if (e - b < grain) ++short_ranges;
    for (std::size_t i = b; i < e; ++i) ++hits[i];
  });
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
}

TEST(TaskArena, CoversEveryIndexOnce) {
  const TaskArena one(1);
  const TaskArena four(4);
  for (std::size_t n : {0u, 1u, 7u, 100u, 4801u}) {
    for (std::size_t grain : {1u, 3u, 64u, 10000u}) {
      expect_exact_cover(one, n, grain);
      expect_exact_cover(four, n, grain);
    }
  }
}

TEST(TaskArena, SmallWorkRunsInlineOnCaller) {
  const TaskArena arena(4);
  int calls = 0;  // not atomic: must be touched by this thread only
  arena.parallel_for(10, 10, [&](std::size_t b, std::size_t e) {
    ++calls;
    EXPECT_EQ(b, 0u);
    EXPECT_EQ(e, 10u);
  });
  EXPECT_EQ(calls, 1);
}

TEST(TaskArena, ExceptionsPropagate) {
  const TaskArena arena(2);
  EXPECT_THROW(arena.parallel_for(1000, 1,
                                  [](std::size_t b, std::size_t) {
                                    if (b >= 500) throw std::runtime_error("boom");
                                  }),
               std::runtime_error);
}

TEST(TaskArena, RejectsZeroThreads) {
  EXPECT_THROW(TaskArena(0), Error);
  EXPECT_THROW(TaskArena::configure_global(0), Error);
}

TEST(TaskArena, GlobalArenaIsConfigurableOnlyBeforeUse) {
  TaskArena::configure_global(2);
  EXPECT_EQ(TaskArena::global().threads(), 2);
  EXPECT_NO_THROW(TaskArena::configure_global(2));
  EXPECT_THROW(TaskArena::configure_global(3), Error);
}

}  // namespace
}  // namespace lipsync::core
