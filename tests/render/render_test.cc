// Compositing against the Python reference, image encoders, and the MP4 writer.
#include <gtest/gtest.h>

extern "C" {
#include <libavformat/avformat.h>
}

#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "avatar/avatar.h"
#include "avatar/avatar_import.h"
#include "avatar/crop_rect.h"
#include "core/error.h"
#include "render/color_track.h"
#include "render/compositor.h"
#include "render/image_encoder.h"
#include "render/mp4_writer.h"
#include "render/seams.h"
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

// A 1280 x 720 frame (2.7 MB) is larger than a 1 MB frame cache, so the avatar hands it out
// uncached and the caller's reference is its only one. Compositing must hold it while it copies:
// the composites equal those of an avatar whose cache keeps every frame. (Binding a reference to
// the frame a temporary pointer held read freed memory; ThreadSanitizer caught it when another
// thread's eviction dropped the cache's reference mid-copy.)
TEST(Compositor, HoldsItsTemplateFrameWhenTheCacheCannot) {
  testing::TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 2, 1280, 720);
  avatar::AvatarOptions tiny;
  tiny.frame_cache_mb = 1;
  const auto uncached = avatar::Avatar::open(dir / "demo", tiny);
  const auto cached = avatar::Avatar::open(dir / "demo", {});
  std::vector<float> output(3 * 320 * 320);
  for (std::size_t i = 0; i < output.size(); ++i) output[i] = float(i % 251) / 251.0f;
  for (int t = 0; t < 2; ++t) {
    cv::Mat face;
    render::make_face(*cached, t, output, face);
    const cv::Rect crop = avatar::as_cv_rect(cached->crop_rect(t));
    const cv::Rect region = crop + cv::Size(8, 8) - cv::Point(4, 4);
    cv::Mat want, got, want_region, got_region;
    render::composite_face(*cached, t, face, {}, want);
    render::composite_face(*uncached, t, face, {}, got);
    render::composite_region(*cached, t, output, region, want_region);
    render::composite_region(*uncached, t, output, region, got_region);
    EXPECT_EQ(uncached->frame_cache().size(), 0u);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(cv::norm(got, want, cv::NORM_INF), 0.0) << "frame " << t;
    ASSERT_EQ(got_region.size(), want_region.size());
    EXPECT_EQ(cv::norm(got_region, want_region, cv::NORM_INF), 0.0) << "frame " << t;
  }
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

namespace lipsync::render {
namespace {

// A 3-channel test picture: smooth gradients, so neighbouring pixels differ a little.
cv::Mat gradient_picture(int w, int h) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      m.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uchar>(40 + x / 3), static_cast<uchar>(90 + y / 2),
                    static_cast<uchar>(60 + (x + y) / 5));
    }
  }
  return m;
}

// The border step is the colour jump compositing adds at the crop border: a paste drifted by d
// levels shows d, the template itself 0, and the template's own gradient is not counted.
TEST(Seams, TheBorderStepOfAPasteIsItsDrift) {
  const cv::Mat tmpl = gradient_picture(200, 150);
  const cv::Rect rect(50, 30, 80, 80);
  EXPECT_EQ(border_step(tmpl, tmpl, rect).mean(), 0.0);
  cv::Mat pasted = tmpl.clone();
  pasted(rect) += cv::Scalar(6, 0, 3);
  const ChannelValues step = border_step(pasted, tmpl, rect);
  EXPECT_DOUBLE_EQ(step.value[0], 6.0);
  EXPECT_DOUBLE_EQ(step.value[1], 0.0);
  EXPECT_DOUBLE_EQ(step.value[2], 3.0);
  // A rect on the frame's corner: only its two inner edges count.
  cv::Mat corner = tmpl.clone();
  corner(cv::Rect(0, 0, 40, 40)) += cv::Scalar(4, 4, 4);
  EXPECT_DOUBLE_EQ(border_step(corner, tmpl, cv::Rect(0, 0, 40, 40)).mean(), 4.0);
  // Compared a pixel away on each side: the same for a hard edge.
  EXPECT_DOUBLE_EQ(border_step(pasted, tmpl, rect, 1).value[0], 6.0);
  // The reference keeps the outer 4 / 328 of the crop: the seam begins ceil(4 w / 328) inside.
  EXPECT_EQ(generated_region(cv::Rect(10, 20, 200, 200)), cv::Rect(13, 23, 194, 194));
}

