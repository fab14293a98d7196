// Avatars: the template walk, crop rules, folder validation, importers, ROI packing, caches.
#include "avatar/avatar.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "avatar/avatar_import.h"
#include "avatar/crop_rect.h"
#include "avatar/template_walk.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "render/mp4_writer.h"
#include "support/test_data.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using testing::read_f32;
using testing::TempDir;
using testing::testdata;

template <class F>
Error capture(F&& f) {
  return testing::capture_error(std::forward<F>(f));
}

// The reference's loop, transcribed: the ground truth for the closed form.
std::vector<int> reference_walk(int n, int start, int count) {
  std::vector<int> out;
  int idx = start, step = 0;
  for (int i = 0; i < count; ++i) {
    if (n == 1) {
      out.push_back(0);
      continue;
    }
    if (idx > n - 2) step = -1;
    if (idx < 1) step = 1;
    idx += step;
    out.push_back(idx);
  }
  return out;
}

TEST(TemplateWalk, ClosedFormEqualsTheReferenceLoop) {
  for (int n = 1; n <= 7; ++n) {
    for (int start = 0; start < n; ++start) {
      const auto expected = reference_walk(n, start, 60);
      for (int i = 0; i < 60; ++i) {
        ASSERT_EQ(avatar::template_frame_for(i, n, start), expected[i])
            << "n " << n << " start " << start << " frame " << i;
      }
    }
  }
  EXPECT_TRUE(avatar::walk_is_frozen(60, 5));
  EXPECT_FALSE(avatar::walk_is_frozen(60, 0));
  EXPECT_FALSE(avatar::walk_is_frozen(60, 59));
}

TEST(TemplateWalk, MatchesTheReferenceFrameMap) {
  const auto map = nlohmann::json::parse(testing::read_text(testdata("reference/frame_map.json")));
  ASSERT_EQ(map.size(), 118u);
  for (int i = 0; i < 118; ++i) EXPECT_EQ(avatar::template_frame_for(i, 60, 0), map[i].get<int>());
}

TEST(CropRect, LandmarkRuleGivesTheReferenceRects) {
  const auto rects = avatar::load_crop_rects(testdata("reference/crop_rects.json"));
  ASSERT_EQ(rects.size(), 60u);
  for (int i = 0; i < 60; ++i) {
    const auto r =
        avatar::crop_from_landmarks(testdata("reference/landmarks/" + std::to_string(i) + ".lms"));
    EXPECT_EQ(r, rects[i]) << "frame " << i;
  }
}

TEST(CropRect, ValidationNamesTheProblem) {
  EXPECT_NE(capture([] {
              avatar::validate_crop_rect({0, 0, 10, 12}, 100, 100, "f");
            })
                .message()
                .find("square"),
            std::string::npos);
  EXPECT_NE(capture([] {
              avatar::validate_crop_rect({5, 5, 5, 5}, 100, 100, "f");
            })
                .message()
                .find("empty"),
            std::string::npos);
  EXPECT_NE(capture([] {
              avatar::validate_crop_rect({90, 0, 110, 20}, 100, 100, "frame 7");
            })
                .message()
                .find("frame 7: crop rect [90, 0, 110, 20] is not inside"),
            std::string::npos);
  TempDir dir;
  std::ofstream(dir / "r.json") << "[[1, 2, 3, 4], [1, 2, 3]]";
  EXPECT_NE(capture([&] { avatar::load_crop_rects(dir / "r.json"); }).message().find("entry 1"),
            std::string::npos);
  std::ofstream(dir / "bad.lms") << "1 2\nthree four\n";
  EXPECT_NE(capture([&] { avatar::crop_from_landmarks(dir / "bad.lms"); }).message().find("line 2"),
            std::string::npos);
}

