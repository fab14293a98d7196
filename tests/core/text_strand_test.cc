// core::quote (client strings in messages) and core::Strand (one session's work in order).
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "core/strand.h"
#include "core/text.h"

namespace lipsync::core {
namespace {

TEST(Quote, BoundsLengthAndEscapesControlBytes) {
  EXPECT_EQ(quote("demo"), "'demo'");
  EXPECT_EQ(quote(std::string("a\nb\0c", 5)), "'a\\x0ab\\x00c'");
  const std::string huge(100000, 'x');
  const std::string q = quote(huge);
  EXPECT_LT(q.size(), 100u);
  EXPECT_NE(q.find("(100000 bytes)"), std::string::npos);
  EXPECT_EQ(quote("abcdef", 3), "'abc...' (6 bytes)");
}

TEST(TextHelpers, LowerTrimAndSplit) {
  EXPECT_EQ(core::to_lower_ascii("Audio/L16;RATE=8000 \xC3\x89"), "audio/l16;rate=8000 \xC3\x89");
  EXPECT_EQ(core::trim(" \t a b \t"), "a b");
  EXPECT_EQ(core::trim(" \t "), "");
  EXPECT_EQ(core::split_trimmed(" http://a ,, http://b,", ','),
            (std::vector<std::string>{"http://a", "http://b"}));
  EXPECT_TRUE(core::split_trimmed("", ';').empty());
  EXPECT_EQ(core::split_trimmed("rate=1", ';'), (std::vector<std::string>{"rate=1"}));
}

TEST(Strand, RunsTasksOneAtATimeInOrder) {
  WorkerPool pool(4);
  std::vector<int> order;
  std::atomic<int> running{0};
  std::atomic<bool> overlap{false};
  {
    Strand strand(pool);
    for (int i = 0; i < 500; ++i) {
      strand.post([&, i] {
        if (++running > 1) overlap = true;
        order.push_back(i);  // unsynchronised on purpose: TSan checks the strand's ordering
        --running;
      });
    }
    while (true) {
      std::atomic<bool> done{false};
      strand.post([&] { done = true; });
      while (!done) std::this_thread::yield();
      break;
    }
  }
  EXPECT_FALSE(overlap);
  ASSERT_EQ(order.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(order[i], i);
}

TEST(Strand, CloseDropsQueuedTasksAndLaterPosts) {
  WorkerPool pool(1);
  Strand strand(pool);
  std::mutex gate;
  std::unique_lock hold(gate);
  std::atomic<int> ran{0};
  strand.post([&] {
    std::lock_guard wait(gate);  // blocks the strand until released
    ++ran;
  });
  strand.post([&] { ++ran; });
  strand.close();
  strand.post([&] { ++ran; });
  hold.unlock();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(ran.load(), 1);  // only the task that was already running (if it had started)
}

}  // namespace
}  // namespace lipsync::core