TEST(Seams, TheFeatherMaskIsOneInsideAndFallsSmoothlyToTheBorder) {
  const int feather = 6;
  const cv::Mat alpha = feather_mask(cv::Size(40, 30), feather);
  ASSERT_EQ(alpha.type(), CV_32FC1);
  for (int y = 0; y < alpha.rows; ++y) {
    for (int x = 0; x < alpha.cols; ++x) {
      const int d = std::min(std::min(x, alpha.cols - 1 - x), std::min(y, alpha.rows - 1 - y));
      const float a = alpha.at<float>(y, x);
      EXPECT_EQ(a, alpha.at<float>(alpha.rows - 1 - y, alpha.cols - 1 - x));  // symmetric
      if (d >= feather) {
        EXPECT_EQ(a, 1.0f) << x << "," << y;
      } else {
        EXPECT_LT(a, 1.0f) << x << "," << y;
      }
      if (d == 0) {
        EXPECT_LT(a, 0.03f);
      }
    }
  }
  // Rising along a row from the edge inwards.
  for (int x = 1; x <= feather; ++x) EXPECT_GT(alpha.at<float>(15, x), alpha.at<float>(15, x - 1));
  EXPECT_EQ(default_feather_px(320), 19);
  EXPECT_EQ(default_feather_px(5), 1);
}

// band_stats visits only the rows and column strips the band can be in: the same statistics as
// every pixel at its distance from the nearest edge, on odd and tiny sizes too.
TEST(Seams, BandStatsAreThoseOfEveryPixelInTheBand) {
  for (const cv::Size& size : {cv::Size(3, 3), cv::Size(7, 5), cv::Size(40, 30), cv::Size(9, 31)}) {
    const cv::Mat image = gradient_picture(size.width, size.height);
    for (const auto& [inset, width] :
         {std::pair{0, 1}, std::pair{1, 2}, std::pair{2, 3}, std::pair{4, 8}}) {
      std::array<double, 3> sum{}, sum2{};
      int n = 0;
      for (int y = 0; y < size.height; ++y) {
        for (int x = 0; x < size.width; ++x) {
          const int d = std::min(std::min(x, size.width - 1 - x), std::min(y, size.height - 1 - y));
          if (d < inset || d >= inset + width) continue;
          for (int c = 0; c < 3; ++c) {
            sum[c] += image.at<cv::Vec3b>(y, x)[c];
            sum2[c] += std::pow(image.at<cv::Vec3b>(y, x)[c], 2);
          }
          ++n;
        }
      }
      const BandStats s = band_stats(image, inset, width);
      for (int c = 0; c < 3; ++c) {
        const double mean = n > 0 ? sum[c] / n : 0.0;
        EXPECT_DOUBLE_EQ(s.mean[c], mean) << size << " " << inset << "," << width;
        EXPECT_NEAR(s.stddev[c], n > 0 ? std::sqrt(std::max(0.0, sum2[c] / n - mean * mean)) : 0,
                    1e-9);
      }
    }
  }
}

// A generated crop whose colours drift (gain and offset per channel) is matched back to the
// template's colours by the band's statistics; blended through the feather mask its border step
// falls from the drift to nearly nothing, and where the mask is 1 the pixels are the corrected
// face's exactly.
TEST(Seams, MatchingTheBandAndFeatheringHideADriftedCrop) {
  const cv::Mat tmpl = gradient_picture(320, 240);
  const cv::Rect rect(100, 60, 120, 120);
  cv::Mat face;
  tmpl(rect).convertTo(face, CV_8UC3, 1.08, 9.0);  // the drift: 8 % brighter, 9 levels up
  cv::Mat pasted = tmpl.clone();
  face.copyTo(pasted(rect));
  const double paste_step = border_step(pasted, tmpl, rect).mean();
  EXPECT_GT(paste_step, 10.0);

  const Band band = ring_band(rect.width);
  EXPECT_EQ(band.inset, 2);
  EXPECT_EQ(band.width, 3);
  const ColorCorrection k = match_colors(band_stats(face, band.inset, band.width),
                                         band_stats(tmpl(rect).clone(), band.inset, band.width));
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(k.gain[c], 1 / 1.08, 0.05) << c;
  }
  const cv::Mat alpha = feather_mask(rect.size(), default_feather_px(rect.width));
  cv::Mat blended = tmpl.clone();
  blend_face(face, alpha, &k, blended(rect));
  const double blended_step = border_step(blended, tmpl, rect).mean();
  EXPECT_LT(blended_step, paste_step / 10) << blended_step;
  // Inside the feather, the corrected face itself: within a level of the template here.
  const cv::Rect inner(rect.x + 20, rect.y + 20, 80, 80);
  cv::Mat diff;
  cv::absdiff(blended(inner), tmpl(inner), diff);
  double worst = 0;
  cv::minMaxLoc(diff.reshape(1), nullptr, &worst);
  EXPECT_LE(worst, 2.0);
  // Without a correction, the feather alone keeps the face's own pixels where alpha is 1.
  cv::Mat plain = tmpl.clone();
  blend_face(face, alpha, nullptr, plain(rect));
  EXPECT_EQ(cv::norm(plain(inner), face(inner - rect.tl()), cv::NORM_INF), 0.0);
}

}  // namespace
}  // namespace lipsync::render