// Issue 24: a 50 MB landmarks line was echoed whole into the error, a folder named 0.lms was
// "0 points", 1e30 overflowed float-to-int before the rect was refused, and crop rects beyond int
// were taken.
TEST(CropRect, Issue24_HostileLandmarksAndRectsGetShortClearErrors) {
  TempDir dir;
  {
    std::ofstream(dir / "long.lms") << std::string(2 << 20, '7') << " x\n";
    const std::string m = capture([&] { avatar::crop_from_landmarks(dir / "long.lms"); }).message();
    EXPECT_NE(m.find("a few kB"), std::string::npos) << m.substr(0, 200);
    EXPECT_LT(m.size(), 400u);
  }
  std::ofstream(dir / "wide.lms") << std::string(100000, '1') << "x y\n";
  std::string m = capture([&] { avatar::crop_from_landmarks(dir / "wide.lms"); }).message();
  EXPECT_NE(m.find("line 1"), std::string::npos);
  EXPECT_LT(m.size(), 400u) << m.size();
  fs::create_directories(dir / "0.lms");
  m = capture([&] { avatar::crop_from_landmarks(dir / "0.lms"); }).message();
  EXPECT_NE(m.find("not a file"), std::string::npos) << m;
  std::ofstream(dir / "huge.lms") << "1e30 5\n";
  m = capture([&] { avatar::crop_from_landmarks(dir / "huge.lms"); }).message();
  EXPECT_NE(m.find("line 1"), std::string::npos) << m;
  EXPECT_NE(m.find("at most 1e6"), std::string::npos) << m;
  std::ofstream(dir / "nan.lms") << "nan 5\n";
  EXPECT_EQ(capture([&] { avatar::crop_from_landmarks(dir / "nan.lms"); }).code(),
            Error::Code::kInvalidInput);
  std::ofstream(dir / "r.json") << "[[0, 0, 10, 10], [-2147483648, 0, 2147483647, 10]]";
  m = capture([&] { avatar::load_crop_rects(dir / "r.json"); }).message();
  EXPECT_NE(m.find("entry 1"), std::string::npos) << m;
  std::ofstream(dir / "r2.json") << "[[0, 0, 18446744073709551615, 10]]";
  m = capture([&] { avatar::load_crop_rects(dir / "r2.json"); }).message();
  EXPECT_NE(m.find("entry 0"), std::string::npos) << m;
}

// Issue 24: a 20-digit frame number was "internal error: stoll" (exit 70).
TEST(AvatarImport, Issue24_AFrameNumberOfTwentyDigitsIsNamed) {
  TempDir dir;
  fs::create_directories(dir / "frames");
  cv::imwrite((dir / "frames" / "f1.png").string(), cv::Mat(100, 120, CV_8UC3));
  cv::imwrite((dir / "frames" / "f99999999999999999999.png").string(), cv::Mat(100, 120, CV_8UC3));
  cv::imwrite((dir / "frames" / "f0000000000000000000000002.png").string(),
              cv::Mat(100, 120, CV_8UC3));  // leading zeros are fine
  avatar::save_crop_rects(dir / "r.json", std::vector<avatar::CropRect>(3, {10, 10, 60, 60}));
  const Error e =
      capture([&] { avatar::import_frames(dir / "frames", dir / "r.json", dir / "o", "o"); });
  EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
  EXPECT_NE(e.message().find("f99999999999999999999.png' has a frame number of 20 digits"),
            std::string::npos)
      << e.message();
  fs::remove(dir / "frames" / "f99999999999999999999.png");
  avatar::save_crop_rects(dir / "r.json", std::vector<avatar::CropRect>(2, {10, 10, 60, 60}));
  EXPECT_EQ(avatar::import_frames(dir / "frames", dir / "r.json", dir / "o", "o").frames, 2);
}

TEST(FramePattern, FormatsAndRejects) {
  EXPECT_EQ(avatar::format_frame_pattern("frames/%05d.png", 42), "frames/00042.png");
  EXPECT_EQ(avatar::format_frame_pattern("f_%d.jpg", 7), "f_7.jpg");
  EXPECT_EQ(avatar::format_frame_pattern("100%%_%03d.png", 5), "100%_005.png");
  for (const char* bad : {"frames/%s.png", "%d_%d.png", "plain.png", "%05x.png"}) {
    EXPECT_EQ(capture([&] { avatar::validate_frame_pattern(bad); }).code(),
              Error::Code::kInvalidInput)
        << bad;
  }
}

// Imports the reference avatar from its frames and crop rects.
fs::path import_reference(const TempDir& dir) {
  const auto out = dir / "ref";
  const auto s = avatar::import_frames(testdata("reference/frames/00000.png").parent_path(),
                                       testdata("reference/crop_rects.json"), out, "ref");
  EXPECT_EQ(s.frames, 60);
  EXPECT_EQ(s.width, 640);
  EXPECT_EQ(s.height, 360);
  return out;
}

