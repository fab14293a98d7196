// The Scheduler with real generators: deadline order, cancel, stop, per-job fill failures, the
// preparation of batch n+1 while batch n runs, and parallel runs. Runs under ThreadSanitizer in CI.
#include "pipeline/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "infer/models.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using pipeline::FrameJob;
using pipeline::SteadyClock;

// Records what the scheduler does with its jobs; fill of `gate_tag` blocks until open().
class RecordingClient : public pipeline::BatchClient {
 public:
  void fill(std::int64_t tag, std::span<float> image, std::span<float> audio) override {
    {
      std::unique_lock lock(mutex_);
      events_.push_back("fill " + std::to_string(tag));
      changed_.notify_all();
      if (tag == gate_tag_) {
        in_gate_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return gate_open_; });
      }
      if (tag == throw_tag_) throw Error::invalid_input("bad frame " + std::to_string(tag));
    }
    std::fill(image.begin(), image.end(), 0.5f);
    std::fill(audio.begin(), audio.end(), 0.0f);
  }
  void done(std::int64_t tag, std::shared_ptr<const infer::GeneratorBatch> batch,
            int slot) override {
    ASSERT_EQ(batch->output(slot).size(), contract::kOutputSize);
    std::lock_guard lock(mutex_);
    events_.push_back("done " + std::to_string(tag));
    done_.push_back(tag);
    changed_.notify_all();
  }
  void skipped(std::int64_t tag) override {
    std::lock_guard lock(mutex_);
    events_.push_back("skipped " + std::to_string(tag));
    skipped_.push_back(tag);
    changed_.notify_all();
  }
  void failed(std::int64_t tag, const Error& error) override {
    std::lock_guard lock(mutex_);
    events_.push_back("failed " + std::to_string(tag));
    failed_.emplace_back(tag, error.code());
    changed_.notify_all();
  }

  void gate(std::int64_t tag) { gate_tag_ = tag; }
  void throw_on(std::int64_t tag) { throw_tag_ = tag; }
  void wait_in_gate() {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, std::chrono::seconds(30), [&] { return in_gate_; }));
  }
  void open() {
    std::lock_guard lock(mutex_);
    gate_open_ = true;
    changed_.notify_all();
  }
  // Waits up to `timeout` for an event; true when it has happened.
  bool saw(const std::string& event, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      return std::find(events_.begin(), events_.end(), event) != events_.end();
    });
  }
  // Waits until n jobs have been done or failed.
  void wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, std::chrono::seconds(60), [&] {
      return done_.size() + failed_.size() + skipped_.size() >= n;
    }));
  }
  std::vector<std::int64_t> done() {
    std::lock_guard lock(mutex_);
    return done_;
  }
  std::vector<std::int64_t> skipped_tags() {
    std::lock_guard lock(mutex_);
    return skipped_;
  }
  std::vector<std::pair<std::int64_t, Error::Code>> failed() {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  std::vector<std::string> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::int64_t gate_tag_ = -1;
  std::int64_t throw_tag_ = -1;
  bool in_gate_ = false;
  bool gate_open_ = false;
  std::vector<std::string> events_;
  std::vector<std::int64_t> done_;
  std::vector<std::int64_t> skipped_;
  std::vector<std::pair<std::int64_t, Error::Code>> failed_;
};

std::vector<FrameJob> jobs(const std::shared_ptr<RecordingClient>& client,
                           std::initializer_list<std::int64_t> tags,
                           std::optional<pipeline::SteadyTime> deadline = std::nullopt) {
  std::vector<FrameJob> out;
  for (auto t : tags) out.push_back({client, t, deadline});
  return out;
}

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    demo_ = new infer::Models(testing::demo_models(), testing::two_threads());
  }
  static void TearDownTestSuite() { delete demo_; }
  static infer::Models* demo_;
};
infer::Models* SchedulerTest::demo_ = nullptr;

TEST_F(SchedulerTest, DeadlineJobsGoFirstEarliestFirstThenArrivalOrder) {
  pipeline::Scheduler scheduler(demo_->generator(), {1, 0});
  auto client = std::make_shared<RecordingClient>();
  client->gate(0);
  scheduler.submit(jobs(client, {0}));
  client->wait_in_gate();  // job 0 is being prepared; everything below queues behind it
  const auto now = SteadyClock::now();
  scheduler.submit(jobs(client, {1, 2}));
  scheduler.submit(jobs(client, {10}, now + std::chrono::seconds(30)));
  scheduler.submit(jobs(client, {11}, now + std::chrono::seconds(10)));
  scheduler.submit(jobs(client, {12}, now + std::chrono::seconds(20)));
  scheduler.submit(jobs(client, {3}));
  EXPECT_EQ(scheduler.queue_depth(), 6u);
  client->open();
  client->wait_for(7);
  EXPECT_EQ(client->done(), (std::vector<std::int64_t>{0, 11, 12, 10, 1, 2, 3}));
  for (int i = 0; i < 100 && scheduler.in_flight() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the runner is winding down
  }
  EXPECT_EQ(scheduler.in_flight(), 0u);
  EXPECT_EQ(scheduler.stats().frames, 7u);
}

