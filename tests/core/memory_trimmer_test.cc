// MemoryTrimmer: requests in a burst coalesce into one trim after the delay, on its own thread.
#include "core/memory_trimmer.h"

#include <gtest/gtest.h>

#include <thread>

namespace lipsync::core {
namespace {

using std::chrono::milliseconds;

TEST(MemoryTrimmer, ABurstOfRequestsIsOneTrimAfterTheDelay) {
  MemoryTrimmer trimmer(milliseconds(100));
  EXPECT_EQ(trimmer.trims(), 0);
  for (int i = 0; i < 50; ++i) trimmer.request();
  EXPECT_EQ(trimmer.trims(), 0);  // not on the caller's thread, not at once
  for (int i = 0; i < 200 && trimmer.trims() == 0; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(trimmer.trims(), 1);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(trimmer.trims(), 1);  // nothing more was asked
  trimmer.request();
  for (int i = 0; i < 200 && trimmer.trims() == 1; ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(trimmer.trims(), 2);
}

TEST(MemoryTrimmer, StopsAtOnceWithARequestPending) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    MemoryTrimmer trimmer(std::chrono::hours(1));
    trimmer.request();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

}  // namespace
}  // namespace lipsync::core