TEST(AvatarImport, FramesFolderAndSyncTalkLayoutGiveTheSameAvatar) {
  TempDir dir;
  const auto from_frames = import_reference(dir);
  // A SyncTalk_2D layout: full_body_img/<i>.jpg (links to the PNGs; OpenCV reads by content).
  fs::create_directories(dir / "st" / "full_body_img");
  fs::create_directory_symlink(testdata("reference/landmarks/0.lms").parent_path(),
                               dir / "st" / "landmarks");
  for (int i = 0; i < 60; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%05d.png", i);
    fs::create_symlink(testdata("reference/frames/" + std::string(name)),
                       dir / "st" / "full_body_img" / (std::to_string(i) + ".jpg"));
  }
  avatar::import_synctalk(dir / "st", dir / "st_avatar", "st");
  EXPECT_EQ(avatar::load_crop_rects(dir / "st_avatar" / "crop_rects.json"),
            avatar::load_crop_rects(testdata("reference/crop_rects.json")));
  const auto a = avatar::Avatar::open(from_frames, {});
  const auto b = avatar::Avatar::open(dir / "st_avatar", {});
  ASSERT_EQ(a->frame_count(), b->frame_count());
  for (int i : {0, 23, 59}) {
    EXPECT_EQ(cv::norm(*a->frame(i), *b->frame(i), cv::NORM_INF), 0.0) << i;
  }
}

TEST(AvatarImport, FromAVideoFile) {
  TempDir dir;
  // A 6-frame video made with our own MP4 writer.
  {
    render::Mp4Writer writer(dir / "v.mp4", 320, 240, false, {});
    for (int i = 0; i < 6; ++i) {
      cv::Mat img(240, 320, CV_8UC3, cv::Scalar(40 * i, 100, 200 - 30 * i));
      writer.write(img);
    }
    writer.finish();
  }
  std::vector<avatar::CropRect> rects(6, {100, 50, 200, 150});
  avatar::save_crop_rects(dir / "r.json", rects);
  const auto s = avatar::import_frames(dir / "v.mp4", dir / "r.json", dir / "va", "va");
  EXPECT_EQ(s.frames, 6);
  EXPECT_EQ(s.width, 320);
  const auto a = avatar::Avatar::open(dir / "va", {});
  EXPECT_EQ(a->frame_count(), 6);
  // Lossy, but close to the drawn colour.
  EXPECT_NEAR(a->frame(5)->at<cv::Vec3b>(120, 160)[0], 200, 6);
  // Too few rects for the video: an error, and no output.
  rects.resize(4);
  avatar::save_crop_rects(dir / "r4.json", rects);
  EXPECT_NE(capture([&] { avatar::import_frames(dir / "v.mp4", dir / "r4.json", dir / "x", "x"); })
                .message()
                .find("more frames than the 4 crop rects"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "x"));
}

