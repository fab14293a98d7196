// The offline renderer end to end: frame-for-frame parity with the Python pipeline, A/V sync of
// the demo, and bad input that stops a render without leaving output behind.
#include "pipeline/offline_renderer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "avatar/avatar_import.h"
#include "avatar/template_walk.h"
#include "core/error.h"
#include "infer/models.h"
#include "pipeline/frame_sinks.h"
#include "render/image_encoder.h"
#include "render/jpeg_splice.h"
#include "support/collectors.h"
#include "support/media_probe.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::testdata;
using testing::two_threads;

fs::path demo_speech() {
  return fs::path(LIPSYNC_SOURCE_DIR) / "assets" / "demo_speech.wav";
}

TEST(OfflineRenderer, MatchesThePythonPipelineFrameForFrame) {
  TempDir dir;
  avatar::import_frames(testdata("reference/frames/00000.png").parent_path(),
                        testdata("reference/crop_rects.json"), dir / "avatar", "ref");
  const auto avatar = avatar::Avatar::open(dir / "avatar", {});
  const infer::Models models(testing::reference_models(), two_threads());
  const auto samples = audio::load_audio_file(testdata("reference/speech_a_en.wav"));
  pipeline::RenderOptions options;
  options.batch = 3;                                  // batches that do not divide 118
  options.blend = render::BlendOptions::reference();  // paste + off: the reference's pictures
  const pipeline::OfflineRenderer renderer(avatar, models, options);
  pipeline::ImageFolderSink sink(dir / "out", render::ImageFormat::kPng, 75);
  int last_progress = 0;
  const auto stats = renderer.render(samples, sink, [&](int done, int total) {
    EXPECT_GT(done, last_progress);
    EXPECT_EQ(total, 118);
    last_progress = done;
  });
  EXPECT_EQ(stats.frames, 118);
  EXPECT_EQ(last_progress, 118);
  EXPECT_FALSE(fs::exists(dir / "out" / ".lipsync-partial"));

  std::size_t off_by_one = 0, values = 0;
  for (int i = 0; i < 118; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "%05d.png", i);
    const cv::Mat got = cv::imread((dir / "out" / name).string(), cv::IMREAD_COLOR);
    const cv::Mat expected = cv::imread(
        testdata("reference/composited/" + std::string(name)).string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(got.empty()) << name;
    ASSERT_EQ(got.size(), expected.size());
    cv::Mat diff;
    cv::absdiff(got, expected, diff);
    double max_diff = 0;
    cv::minMaxLoc(diff.reshape(1), nullptr, &max_diff);
    ASSERT_LE(max_diff, 1.0) << "frame " << i << " differs by more than one level";
    off_by_one += static_cast<std::size_t>(cv::countNonZero(diff.reshape(1)));
    values += diff.total() * 3;
  }
  EXPECT_LE(double(off_by_one) / double(values), 1e-4)
      << off_by_one << " of " << values << " values off by one";
  std::cout << "[ parity ] " << off_by_one << " of " << values << " values off by one level\n";
}

// Collects, per output frame, the mean grey level of the demo mouth region.
class MouthSink : public pipeline::FrameSink {
 public:
  MouthSink(std::shared_ptr<const avatar::Avatar> a, int start)
      : avatar_(std::move(a)), start_(start) {}
  void write(int index, const cv::Mat& frame, std::vector<std::uint8_t>) override {
    const int t = avatar::template_frame_for(index, avatar_->frame_count(), start_);
    cv::Mat grey;
    cv::cvtColor(frame(testing::demo_mouth_box(*avatar_, t)), grey, cv::COLOR_BGR2GRAY);
    level.push_back(cv::mean(grey)[0]);
  }
  void finish() override {}
  std::vector<double> level;

 private:
  std::shared_ptr<const avatar::Avatar> avatar_;
  int start_;
};

