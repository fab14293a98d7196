// SilenceIdle (avatar.idle: silence): the idle frames are the offline renderer's frames for silent
// audio, byte for byte; the cache folder keeps them across loads and a damaged entry is
// recomputed; a live session idles on them without running the generator, and with
// avatar.idle: template on the template frames as before.
#include "pipeline/silence_idle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <opencv2/core.hpp>
#include <vector>

#include "avatar/avatar_import.h"
#include "avatar/template_walk.h"
#include "core/worker_pool.h"
#include "infer/models.h"
#include "pipeline/live_session.h"
#include "pipeline/offline_renderer.h"
#include "pipeline/ticker.h"
#include "support/collectors.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;

using testing::FrameCollector;
using testing::LiveCollector;

class SilenceIdleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    avatar::write_demo_avatar(dir_ / "avatar", 12, 320, 240);
    avatar_ = avatar::Avatar::open(dir_ / "avatar", {});
    models_ = std::make_unique<infer::Models>(testing::demo_models(), testing::two_threads());
    scheduler_ = std::make_unique<pipeline::Scheduler>(models_->generator(),
                                                       pipeline::SchedulerOptions{4, 1});
  }
  void TearDown() override { scheduler_->stop(); }

  std::shared_ptr<const pipeline::SilenceIdle> load() {
    return pipeline::SilenceIdle::load_or_build(avatar_, *models_, *scheduler_, dir_ / "cache");
  }
  std::uint64_t frames_run() const { return scheduler_->stats().frames; }

  testing::TempDir dir_;
  std::shared_ptr<const avatar::Avatar> avatar_;
  std::unique_ptr<infer::Models> models_;
  std::unique_ptr<pipeline::Scheduler> scheduler_;
};

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

TEST_F(SilenceIdleTest, IdleFramesAreTheRenderersFramesForSilence) {
  const auto idle = load();
  ASSERT_EQ(idle->avatar(), avatar_);
  EXPECT_FALSE(idle->from_cache());
  const std::vector<float> silence(3 * 16000, 0.0f);  // 74 frames
  const int n = avatar_->frame_count();
  struct Case {
    const char* name;
    render::BlendOptions blend;
  };
  // Ring with a one-frame window: each frame's own correction, as an idle frame's is.
  for (const Case& c : {Case{"paste", render::BlendOptions::reference()},
                        Case{"feather", render::BlendOptions{true, false, 0, 5}},
                        Case{"feather + ring", render::BlendOptions{true, true, 0, 1}}}) {
    pipeline::RenderOptions options;
    options.blend = c.blend;
    FrameCollector sink;
    pipeline::OfflineRenderer(avatar_, *models_, options).render(silence, sink);
    ASSERT_EQ(sink.images.size(), 74u) << c.name;
    int compared = 0;
    // Frames whose 16 feature rows are all inside the clip: not the first 8 or the last 7.
    for (int i = 8; i + 7 < static_cast<int>(sink.images.size()); ++i) {
      const int t = avatar::template_frame_for(i, n, 0);
      cv::Mat mine;
      idle->idle_frame(t, c.blend, mine);
      ASSERT_TRUE(same_pixels(mine, sink.images[static_cast<std::size_t>(i)]))
          << c.name << ": frame " << i << " (template frame " << t << ")";
      ++compared;
    }
    EXPECT_EQ(compared, 59) << c.name;
    // The edge frames read zero rows: a different face, so the comparison above is not vacuous.
    cv::Mat first;
    idle->idle_frame(0, c.blend, first);
    EXPECT_FALSE(same_pixels(first, sink.images[0])) << c.name;
  }
  // The idle frame is the template outside the crop rect, and differs from it inside (the face
  // the model made).
  const cv::Rect rect = avatar::as_cv_rect(avatar_->crop_rect(3));
  cv::Mat frame;
  idle->idle_frame(3, render::BlendOptions::reference(), frame);
  cv::Mat outside = frame.clone();
  (*avatar_->frame(3))(rect).copyTo(outside(rect));
  EXPECT_TRUE(same_pixels(outside, *avatar_->frame(3)));
  EXPECT_FALSE(same_pixels(frame(rect), (*avatar_->frame(3))(rect)));
}

// Mean blue level of the demo mouth's region in a frame of the avatar (template frame t): the open
// mouth is dark in every channel.
double mouth_level(const avatar::Avatar& a, int t, const cv::Mat& frame) {
  return cv::mean(frame(testing::demo_mouth_box(a, t, 0.8)))[0];
}

// The demo avatar's template talks (its mouth opens in some frames), as a trained avatar's
// video does; its silent frames do not: every one has the same closed mouth, so the difference
// between avatar.idle: silence and template is there to see with the demo models.
TEST_F(SilenceIdleTest, TheDemoTemplateTalksAndItsSilentFramesDoNot) {
  const auto idle = load();
  std::vector<double> in_template, in_silence;
  for (int t = 0; t < avatar_->frame_count(); ++t) {
    in_template.push_back(mouth_level(*avatar_, t, *avatar_->frame(t)));
    cv::Mat silent;
    idle->idle_frame(t, render::BlendOptions::reference(), silent);
    in_silence.push_back(mouth_level(*avatar_, t, silent));
  }
  const auto [t_lo, t_hi] = std::minmax_element(in_template.begin(), in_template.end());
  const auto [s_lo, s_hi] = std::minmax_element(in_silence.begin(), in_silence.end());
  std::cout << "[ mouth ] template " << *t_lo << ".." << *t_hi << ", silence " << *s_lo << ".."
            << *s_hi << "\n";
  // An open mouth darkens the region by tens of levels; closed ones differ by rounding and the
  // head's sub-pixel motion.
  EXPECT_GT(*t_hi - *t_lo, 20.0);
  EXPECT_LT(*s_hi - *s_lo, 3.0);
  // Each silent frame's mouth is as light as the template's closed ones.
  EXPECT_LT(std::abs(*s_lo - *t_hi), 3.0);
}