// Issue 24: avatar import followed HLS playlists and ffconcat lists inside a "video" and read
// other local files into the avatar; a video whose size changed mid-stream imported into an
// avatar that could not render.
TEST(AvatarImport, Issue24_OnlyLocalVideoFilesAndOneFrameSize) {
  TempDir dir;
  {
    render::Mp4Writer writer(dir / "secret.mp4", 320, 240, false, {});
    for (int i = 0; i < 4; ++i) writer.write(cv::Mat(240, 320, CV_8UC3, cv::Scalar(9, 9, 9)));
    writer.finish();
  }
  avatar::save_crop_rects(dir / "r.json", std::vector<avatar::CropRect>(4, {10, 10, 60, 60}));
  // Playlists and lists that name another file, whatever their extension says.
  std::ofstream(dir / "hls.mp4") << "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                                 << (dir / "secret.mp4").string() << "\n#EXT-X-ENDLIST\n";
  std::ofstream(dir / "list.mp4") << "ffconcat version 1.0\nfile '" << (dir / "secret.mp4").string()
                                  << "'\n";
  std::ofstream(dir / "remote.m3u8") << "#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n";
  for (const char* name : {"hls.mp4", "list.mp4", "remote.m3u8"}) {
    const Error e =
        capture([&] { avatar::import_frames(dir / name, dir / "r.json", dir / "out", "out"); });
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput) << name;
    EXPECT_NE(e.message().find("cannot open as a video file"), std::string::npos) << e.message();
    EXPECT_FALSE(fs::exists(dir / "out")) << name;
  }
  // A motion-JPEG stream whose frames change size at frame 3.
  {
    std::ofstream out(dir / "sizes.mjpeg", std::ios::binary);
    for (int i = 0; i < 5; ++i) {
      std::vector<unsigned char> jpeg;
      const cv::Size size = i < 3 ? cv::Size(320, 240) : cv::Size(160, 120);
      cv::imencode(".jpg", cv::Mat(size, CV_8UC3, cv::Scalar(50, 100, 150)), jpeg);
      out.write(reinterpret_cast<const char*>(jpeg.data()),
                static_cast<std::streamsize>(jpeg.size()));
    }
  }
  avatar::save_crop_rects(dir / "r5.json", std::vector<avatar::CropRect>(5, {10, 10, 60, 60}));
  const Error e = capture(
      [&] { avatar::import_frames(dir / "sizes.mjpeg", dir / "r5.json", dir / "out", "out"); });
  EXPECT_NE(e.message().find("frame 3 is 160x120 but frame 0 is 320x240"), std::string::npos)
      << e.message();
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(AvatarImport, BadInputsNameTheFrameAndWriteNothing) {
  TempDir dir;
  fs::create_directories(dir / "frames");
  for (int i = 0; i < 3; ++i) {
    cv::imwrite((dir / "frames" / ("f" + std::to_string(i) + ".png")).string(),
                cv::Mat(100, 120, CV_8UC3, cv::Scalar(i, i, i)));
  }
  std::vector<avatar::CropRect> rects(3, {10, 10, 60, 60});
  avatar::save_crop_rects(dir / "r.json", rects);
  // Count mismatch.
  avatar::save_crop_rects(dir / "r2.json", {rects[0], rects[1]});
  EXPECT_NE(capture([&] { avatar::import_frames(dir / "frames", dir / "r2.json", dir / "o", "o"); })
                .message()
                .find("3 frames but 2 crop rects"),
            std::string::npos);
  // A rect outside frame 2.
  auto outside = rects;
  outside[2] = {100, 10, 150, 60};
  avatar::save_crop_rects(dir / "r3.json", outside);
  EXPECT_NE(capture([&] { avatar::import_frames(dir / "frames", dir / "r3.json", dir / "o", "o"); })
                .message()
                .find("frame 2"),
            std::string::npos);
  // A frame of another size.
  cv::imwrite((dir / "frames" / "f1.png").string(), cv::Mat(90, 120, CV_8UC3));
  EXPECT_NE(capture([&] { avatar::import_frames(dir / "frames", dir / "r.json", dir / "o", "o"); })
                .message()
                .find("frame 1"),
            std::string::npos);
  // A corrupt frame.
  std::ofstream(dir / "frames" / "f1.png") << "not an image";
  EXPECT_NE(capture([&] { avatar::import_frames(dir / "frames", dir / "r.json", dir / "o", "o"); })
                .message()
                .find("cannot be decoded"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "o"));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
  }
}

TEST(Avatar, OpenRejectsBrokenFolders) {
  TempDir dir;
  const auto ref = import_reference(dir);
  auto broken = [&](const std::string& name) {
    fs::copy(ref, dir / name, fs::copy_options::recursive);
    return dir / name;
  };
  EXPECT_EQ(capture([&] { avatar::Avatar::open(dir / "none", {}); }).code(),
            Error::Code::kNotFound);
  // Manifest with an unknown key.
  auto p = broken("unknown");
  auto j = nlohmann::json::parse(testing::read_text(p / "avatar.json"));
  j["colour"] = "blue";
  std::ofstream(p / "avatar.json") << j.dump();
  EXPECT_NE(capture([&] { avatar::Avatar::open(p, {}); }).message().find("unknown key 'colour'"),
            std::string::npos);
  // Fewer rects than frames.
  p = broken("rects");
  auto rects = avatar::load_crop_rects(p / "crop_rects.json");
  rects.pop_back();
  avatar::save_crop_rects(p / "crop_rects.json", rects);
  EXPECT_NE(capture([&] { avatar::Avatar::open(p, {}); }).message().find("60 frames but 59"),
            std::string::npos);
  // A missing frame file is reported when that frame is needed.
  p = broken("missing");
  fs::remove(p / "frames" / "00007.png");
  const auto a = avatar::Avatar::open(p, {});
  const Error e = capture([&] { a->frame(7); });
  EXPECT_EQ(e.code(), Error::Code::kNotFound);
  EXPECT_NE(e.message().find("frame 7"), std::string::npos) << e.message();
  // A corrupt frame.
  p = broken("corrupt");
  std::ofstream(p / "frames" / "00003.png") << "garbage";
  const auto c = avatar::Avatar::open(p, {});
  EXPECT_NE(capture([&] { c->canvas(3); }).message().find("frame 3"), std::string::npos);
}

