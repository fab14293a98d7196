// FrameProducer: the one per-frame chain. Streaming equals the whole clip, the window bounds what
// is in flight however the audio comes, a big chunk is not encoded all at once, cancel stops
// everything, and bad audio fails with its reason. Runs under ThreadSanitizer in CI.
#include "pipeline/frame_producer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <opencv2/core.hpp>
#include <random>
#include <thread>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "avatar/avatar_import.h"
#include "avatar/template_walk.h"
#include "infer/models.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using pipeline::FrameProducer;
using pipeline::ProducedFrame;

// Collects frames; releases them at once unless told to hold them.
class Collector : public pipeline::FrameConsumer {
 public:
  explicit Collector(bool hold = false) : hold_(hold) {}
  void on_frame(ProducedFrame frame) override {
    std::shared_ptr<FrameProducer> producer;
    {
      std::lock_guard lock(mutex_);
      EXPECT_EQ(frame.index, static_cast<int>(frames_.size()));  // in order
      frames_.push_back(std::move(frame));
      producer = producer_.lock();
      changed_.notify_all();
    }
    if (!hold_ && producer) producer->release(1);
  }
  void on_audio_wanted() override {
    std::lock_guard lock(mutex_);
    ++wanted_;
    changed_.notify_all();
  }
  void on_finished() override {
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }
  void on_failed(const Error& error) override {
    std::lock_guard lock(mutex_);
    error_ = error;
    changed_.notify_all();
  }

  void attach(const std::shared_ptr<FrameProducer>& p) { producer_ = p; }
  template <class Pred>
  bool wait(Pred pred, int seconds = 60) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(seconds), [&] { return pred(*this); });
  }
  // For wait()'s predicates, which run under the lock.
  bool is_done() const { return finished_ || error_.has_value(); }
  std::size_t frames_so_far() const { return frames_.size(); }
  int times_wanted() const { return wanted_; }
  // For the test's own thread.
  bool done() {
    std::lock_guard lock(mutex_);
    return is_done();
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return frames_.size();
  }
  int wanted() {
    std::lock_guard lock(mutex_);
    return wanted_;
  }
  std::vector<ProducedFrame> take() {
    std::lock_guard lock(mutex_);
    return std::move(frames_);
  }
  std::optional<Error> error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  const bool hold_;
  std::weak_ptr<FrameProducer> producer_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<ProducedFrame> frames_;
  int wanted_ = 0;
  bool finished_ = false;
  std::optional<Error> error_;
};

class FrameProducerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", 9, 320, 240);
    models_ = new infer::Models(testing::demo_models(), testing::two_threads());
    speech_ = new std::vector<float>(
        audio::load_audio_file(testing::testdata("reference/speech_a_en.wav")));
  }
  static void TearDownTestSuite() {
    delete speech_;
    delete models_;
    delete dir_;
  }
  void SetUp() override {
    avatar_ = avatar::Avatar::open(*dir_ / "avatar", {});
    scheduler_ = std::make_unique<pipeline::Scheduler>(models_->generator(),
                                                       pipeline::SchedulerOptions{4, 1});
  }
  void TearDown() override {
    scheduler_->stop();
    workers_.reset();  // drains what the producers posted
  }

  pipeline::FrameTarget target() {
    return {avatar_, &models_->encoder(), scheduler_.get(), workers_.get()};
  }
  // The speech's frames made from the whole clip, its features known up front (the
  // InferBatchComposite path): what every way of streaming it must equal.
  std::vector<ProducedFrame> whole_clip(const pipeline::ProducerSettings& settings) {
    auto c = std::make_shared<Collector>();
    auto clip = FrameProducer::from_clip(
        target(), settings,
        pipeline::encode_clip_features(*speech_, models_->encoder(), audio::AudioOptions{}), c);
    c->attach(clip);
    clip->start();
    EXPECT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
    EXPECT_FALSE(c->error()) << c->error()->message();
    return c->take();
  }

  std::shared_ptr<FrameProducer> streaming(const std::shared_ptr<Collector>& c,
                                           pipeline::ProducerSettings s = {}) {
    auto p = FrameProducer::streaming(target(), s, c);
    c->attach(p);
    return p;
  }

  static testing::TempDir* dir_;
  static infer::Models* models_;
  static std::vector<float>* speech_;
  std::shared_ptr<const avatar::Avatar> avatar_;
  std::unique_ptr<pipeline::Scheduler> scheduler_;
  std::unique_ptr<core::WorkerPool> workers_ = std::make_unique<core::WorkerPool>(2);
};
testing::TempDir* FrameProducerTest::dir_ = nullptr;
infer::Models* FrameProducerTest::models_ = nullptr;
std::vector<float>* FrameProducerTest::speech_ = nullptr;