double correlation(const std::vector<double>& x, const std::vector<double>& y, int lag) {
  // Pairs x[i] with y[i + lag].
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  int n = 0;
  for (int i = 0; i < int(x.size()); ++i) {
    const int j = i + lag;
    if (j < 0 || j >= int(y.size())) continue;
    sx += x[i], sy += y[j], sxx += x[i] * x[i], syy += y[j] * y[j], sxy += x[i] * y[j];
    ++n;
  }
  const double cov = sxy / n - (sx / n) * (sy / n);
  const double vx = sxx / n - (sx / n) * (sx / n), vy = syy / n - (sy / n) * (sy / n);
  return cov / std::sqrt(vx * vy);
}

TEST(OfflineRenderer, DemoMouthFollowsTheSoundAtLagZero) {
  TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 30, 640, 360);
  const auto avatar = avatar::Avatar::open(dir / "demo", {});
  const infer::Models models(testing::demo_models(), two_threads());
  const auto samples = audio::load_audio_file(demo_speech());
  const pipeline::OfflineRenderer renderer(avatar, models, {});
  MouthSink sink(avatar, 0);
  renderer.render(samples, sink);
  const int frames = int(sink.level.size());
  ASSERT_EQ(frames, audio::clip_frames_for_samples(samples.size()));
  // Darkness: how much darker each frame's mouth region is than the same frame made for silence
  // (the demo avatar's template talks, so the template itself is no closed-mouth baseline).
  MouthSink silent(avatar, 0);
  renderer.render(std::vector<float>(samples.size(), 0.0f), silent);
  ASSERT_EQ(int(silent.level.size()), frames);
  std::vector<double> darkness(frames);
  for (int i = 0; i < frames; ++i) darkness[i] = silent.level[i] - sink.level[i];
  // Loudness of each frame's own 40 ms.
  std::vector<double> loudness(frames, 0.0);
  for (int i = 0; i < frames; ++i) {
    double sum = 0;
    int n = 0;
    for (std::size_t k = std::size_t(i) * 640;
         k < std::min(samples.size(), std::size_t(i + 1) * 640); ++k) {
      sum += double(samples[k]) * samples[k];
      ++n;
    }
    loudness[i] = n ? std::sqrt(sum / n) : 0.0;
  }
  int best_lag = 0;
  double best = -2;
  for (int lag = -5; lag <= 5; ++lag) {
    const double c = correlation(loudness, darkness, lag);
    if (c > best) best = c, best_lag = lag;
  }
  std::cout << "[ av sync ] best correlation " << best << " at lag " << best_lag << "\n";
  EXPECT_LE(std::abs(best_lag), 1);
  EXPECT_GT(best, 0.5);
  // Silence closes the mouth: the clip ends in silence, and its last frame is the silent one
  // (up to the features of the speech before it), while speech opens it wide.
  EXPECT_LT(std::abs(darkness.back()), 0.5);
  EXPECT_GT(*std::max_element(darkness.begin(), darkness.end()), 20.0);
}