TEST(Avatar, PacksTheReferenceGeneratorInputsExactly) {
  TempDir dir;
  const auto a = avatar::Avatar::open(import_reference(dir), {});
  const auto map = nlohmann::json::parse(testing::read_text(testdata("reference/frame_map.json")));
  std::vector<float> packed(contract::kImageInputSize);
  for (int i = 0; i < 4; ++i) {
    a->pack_generator_input(map[i].get<int>(), packed);
    char name[64];
    std::snprintf(name, sizeof name, "reference/input_%05d.f32", i);
    const auto expected = read_f32(testdata(name));
    ASSERT_EQ(expected.size(), packed.size());
    EXPECT_EQ(0, std::memcmp(packed.data(), expected.data(), packed.size() * 4)) << "frame " << i;
  }
}

TEST(Avatar, CachesStayWithinTheirBudgets) {
  TempDir dir;
  avatar::AvatarOptions options;
  options.frame_cache_mb = 2;  // a 640x360 frame is 675 KiB: at most 3 fit
  options.roi_cache_mb = 1;    // a 328x328 canvas is 315 KiB: at most 3 fit
  const auto a = avatar::Avatar::open(import_reference(dir), options);
  std::vector<float> packed(contract::kImageInputSize);
  for (int i = 0; i < 60; ++i) a->pack_generator_input(i, packed);
  EXPECT_LE(a->frame_cache().used_bytes(), 2u << 20);
  EXPECT_LE(a->canvas_cache().used_bytes(), 1u << 20);
  EXPECT_GE(a->canvas_cache().size(), 1u);
  // A second pass over a small window hits the canvas cache.
  const auto misses = a->canvas_cache().misses();
  for (int k = 0; k < 10; ++k) a->pack_generator_input(59, packed);
  EXPECT_EQ(a->canvas_cache().misses(), misses);
}

TEST(Avatar, WarmCachesDecodesWhatTheBudgetsHoldAndNothingMore) {
  TempDir dir;
  const fs::path ref = import_reference(dir);
  // Every one of the 60 frames fits the default budgets: a pass over them decodes nothing more.
  const auto a = avatar::Avatar::open(ref, {});
  EXPECT_EQ(a->warm_caches(), 60);
  const auto frame_misses = a->frame_cache().misses();
  const auto canvas_misses = a->canvas_cache().misses();
  std::vector<float> packed(contract::kImageInputSize);
  for (int i = 0; i < 60; ++i) {
    a->pack_generator_input(i, packed);
    (void)a->frame(i);
  }
  EXPECT_EQ(a->frame_cache().misses(), frame_misses);
  EXPECT_EQ(a->canvas_cache().misses(), canvas_misses);
  // Small budgets: the first frames that fit both, then the walk decodes the rest as before.
  avatar::AvatarOptions small;
  small.frame_cache_mb = 2;  // 3 frames of 640x360
  small.roi_cache_mb = 1;    // 3 canvases
  const auto b = avatar::Avatar::open(ref, small);
  EXPECT_EQ(b->warm_caches(), 3);
  EXPECT_EQ(b->frame_cache().size(), 3u);
  EXPECT_EQ(b->canvas_cache().size(), 3u);
  // A corrupt frame among those decoded is an error naming it.
  fs::copy(ref, dir / "corrupt", fs::copy_options::recursive);
  std::ofstream(dir / "corrupt" / "frames" / "00002.png") << "garbage";
  const auto c = avatar::Avatar::open(dir / "corrupt", {});
  EXPECT_NE(capture([&] { c->warm_caches(); }).message().find("frame 2"), std::string::npos);
}

TEST(DemoAvatar, WritesAValidAvatarAndChecksItsArguments) {
  TempDir dir;
  const auto s = avatar::write_demo_avatar(dir / "demo", 8, 640, 360);
  EXPECT_EQ(s.frames, 8);
  const auto a = avatar::Avatar::open(dir / "demo", {});
  EXPECT_EQ(a->width(), 640);
  EXPECT_EQ(a->frame_count(), 8);
  // The blink and the head motion make frames differ.
  EXPECT_GT(cv::norm(*a->frame(0), *a->frame(2), cv::NORM_L1), 0.0);
  EXPECT_THROW(avatar::write_demo_avatar(dir / "x", 0, 640, 360), Error);
  EXPECT_THROW(avatar::write_demo_avatar(dir / "y", 5, 100, 100), Error);
  // An existing non-empty output is refused.
  EXPECT_NE(capture([&] { avatar::write_demo_avatar(dir / "demo", 8, 640, 360); })
                .message()
                .find("already exists"),
            std::string::npos);
}

}  // namespace
}  // namespace lipsync
