// Compositing against the Python reference, image encoders, and the MP4 writer.
#include <gtest/gtest.h>

extern "C" {
#include <libavformat/avformat.h>
}

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "avatar/avatar.h"
#include "avatar/crop_rect.h"
#include "core/error.h"
#include "render/compositor.h"
#include "render/image_encoder.h"
#include "render/mp4_writer.h"
#include "support/media_probe.h"
#include "support/test_data.h"

namespace lipsync {
namespace {

using testing::read_f32;
using testing::testdata;

cv::Mat canvas_of(const cv::Mat& frame, const avatar::CropRect& r) {
  cv::Mat canvas;
  cv::resize(frame(cv::Rect(r.x1, r.y1, r.width(), r.height())), canvas, cv::Size(328, 328), 0, 0,
             cv::INTER_CUBIC);
  return canvas;
}

TEST(Compositor, ReproducesThePythonFramesFromThePythonOutputs) {
  const auto rects = avatar::load_crop_rects(testdata("reference/crop_rects.json"));
  const auto map = nlohmann::json::parse(testing::read_text(testdata("reference/frame_map.json")));
  cv::Mat out;  // reused: a pooled frame buffer
  for (int i = 0; i < 4; ++i) {
    const int t = map[i].get<int>();
    char name[64];
    std::snprintf(name, sizeof name, "reference/frames/%05d.png", t);
    const cv::Mat frame = cv::imread(testdata(name).string(), cv::IMREAD_COLOR);
    std::snprintf(name, sizeof name, "reference/output_%05d.f32", i);
    const auto output = read_f32(testdata(name));
    render::composite(frame, rects[t], canvas_of(frame, rects[t]), output, out);
    std::snprintf(name, sizeof name, "reference/composited/%05d.png", i);
    const cv::Mat expected = cv::imread(testdata(name).string(), cv::IMREAD_COLOR);
    EXPECT_EQ(cv::norm(out, expected, cv::NORM_INF), 0.0) << "frame " << i;
    // Outside the crop the frame is the template, untouched.
    EXPECT_EQ(out.at<cv::Vec3b>(5, 5), frame.at<cv::Vec3b>(5, 5));
  }
}

TEST(Compositor, TruncatesAndClamps) {
  const cv::Mat frame(40, 40, CV_8UC3, cv::Scalar(9, 9, 9));
  const avatar::CropRect r{0, 0, 328, 328};
  cv::Mat big(400, 400, CV_8UC3, cv::Scalar(9, 9, 9));
  std::vector<float> output(3 * 320 * 320, 0.999f);  // 254.7 -> 254, not 255
  output[0] = 7.0f;                                  // clamped to 1 -> 255
  output[1] = -3.0f;                                 // clamped to 0
  cv::Mat out;
  render::composite(big, r, canvas_of(big, r), output, out);
  // The 328 canvas is the crop size here, so the resize back is the identity.
  EXPECT_EQ(out.at<cv::Vec3b>(100, 100)[0], 254);
  EXPECT_EQ(out.at<cv::Vec3b>(4, 4)[0], 255);
  EXPECT_EQ(out.at<cv::Vec3b>(4, 5)[0], 0);
  EXPECT_EQ(out.at<cv::Vec3b>(2, 2)[0], 9);  // the 4-pixel border keeps the original
  (void)frame;
}

TEST(ImageEncoder, PngIsLosslessAndJpegIsClose) {
  const cv::Mat img = cv::imread(testdata("reference/composited/00010.png").string());
  const auto png = render::encode_png(img);
  EXPECT_EQ(cv::norm(cv::imdecode(png, cv::IMREAD_COLOR), img, cv::NORM_INF), 0.0);
  const auto jpeg = render::encode_jpeg(img, 75);
  ASSERT_GT(jpeg.size(), 1000u);
  EXPECT_EQ(jpeg[0], 0xFF);
  EXPECT_EQ(jpeg[1], 0xD8);
  const cv::Mat back = cv::imdecode(jpeg, cv::IMREAD_COLOR);
  EXPECT_LT(cv::norm(back, img, cv::NORM_L1) / img.total() / 3, 4.0);
  EXPECT_LT(render::encode_jpeg(img, 30).size(), jpeg.size());
}

TEST(Mp4Writer, OneH264AndOneAacStreamWithMatchingDurations) {
  testing::TempDir dir;
  std::vector<float> audio(16000 * 2 + 123, 0.0f);  // a bit more than 50 frames
  for (std::size_t i = 0; i < audio.size(); ++i) audio[i] = 0.2f * std::sin(i * 0.05f);
  {
    render::Mp4Writer w(dir / "a.mp4", 322, 241, true, {});  // odd height: trimmed to 240
    // Audio handed in in uneven pieces, ahead of and behind the frames.
    w.add_audio(std::span(audio).first(7000));
    for (int i = 0; i < 40; ++i) {
      w.write(cv::Mat(241, 322, CV_8UC3, cv::Scalar(i * 5, 80, 160)));
      if (i == 20) w.add_audio(std::span(audio).subspan(7000, 10000));
    }
    w.add_audio(std::span(audio).subspan(17000));
    w.finish();
    EXPECT_EQ(w.frames_written(), 40);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "a.mp4.partial"));
  const auto probe = testing::probe_media(dir / "a.mp4");
  EXPECT_EQ(probe.video_codec, "h264");
  EXPECT_EQ(probe.audio_codec, "aac");
  EXPECT_EQ(probe.video_streams, 1);
  EXPECT_EQ(probe.audio_streams, 1);
  EXPECT_EQ(probe.video_frames, 40);
  EXPECT_EQ(probe.width, 322 - 0);
  EXPECT_EQ(probe.height, 240);
  EXPECT_NEAR(probe.audio_seconds, 40 / 25.0, 0.04);
  EXPECT_NEAR(probe.video_seconds, 40 / 25.0, 0.04);
}

TEST(Mp4Writer, AbandonedFileLeavesNothing) {
  testing::TempDir dir;
  {
    render::Mp4Writer w(dir / "b.mp4", 64, 64, false, {});
    w.write(cv::Mat(64, 64, CV_8UC3, cv::Scalar(1, 2, 3)));
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "b.mp4"));
  EXPECT_FALSE(std::filesystem::exists(dir / "b.mp4.partial"));
  EXPECT_THROW(render::Mp4Writer(dir / "c.mp4", 64, 64, false, {.mp4_crf = 99}), Error);
  EXPECT_THROW(render::Mp4Writer(dir / "c.mp4", 64, 64, false, {.mp4_preset = "ludicrous"}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "c.mp4.partial"));
}

}  // namespace
}  // namespace lipsync