TEST(OfflineRenderer, JpegFramesAreSplicedIntoTheirTemplateFramesExactly) {
  TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 10, 320, 240);
  const auto avatar = avatar::Avatar::open(dir / "demo", {});
  avatar::AvatarOptions no_cache;
  no_cache.jpeg_cache_mb = 0;
  const auto whole_avatar = avatar::Avatar::open(dir / "demo", no_cache);
  const infer::Models models(testing::demo_models(), two_threads());
  const auto samples = audio::load_audio_file(demo_speech());
  testing::FrameCollector pictures({pipeline::FrameEncoding::kNone, 75, true});
  testing::FrameCollector spliced({pipeline::FrameEncoding::kJpeg, 75, false});
  testing::FrameCollector whole({pipeline::FrameEncoding::kJpeg, 75, false});
  pipeline::OfflineRenderer(avatar, models, {}).render(samples, pictures);
  pipeline::OfflineRenderer(avatar, models, {}).render(samples, spliced);
  pipeline::OfflineRenderer(whole_avatar, models, {}).render(samples, whole);
  const std::size_t frames = pictures.images.size();
  ASSERT_GT(frames, 20u);  // every template frame is visited more than once
  ASSERT_EQ(spliced.encoded_frames.size(), frames);
  ASSERT_EQ(whole.encoded_frames.size(), frames);
  for (std::size_t i = 0; i < frames; ++i) {
    // Spliced: the bytes of the whole picture encoded with restart markers.
    EXPECT_TRUE(spliced.encoded_frames[i] ==
                render::encode_jpeg_segmented(pictures.images[i], 75).bytes)
        << "frame " << i;
    // Without the cache: TurboJPEG's encoding. Both decode to the same pixels.
    EXPECT_TRUE(whole.encoded_frames[i] == render::encode_jpeg(pictures.images[i], 75))
        << "frame " << i;
    EXPECT_EQ(cv::norm(cv::imdecode(spliced.encoded_frames[i], cv::IMREAD_COLOR),
                       cv::imdecode(whole.encoded_frames[i], cv::IMREAD_COLOR), cv::NORM_INF),
              0.0)
        << "frame " << i;
  }
}

TEST(OfflineRenderer, Mp4HasTheFramesAndTheAudio) {
  TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 10, 320, 240);
  const auto avatar = avatar::Avatar::open(dir / "demo", {});
  const infer::Models models(testing::demo_models(), two_threads());
  const auto samples = audio::load_audio_file(demo_speech());
  const pipeline::OfflineRenderer renderer(avatar, models, {});
  {
    pipeline::Mp4Sink sink(dir / "demo.mp4", 320, 240, {});
    renderer.render(samples, sink);
  }
  const int frames = audio::clip_frames_for_samples(samples.size());
  const auto p = testing::probe_media(dir / "demo.mp4");
  EXPECT_EQ(p.video_streams, 1);
  EXPECT_EQ(p.audio_streams, 1);
  EXPECT_EQ(p.video_codec, "h264");
  EXPECT_EQ(p.audio_codec, "aac");
  EXPECT_EQ(p.video_frames, frames);
  EXPECT_NEAR(p.video_seconds, p.audio_seconds, 0.04);
}

TEST(OfflineRenderer, BadInputStopsTheRenderAndLeavesNothing) {
  TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 12, 320, 240);
  const infer::Models models(testing::demo_models(), two_threads());
  const auto samples = audio::load_audio_file(demo_speech());
  // A template frame that turns out to be corrupt in the middle of the render.
  std::ofstream(dir / "demo" / "frames" / "00009.png") << "not a png";
  const auto avatar = avatar::Avatar::open(dir / "demo", {});
  const pipeline::OfflineRenderer renderer(avatar, models, {});
  for (const char* out : {"frames_out", "video.mp4"}) {
    try {
      if (std::string(out).ends_with(".mp4")) {
        pipeline::Mp4Sink sink(dir / out, 320, 240, {});
        renderer.render(samples, sink);
      } else {
        pipeline::ImageFolderSink sink(dir / out, render::ImageFormat::kPng, 75);
        renderer.render(samples, sink);
      }
      ADD_FAILURE() << "no error for " << out;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("frame 9"), std::string::npos) << e.message();
    }
    EXPECT_FALSE(fs::exists(dir / out)) << out;
    EXPECT_FALSE(fs::exists(dir / (std::string(out) + ".partial"))) << out;
  }
  // Too short audio fails before any frame is written; so does a start frame past the end.
  {
    pipeline::ImageFolderSink sink(dir / "short", render::ImageFormat::kPng, 75);
    EXPECT_THROW(renderer.render(std::span(samples).first(2999), sink), Error);
  }
  EXPECT_FALSE(fs::exists(dir / "short"));
  pipeline::RenderOptions past_end;
  past_end.start_frame = 12;
  try {
    pipeline::OfflineRenderer r(avatar, models, past_end);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("start frame 12 is out of range"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace lipsync
