// ReadLane: work runs in order off the reader's thread; the reader pauses when too many bytes
// wait or the consumer is full, and is resumed exactly when both have cleared, also when the
// consumer's "wanted" races the work that found it full.
#include "core/read_lane.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace lipsync {
namespace {

using namespace std::chrono_literals;

template <class F>
bool eventually(F f, std::chrono::milliseconds within = 5s) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return f();
}

TEST(ReadLane, WorkRunsInOrderOffTheReadersThread) {
  core::WorkerPool pool(3);
  std::atomic<int> resumes{0};
  auto lane = std::make_shared<core::ReadLane>(pool, [&] { ++resumes; });
  std::mutex mutex;
  std::vector<int> order;  // guarded
  const auto reader = std::this_thread::get_id();
  std::atomic<bool> elsewhere{true};
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(lane->queue(10, [&, i] {
      if (std::this_thread::get_id() == reader) elsewhere = false;
      std::lock_guard lock(mutex);
      order.push_back(i);
      return true;
    }));
  }
  std::promise<void> last;
  lane->then([&] { last.set_value(); });
  ASSERT_EQ(last.get_future().wait_for(5s), std::future_status::ready);
  std::lock_guard lock(mutex);
  ASSERT_EQ(order.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(order[i], i);
  EXPECT_TRUE(elsewhere);
  EXPECT_EQ(resumes, 0);  // never paused
}

TEST(ReadLane, TooManyBytesWaitingPausesTheReaderUntilHalfAreDone) {
  core::WorkerPool pool(1);
  std::atomic<int> resumes{0};
  auto lane = std::make_shared<core::ReadLane>(pool, [&] { ++resumes; });
  std::promise<void> go;
  std::shared_future<void> gate = go.get_future().share();
  const std::size_t piece = core::ReadLane::kMaxWaitingBytes / 4;
  // The first piece's work waits for the gate: the bytes of the next ones pile up.
  EXPECT_TRUE(lane->queue(piece, [gate] {
    gate.wait();
    return true;
  }));
  EXPECT_TRUE(lane->queue(piece, [] { return true; }));
  EXPECT_TRUE(lane->queue(piece, [] { return true; }));
  EXPECT_TRUE(lane->queue(piece, [] { return true; }));  // exactly the limit: reads on
  EXPECT_FALSE(lane->queue(1, [] { return true; }));     // past it: pause
  EXPECT_EQ(resumes, 0);
  go.set_value();
  EXPECT_TRUE(eventually([&] { return resumes == 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(resumes, 1);  // once
}

TEST(ReadLane, AFullConsumerPausesTheReaderUntilItWantsMore) {
  core::WorkerPool pool(2);
  std::atomic<int> resumes{0};
  auto lane = std::make_shared<core::ReadLane>(pool, [&] { ++resumes; });
  std::promise<void> ran;
  // The first piece's answer may say "read on" or, when a worker ran the work before queue()
  // returned (a loaded machine), already "pause": both are right. The next piece's must pause.
  (void)lane->queue(4, [&] {
    ran.set_value();
    return false;  // the session is full
  });
  ASSERT_EQ(ran.get_future().wait_for(5s), std::future_status::ready);
  // The lane's tasks run one at a time in order, so a task queued after the work runs once the
  // work has returned its "full" (a sleep here, even 200 ms, flaked on a loaded machine).
  std::promise<void> settled;
  lane->then([&] { settled.set_value(); });
  ASSERT_EQ(settled.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(lane->queue(4, [] { return true; }));  // the reader learns it on its next piece
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(resumes, 0);  // nothing resumes it but the consumer
  lane->wanted();
  EXPECT_TRUE(eventually([&] { return resumes == 1; }));
}

// The consumer's "room again" may come while the work that found it full still runs: that work's
// "full" is then stale, and the reader must not wait forever.
TEST(ReadLane, AWantedThatOvertakesTheFullWorkIsNotLost) {
  core::WorkerPool pool(2);
  std::atomic<int> resumes{0};
  auto lane = std::make_shared<core::ReadLane>(pool, [&] { ++resumes; });
  int paused = 0;
  for (int round = 0; round < 200; ++round) {
    // In odd rounds the work waits for queue() to return, so the reader has paused when the
    // wanted() comes. In even rounds it runs free and may even finish before queue() returns
    // (then the reader need not pause; on a loaded machine it never does).
    std::promise<void> returned;
    auto gate = returned.get_future().share();
    const bool gated = round % 2 == 1;
    const bool read_on = lane->queue(core::ReadLane::kMaxWaitingBytes + 1, [&lane, gate, gated] {
      if (gated) gate.wait();
      lane->wanted();  // room again, before the work has returned its "full"
      return false;
    });
    returned.set_value();
    if (!read_on) ++paused;
    if (gated) {
      EXPECT_FALSE(read_on) << "round " << round;
    }
    ASSERT_TRUE(eventually([&] { return resumes == paused; })) << "round " << round;
  }
  EXPECT_GE(paused, 100);
}

}  // namespace
}  // namespace lipsync