TEST_F(FrameProducerTest, StreamingInRandomChunksEqualsTheWholeClip) {
  pipeline::ProducerSettings settings;
  settings.window_frames = 7;
  const auto expected = whole_clip(settings);
  ASSERT_EQ(expected.size(), 118u);

  // The same audio streamed in random pieces, handed in whenever the producer asks.
  auto c = std::make_shared<Collector>();
  auto p = streaming(c, settings);
  p->start();
  std::mt19937 rng(11);
  std::size_t pos = 0;
  int asked = 0;
  while (pos < speech_->size()) {
    ASSERT_TRUE(
        c->wait([&](const Collector& x) { return x.times_wanted() > asked || x.is_done(); }));
    ASSERT_FALSE(c->done());
    asked = c->wanted();
    const std::size_t n = std::min<std::size_t>(1 + rng() % 7000, speech_->size() - pos);
    p->append_audio({speech_->begin() + pos, speech_->begin() + pos + n});
    pos += n;
  }
  p->end_audio();
  ASSERT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
  ASSERT_FALSE(c->error()) << c->error()->message();
  const auto got = c->take();
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].template_frame, avatar::template_frame_for(int(i), 9, 0));
    ASSERT_EQ(cv::norm(got[i].image, expected[i].image, cv::NORM_INF), 0.0) << "frame " << i;
  }
  EXPECT_EQ(p->total_frames(), 118);
}