TEST_F(SilenceIdleTest, TheCacheIsReadBackAndADamagedEntryIsComputedAgain) {
  const int n = avatar_->frame_count();
  const auto first = load();
  EXPECT_FALSE(first->from_cache());
  EXPECT_EQ(frames_run(), static_cast<std::uint64_t>(n));
  EXPECT_TRUE(first->cache_note().empty()) << first->cache_note();
  const fs::path file = pipeline::SilenceIdle::cache_file(
      dir_ / "cache", pipeline::SilenceIdle::key(*avatar_, *models_));
  ASSERT_TRUE(fs::exists(file));
  const auto same_faces = [&](const pipeline::SilenceIdle& idle) {
    for (int t = 0; t < n; ++t) {
      if (!same_pixels(idle.face(t), first->face(t))) return false;
    }
    return true;
  };

  // Read back: no generator run.
  const auto again = load();
  EXPECT_TRUE(again->from_cache());
  EXPECT_EQ(frames_run(), static_cast<std::uint64_t>(n));
  EXPECT_TRUE(same_faces(*again));

  // One byte flipped in the middle of a face: the checksum catches it.
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(file) / 2));
    const char c = static_cast<char>(f.peek());
    f.seekp(static_cast<std::streamoff>(fs::file_size(file) / 2));
    f.put(static_cast<char>(c ^ 0x10));
  }
  const auto repaired = load();
  EXPECT_FALSE(repaired->from_cache());
  EXPECT_NE(repaired->cache_note().find("damaged"), std::string::npos) << repaired->cache_note();
  EXPECT_EQ(frames_run(), static_cast<std::uint64_t>(2 * n));
  EXPECT_TRUE(same_faces(*repaired));
  EXPECT_TRUE(load()->from_cache());  // rewritten

  // Cut short, and empty: computed again, never trusted.
  fs::resize_file(file, fs::file_size(file) - 100);
  EXPECT_FALSE(load()->from_cache());
  fs::resize_file(file, 0);
  const auto from_empty = load();
  EXPECT_FALSE(from_empty->from_cache());
  EXPECT_TRUE(same_faces(*from_empty));
  EXPECT_EQ(frames_run(), static_cast<std::uint64_t>(4 * n));

  // Another avatar (one template frame changed) has a key of its own.
  avatar::write_demo_avatar(dir_ / "other", 12, 320, 240);
  const auto other = avatar::Avatar::open(dir_ / "other", {});
  EXPECT_EQ(pipeline::SilenceIdle::key(*other, *models_),
            pipeline::SilenceIdle::key(*avatar_, *models_));  // the same bytes
  fs::copy_file(avatar_->frame_path(1), other->frame_path(0), fs::copy_options::overwrite_existing);
  const auto changed = avatar::Avatar::open(dir_ / "other", {});
  EXPECT_NE(pipeline::SilenceIdle::key(*changed, *models_),
            pipeline::SilenceIdle::key(*avatar_, *models_));
  // And other models too.
  const infer::Models synth(testing::synth_models(), testing::two_threads());
  EXPECT_NE(pipeline::SilenceIdle::key(*avatar_, synth),
            pipeline::SilenceIdle::key(*avatar_, *models_));
}

// A live session idles on the silent frames (raw pictures, compared byte for byte with
// idle_frame()) and runs no generator job while it idles; with no SilenceIdle it shows the
// template frames.
TEST_F(SilenceIdleTest, ALiveSessionIdlesOnTheSilentFramesWithoutRunningTheModel) {
  const auto idle = load();
  core::WorkerPool workers(2);
  pipeline::Ticker ticker;
  const int n = avatar_->frame_count();
  for (const bool silence : {true, false}) {
    auto sink = std::make_shared<LiveCollector>();
    pipeline::LiveSettings settings;
    settings.encoding = pipeline::FrameEncoding::kNone;
    settings.latency_ms = 400;
    if (silence) settings.silence_idle = idle;
    auto session = pipeline::LiveSession::create(
        {avatar_, &models_->encoder(), scheduler_.get(), &workers}, settings, sink);
    session->start(ticker);
    ASSERT_TRUE(sink->wait_for_frames(5));
    const std::uint64_t run_before = frames_run();
    ASSERT_TRUE(sink->wait_for_frames(40));
    EXPECT_EQ(frames_run(), run_before) << "the generator ran while the session idled";
    session->close();
    int compared = 0;
    for (const auto& f : sink->frames()) {
      if (f.state != pipeline::LiveState::kIdle || f.late || !f.picture) continue;
      const int t = avatar::template_frame_for(static_cast<int>(f.index), n, 0);
      cv::Mat expected;
      if (silence) {
        idle->idle_frame(t, settings.blend, expected);
      } else {
        expected = *avatar_->frame(t);
      }
      ASSERT_EQ(f.picture->size(), expected.total() * expected.elemSize());
      const cv::Mat got(expected.rows, expected.cols, CV_8UC3,
                        const_cast<std::uint8_t*>(f.picture->data()));
      ASSERT_TRUE(same_pixels(got, expected))
          << (silence ? "silence" : "template") << ": tick " << f.index;
      ++compared;
    }
    EXPECT_GE(compared, 30) << (silence ? "silence" : "template");
  }
  ticker.stop();
}

}  // namespace
}  // namespace lipsync