namespace lipsync::render {
namespace {

BandStats stats_of(double level, double spread) {
  BandStats s;
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = level + 10 * c;
    s.stddev[c] = spread + c;
  }
  return s;
}

// The same corrections whatever order the frames come in (a render, a stream and a live session
// batch and schedule them differently), each the match of its window's mean statistics; a
// skipped frame is left out of its neighbours' windows.
TEST(ColorTrack, CorrectionsAreTheWindowsMatchInAnyOrder) {
  constexpr int kFrames = 60;
  constexpr int kWindow = 5;
  std::vector<BandStats> generated, tmpl;
  for (int i = 0; i < kFrames; ++i) {
    generated.push_back(stats_of(100 + (i * 37 % 11), 20 + (i % 7)));
    tmpl.push_back(stats_of(90 + (i % 5), 18));
  }
  const auto expected = [&](int i) {
    BandStats g, t;
    int n = 0;
    for (int j = std::max(0, i - kWindow + 1); j <= i; ++j) {
      if (j == 17) continue;  // skipped below
      for (int c = 0; c < 3; ++c) {
        g.mean[c] += generated[j].mean[c];
        g.stddev[c] += generated[j].stddev[c];
        t.mean[c] += tmpl[j].mean[c];
        t.stddev[c] += tmpl[j].stddev[c];
      }
      ++n;
    }
    for (int c = 0; c < 3; ++c) {
      g.mean[c] /= n;
      g.stddev[c] /= n;
      t.mean[c] /= n;
      t.stddev[c] /= n;
    }
    return match_colors(g, t);
  };
  // In order, then in a scrambled order: frames wait for the ones before them.
  std::vector<int> order(kFrames);
  for (int i = 0; i < kFrames; ++i) order[i] = i;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      for (int i = 0; i < kFrames; ++i) std::swap(order[i], order[(i * 7 + 3) % kFrames]);
    }
    ColorTrack track(kWindow);
    std::map<int, ColorCorrection> got;
    for (int i : order) {
      const auto ready = i == 17 ? track.skip(i) : track.add(i, generated[i], tmpl[i]);
      int last = -1;
      for (const auto& r : ready) {
        EXPECT_GT(r.frame, last) << "in frame order";
        last = r.frame;
        EXPECT_TRUE(got.emplace(r.frame, r.correction).second) << "twice: " << r.frame;
      }
    }
    EXPECT_EQ(track.waiting(), 0);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kFrames - 1)) << "pass " << pass;
    EXPECT_FALSE(got.contains(17));
    for (const auto& [i, k] : got) {
      const ColorCorrection e = expected(i);
      for (int c = 0; c < 3; ++c) {
        EXPECT_NEAR(k.gain[c], e.gain[c], 1e-12) << i;
        EXPECT_NEAR(k.bias[c], e.bias[c], 1e-9) << i;
      }
    }
  }
  // A frame waits for the ones before it: frame 3 alone is not known until 0..2 are.
  ColorTrack track(kWindow);
  EXPECT_TRUE(track.add(3, generated[3], tmpl[3]).empty());
  EXPECT_TRUE(track.add(1, generated[1], tmpl[1]).empty());
  EXPECT_EQ(track.waiting(), 2);
  EXPECT_EQ(track.add(0, generated[0], tmpl[0]).size(), 2u);  // 0 and 1
  const auto rest = track.skip(2);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].frame, 3);
}

}  // namespace
}  // namespace lipsync::render