// A live session's way: the producer reads its audio from a buffer that grows in random pieces
// (its source, told with audio_available), on a strand it shares with other work; the frames are
// the whole clip's, and a stopped producer leaves the shared strand open.
TEST_F(FrameProducerTest, AProducerReadingItsSourceOnASharedStrandEqualsTheWholeClip) {
  pipeline::ProducerSettings settings;
  settings.window_frames = 7;
  const auto expected = whole_clip(settings);
  ASSERT_EQ(expected.size(), 118u);

  std::mutex mutex;
  std::vector<float> buffer;  // what has come in (guarded)
  bool ended = false;         // guarded
  std::int64_t reads = 0;     // guarded
  auto strand = std::make_shared<core::Strand>(*workers_);
  settings.strand = strand;
  settings.source = [&](std::int64_t from, std::span<float> out, bool& done) {
    std::lock_guard lock(mutex);
    ++reads;
    const auto n =
        std::min<std::size_t>(out.size(), buffer.size() - static_cast<std::size_t>(from));
    std::copy_n(buffer.begin() + from, n, out.begin());
    done = ended && static_cast<std::size_t>(from) + n == buffer.size();
    return n;
  };
  auto c = std::make_shared<Collector>();
  auto p = streaming(c, settings);
  p->start();
  std::mt19937 rng(12);
  std::size_t pos = 0;
  while (pos < speech_->size()) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 7000, speech_->size() - pos);
    {
      std::lock_guard lock(mutex);
      buffer.insert(buffer.end(), speech_->begin() + pos, speech_->begin() + pos + n);
    }
    pos += n;
    p->audio_available();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::lock_guard lock(mutex);
    ended = true;
  }
  p->audio_available();
  ASSERT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
  ASSERT_FALSE(c->error()) << c->error()->message();
  const auto got = c->take();
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(cv::norm(got[i].image, expected[i].image, cv::NORM_INF), 0.0) << "frame " << i;
  }
  {
    std::lock_guard lock(mutex);
    EXPECT_GT(reads, 1);
  }
  // The strand is the caller's: still open after the producer finished.
  std::promise<void> ran;
  strand->post([&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

TEST_F(FrameProducerTest, TheWindowBoundsFramesInFlightAndAsksForNothingWhileFull) {
  pipeline::ProducerSettings settings;
  settings.window_frames = 5;
  int encoder_runs = 0;
  std::mutex mutex;
  settings.observe = [&](std::string_view stage, double) {
    std::lock_guard lock(mutex);
    if (stage == "encoder") ++encoder_runs;
  };
  auto c = std::make_shared<Collector>(/*hold=*/true);
  auto p = streaming(c, settings);
  p->start();
  ASSERT_TRUE(c->wait([](const Collector& x) { return x.times_wanted() == 1; }));
  // 60 s of audio in one piece, as a fast client's huge message would bring it.
  std::vector<float> minute;
  while (minute.size() < 60u * 16000u)
    minute.insert(minute.end(), speech_->begin(), speech_->end());
  minute.resize(60u * 16000u);
  p->append_audio(minute);
  ASSERT_TRUE(c->wait([](const Collector& x) { return x.frames_so_far() == 5; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(c->count(), 5u);  // nothing past the window
  EXPECT_EQ(p->in_flight(), 5);
  EXPECT_EQ(scheduler_->in_flight(), 0u);
  EXPECT_EQ(c->wanted(), 1);  // and no request for more audio
  {
    std::lock_guard lock(mutex);
    EXPECT_LE(encoder_runs, 2) << "the big chunk was encoded past what the window needs";
  }
  // Releasing lets it run to the end of what it has, then it asks again.
  p->release(5);
  for (std::size_t seen = 5;;) {
    ASSERT_TRUE(c->wait(
        [&](const Collector& x) { return x.frames_so_far() > seen || x.times_wanted() == 2; }));
    if (c->wanted() == 2) break;
    const std::size_t now = c->count();
    p->release(static_cast<int>(now - seen));
    seen = now;
  }
  const auto total = static_cast<std::size_t>(audio::clip_frames_for_samples(minute.size()));
  EXPECT_EQ(total, 1499u);
  EXPECT_GE(c->count(), total - 16);  // the last ones wait for the end (about 450 ms)
  p->end_audio();
  for (std::size_t seen = c->count(); !c->done();) {
    p->release(static_cast<int>(c->count() - seen));
    seen = c->count();
    c->wait([&](const Collector& x) { return x.is_done() || x.frames_so_far() > seen; }, 5);
  }
  EXPECT_FALSE(c->error());
  EXPECT_EQ(c->count(), total);
}

TEST_F(FrameProducerTest, CancelStopsEverythingAtOnce) {
  auto c = std::make_shared<Collector>();
  auto p = streaming(c);
  p->start();
  p->append_audio(*speech_);
  ASSERT_TRUE(c->wait([](const Collector& x) { return x.frames_so_far() >= 3; }));
  p->cancel();
  const std::size_t at_cancel = c->count();
  p->end_audio();  // ignored
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LE(c->count(), at_cancel + 1);  // at most the frame being handed over
  EXPECT_FALSE(c->done());               // neither finished nor failed
  EXPECT_EQ(scheduler_->queue_depth(), 0u);
}

TEST_F(FrameProducerTest, BadAudioFailsWithItsReason) {
  {  // Too short at the end.
    auto c = std::make_shared<Collector>();
    auto p = streaming(c);
    p->start();
    p->append_audio(std::vector<float>(2999, 0.1f));
    p->end_audio();
    ASSERT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
    ASSERT_TRUE(c->error());
    EXPECT_NE(c->error()->message().find("too short"), std::string::npos);
  }
  {  // Longer than audio.max_seconds.
    pipeline::ProducerSettings s;
    s.audio.max_seconds = 1;
    auto c = std::make_shared<Collector>();
    auto p = streaming(c, s);
    p->start();
    p->append_audio(std::vector<float>(12000, 0.1f));
    p->append_audio(std::vector<float>(12000, 0.1f));
    ASSERT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
    ASSERT_TRUE(c->error());
    EXPECT_EQ(c->error()->code(), Error::Code::kInvalidInput);
    EXPECT_NE(c->error()->message().find("audio.max_seconds"), std::string::npos);
  }
  {  // NaN.
    auto c = std::make_shared<Collector>();
    auto p = streaming(c);
    p->start();
    std::vector<float> bad(4000, 0.1f);
    bad[100] = std::nanf("");
    p->append_audio(bad);
    ASSERT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
    ASSERT_TRUE(c->error());
    EXPECT_EQ(c->error()->code(), Error::Code::kInvalidInput);
  }
}

TEST_F(FrameProducerTest, FrameLimitAndWalkOffsetPlaceTheFrames) {
  pipeline::ProducerSettings settings;
  settings.walk_offset = 3;
  settings.frame_limit = 5;
  settings.encoding = pipeline::FrameEncoding::kJpeg;
  settings.keep_image = false;
  auto c = std::make_shared<Collector>();
  auto p = FrameProducer::from_clip(
      target(), settings,
      pipeline::encode_clip_features(*speech_, models_->encoder(), audio::AudioOptions{}), c);
  c->attach(p);
  p->start();
  ASSERT_TRUE(c->wait([](const Collector& x) { return x.is_done(); }));
  const auto frames = c->take();
  ASSERT_EQ(frames.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(frames[i].template_frame, avatar::template_frame_for(3 + i, 9, 0));
    EXPECT_TRUE(frames[i].image.empty());
    ASSERT_GT(frames[i].encoded.size(), 2u);
    EXPECT_EQ(frames[i].encoded[0], 0xFF);  // JPEG
  }
  EXPECT_EQ(p->total_frames(), 5);
}

}  // namespace
}  // namespace lipsync