// Issue 24: under overload the scheduler ran frames whose tick had passed (earliest deadline
// first, even a past one), so every frame of two live sessions came late.
TEST_F(SchedulerTest, JobsWhoseDeadlineCannotBeMetAreSkippedNotRun) {
  pipeline::Scheduler scheduler(demo_->generator(), {8, 0});
  scheduler.warm_up(1);  // a run-time estimate to plan with
  auto client = std::make_shared<RecordingClient>();
  const auto now = SteadyClock::now();
  scheduler.submit(jobs(client, {1, 2}, now - std::chrono::milliseconds(500)));  // passed
  scheduler.submit(jobs(client, {3}, now + std::chrono::seconds(30)));
  scheduler.submit(jobs(client, {4}));  // no deadline: always runs
  client->wait_for(4);
  EXPECT_EQ(client->skipped_tags(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(client->done(), (std::vector<std::int64_t>{3, 4}));
  EXPECT_TRUE(client->failed().empty());
  for (const auto& e : client->events()) {
    EXPECT_NE(e, "fill 1");  // a skipped job costs no input and no generator time
    EXPECT_NE(e, "fill 2");
  }
  EXPECT_EQ(scheduler.stats().skipped, 2u);
  EXPECT_EQ(scheduler.stats().frames, 2u);
}

// Issue 24: a session speaking alone was made late by another that began to speak beside it
// (both shared the generator). Speech that was playing first now runs first.
TEST_F(SchedulerTest, SpeechThatWasPlayingFirstRunsFirst) {
  pipeline::Scheduler scheduler(demo_->generator(), {1, 0});
  scheduler.warm_up(1);
  auto client = std::make_shared<RecordingClient>();
  client->gate(0);
  scheduler.submit(jobs(client, {0}));
  client->wait_in_gate();
  const auto now = SteadyClock::now();
  auto newcomer = jobs(client, {20}, now + std::chrono::seconds(10));
  newcomer[0].since = now;
  auto senior = jobs(client, {21}, now + std::chrono::seconds(20));
  senior[0].since = now - std::chrono::seconds(5);
  scheduler.submit(std::move(newcomer));
  scheduler.submit(std::move(senior));
  client->open();
  client->wait_for(3);
  EXPECT_EQ(client->done(), (std::vector<std::int64_t>{0, 21, 20}));
}

TEST_F(SchedulerTest, WithSkipLateOffEveryJobRunsHoweverLate) {
  pipeline::SchedulerOptions options{8, 0};
  EXPECT_TRUE(options.skip_late);  // the default
  options.skip_late = false;
  pipeline::Scheduler scheduler(demo_->generator(), options);
  scheduler.warm_up(1);
  auto client = std::make_shared<RecordingClient>();
  scheduler.submit(jobs(client, {1, 2}, SteadyClock::now() - std::chrono::milliseconds(500)));
  client->wait_for(2);
  EXPECT_EQ(client->done(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_TRUE(client->skipped_tags().empty());
}

TEST_F(SchedulerTest, CancelDropsQueuedJobsOfThatClientOnly) {
  pipeline::Scheduler scheduler(demo_->generator(), {2, 0});
  auto a = std::make_shared<RecordingClient>();
  auto b = std::make_shared<RecordingClient>();
  a->gate(0);
  scheduler.submit(jobs(a, {0}));
  a->wait_in_gate();
  scheduler.submit(jobs(b, {1, 2, 3, 4, 5}));
  scheduler.submit(jobs(a, {6, 7, 8}));
  EXPECT_EQ(scheduler.cancel(a.get()), 3u);
  EXPECT_EQ(scheduler.cancel(a.get()), 0u);
  a->open();
  b->wait_for(5);
  a->wait_for(1);
  EXPECT_EQ(b->done(), (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(a->done(), (std::vector<std::int64_t>{0}));  // it was in a batch already
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(a->done().size() + a->failed().size(), 1u);  // the cancelled ones never come
}

TEST_F(SchedulerTest, MaxBatchZeroIsTheProvidersSizeAndAnExplicitOneStays) {
  ASSERT_EQ(demo_->generator().session().providers().front(), "cpu");
  EXPECT_EQ(pipeline::SchedulerOptions{}.max_batch, 0);
  EXPECT_EQ(pipeline::Scheduler(demo_->generator(), pipeline::SchedulerOptions{}).max_batch(),
            pipeline::kCpuMaxBatch);
  EXPECT_EQ(pipeline::Scheduler(demo_->generator(), pipeline::SchedulerOptions{3, 0}).max_batch(),
            3);
  EXPECT_EQ(pipeline::kCpuMaxBatch, 8);
  EXPECT_THROW(pipeline::Scheduler(demo_->generator(), pipeline::SchedulerOptions{-1, 0}), Error);
}

TEST_F(SchedulerTest, StopFailsWhatIsLeftJoinsAndRefusesMore) {
  auto scheduler =
      std::make_unique<pipeline::Scheduler>(demo_->generator(), pipeline::SchedulerOptions{1, 0});
  auto client = std::make_shared<RecordingClient>();
  client->gate(0);
  scheduler->submit(jobs(client, {0}));
  client->wait_in_gate();
  scheduler->submit(jobs(client, {1, 2, 3}));
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    client->open();
  });
  scheduler->stop();  // waits for the batch being prepared, then fails the rest
  opener.join();
  const std::size_t after_stop = client->events().size();
  const auto failed = client->failed();
  EXPECT_EQ(client->done().size() + failed.size(), 4u);
  for (const auto& [tag, code] : failed) EXPECT_EQ(code, Error::Code::kUnavailable) << tag;
  EXPECT_GE(failed.size(), 3u);
  EXPECT_THROW(scheduler->submit(jobs(client, {9})), Error);
  scheduler->stop();  // idempotent
  scheduler.reset();
  EXPECT_EQ(client->events().size(), after_stop);  // nothing after stop() returned
}

TEST_F(SchedulerTest, AFillThatThrowsFailsOnlyItsOwnJob) {
  pipeline::Scheduler scheduler(demo_->generator(), {4, 50});
  auto client = std::make_shared<RecordingClient>();
  client->throw_on(2);
  scheduler.submit(jobs(client, {0, 1, 2, 3}));
  client->wait_for(4);
  EXPECT_EQ(client->done(), (std::vector<std::int64_t>{0, 1, 3}));
  ASSERT_EQ(client->failed().size(), 1u);
  EXPECT_EQ(client->failed()[0],
            (std::pair<std::int64_t, Error::Code>{2, Error::Code::kInvalidInput}));
}

TEST_F(SchedulerTest, TheNextBatchIsPreparedWhileOneRuns) {
  // The first batch's run does not end until the second batch has been filled: the batch hook
  // runs on the runner before any job of its batch is done, and it waits there for "fill 7".
  // A scheduler that filled only between runs would never fill it, and the wait would time out.
  const infer::Models narrow(testing::synth_models(), testing::two_threads());
  auto client = std::make_shared<RecordingClient>();
  std::atomic<int> batches{0};
  std::atomic<bool> filled_during_first{false};
  pipeline::Scheduler scheduler(narrow.generator(), {4, 0}, [&](int, double) {
    if (batches++ == 0) filled_during_first = client->saw("fill 7", std::chrono::seconds(20));
  });
  scheduler.submit(jobs(client, {0, 1, 2, 3, 4, 5, 6, 7}));
  client->wait_for(8);
  EXPECT_TRUE(filled_during_first) << "batch 2 was not prepared during batch 1";
  const auto events = client->events();
  const auto at = [&](const std::string& e) {
    return std::find(events.begin(), events.end(), e) - events.begin();
  };
  EXPECT_LT(at("fill 7"), at("done 0"));
  EXPECT_EQ(client->done(), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  const auto sizes = scheduler.batch_size_counts();
  EXPECT_EQ(sizes[4], 2u);
}

TEST_F(SchedulerTest, WithTwoParallelRunsTwoBatchesRunAtOnce) {
  // The first batch to finish holds its runner in the batch hook until a second batch has run.
  // With one runner the second could not run meanwhile, and the wait would time out.
  infer::InferOptions options;
  options.intra_op_threads = 1;
  options.parallel_runs = 2;
  const infer::Models narrow(testing::synth_models(), options);
  std::mutex mutex;
  std::condition_variable changed;
  int runs = 0;
  bool second_ran_beside_first = false;
  pipeline::Scheduler scheduler(narrow.generator(), {4, 0}, [&](int, double) {
    std::unique_lock lock(mutex);
    ++runs;
    changed.notify_all();
    if (runs == 1) {
      second_ran_beside_first =
          changed.wait_for(lock, std::chrono::seconds(20), [&] { return runs >= 2; });
    }
  });
  auto client = std::make_shared<RecordingClient>();
  scheduler.submit(jobs(client, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  client->wait_for(16);
  scheduler.stop();
  auto done = client->done();
  std::sort(done.begin(), done.end());
  EXPECT_EQ(done,
            (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}));
  EXPECT_TRUE(client->failed().empty());
  EXPECT_EQ(scheduler.batch_size_counts()[4], 4u);
  std::lock_guard lock(mutex);
  EXPECT_EQ(runs, 4);
  EXPECT_TRUE(second_ran_beside_first) << "no two batches ran at the same time";
  EXPECT_EQ(scheduler.in_flight(), 0u);
}

}  // namespace
}  // namespace lipsync
