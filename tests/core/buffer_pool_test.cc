#include "core/buffer_pool.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace lipsync::core {
namespace {

TEST(BufferPool, ReusesReleasedBuffersAndNeverSharesLiveOnes) {
  BufferPool pool(2);
  float* first = nullptr;
  {
    auto a = pool.acquire(100);
    EXPECT_EQ(a.size(), 100u);
    first = a.data();
    auto b = pool.acquire(100);
    EXPECT_NE(a.data(), b.data());
  }
  EXPECT_EQ(pool.cached(), 2u);
  auto c = pool.acquire(50);  // a cached 100-float buffer is big enough
  EXPECT_EQ(c.size(), 50u);
  EXPECT_EQ(pool.cached(), 1u);
  (void)first;
  BufferPool::Lease moved = std::move(c);
  EXPECT_EQ(moved.size(), 50u);
  EXPECT_EQ(c.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from lease is empty
}

TEST(BufferPool, KeepsAtMostMaxCached) {
  BufferPool pool(1);
  {
    auto a = pool.acquire(10);
    auto b = pool.acquire(1000);
  }
  EXPECT_EQ(pool.cached(), 1u);
  auto big = pool.acquire(1000);  // the larger one was kept
  EXPECT_EQ(pool.cached(), 0u);
}

TEST(BufferPool, ConcurrentLeasesAreDistinct) {
  BufferPool pool(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, t] {
      for (int round = 0; round < 200; ++round) {
        auto lease = pool.acquire(64);
        for (float& v : lease.span()) v = float(t);
        for (float v : lease.span()) ASSERT_EQ(v, float(t));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(pool.cached(), 4u);
}

}  // namespace
}  // namespace lipsync::core
