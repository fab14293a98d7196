#include "render/jpeg_splice.h"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <random>

#include "avatar/avatar.h"
#include "avatar/avatar_import.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "render/compositor.h"
#include "render/image_encoder.h"
#include "support/test_data.h"

namespace lipsync {
namespace {

// Texture that JPEG cannot code trivially: gradients plus seeded noise.
cv::Mat textured(int width, int height, unsigned seed) {
  cv::Mat img(height, width, CV_8UC3);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(-40, 40);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        img.at<cv::Vec3b>(y, x)[c] =
            cv::saturate_cast<unsigned char>((x * (c + 1) + y * 2) % 256 + noise(rng));
      }
    }
  }
  return img;
}

TEST(JpegSplice, RestartIntervalDividesTheRow) {
  EXPECT_EQ(render::segment_mcus_for_width(1280), 8);   // 80 MCUs
  EXPECT_EQ(render::segment_mcus_for_width(1920), 8);   // 120
  EXPECT_EQ(render::segment_mcus_for_width(720), 5);    // 45
  EXPECT_EQ(render::segment_mcus_for_width(1000), 7);   // 63
  EXPECT_EQ(render::segment_mcus_for_width(36), 3);     // 3: the whole row
  EXPECT_EQ(render::segment_mcus_for_width(1072), 67);  // 67 is prime: the whole row
}

// The property everything rests on: a spliced frame is the frame encoded whole, byte for byte,
// wherever the change lies (inside, on the right and bottom edges, partial last MCUs, all of it).
TEST(JpegSplice, SplicedFrameIsTheWholeEncodingByteForByte) {
  struct Case {
    int width, height;
    cv::Rect changed;
  };
  const Case cases[] = {
      {1280, 720, {540, 327, 200, 200}},  // the demo avatar's crop
      {1280, 720, {0, 0, 1, 1}},
      {1280, 720, {1100, 600, 180, 120}},  // to the right and bottom edges
      {1000, 563, {900, 500, 100, 63}},    // partial last MCU row, 7-MCU segments
      {1000, 563, {0, 0, 1000, 563}},      // everything
      {1072, 200, {300, 40, 64, 64}},      // whole-row segments
      {45, 30, {10, 10, 20, 19}},          // tiny, partial MCUs both ways
  };
  unsigned seed = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.width << "x" << c.height << " " << c.changed);
    const cv::Mat base_image = textured(c.width, c.height, seed++);
    for (int quality : {75, 95}) {
      const render::SegmentedJpeg base = render::encode_jpeg_segmented(base_image, quality);
      EXPECT_EQ(base.segments.size(),
                static_cast<std::size_t>(base.segments_per_row) * base.mcu_rows);
      cv::Mat changed = base_image.clone();
      textured(c.changed.width, c.changed.height, seed++).copyTo(changed(c.changed));
      const cv::Rect region = render::splice_region(base, c.changed);
      EXPECT_EQ(region & c.changed, c.changed);
      const auto spliced = render::encode_jpeg_spliced(base, changed(region).clone(), region);
      const auto whole = render::encode_jpeg_segmented(changed, quality);
      ASSERT_EQ(spliced.size(), whole.bytes.size());
      EXPECT_TRUE(spliced == whole.bytes);
      // And it decodes to the picture TurboJPEG's encoding of the same frame decodes to.
      const cv::Mat a = cv::imdecode(spliced, cv::IMREAD_COLOR);
      const cv::Mat b = cv::imdecode(render::encode_jpeg(changed, quality), cv::IMREAD_COLOR);
      ASSERT_EQ(a.size(), changed.size());
      EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
    }
  }
}

TEST(JpegSplice, LibjpegErrorsBecomeErrorsAndLeakNothing) {
  const cv::Mat too_wide(16, 65536, CV_8UC3, cv::Scalar(1, 2, 3));  // JPEG's limit is 65500
  try {
    (void)render::encode_jpeg_segmented(too_wide, 75);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInternal);
    EXPECT_NE(std::string(e.what()).find("libjpeg: "), std::string::npos) << e.what();
  }
}

TEST(JpegSplice, RestartMarkersCostLittle) {
  const cv::Mat img = cv::imread(testing::testdata("reference/composited/00010.png").string());
  const auto plain = render::encode_jpeg(img, 75);
  const auto segmented = render::encode_jpeg_segmented(img, 75);
  EXPECT_GT(segmented.bytes.size(), plain.size());
  EXPECT_LT(static_cast<double>(segmented.bytes.size()), 1.03 * static_cast<double>(plain.size()));
}

TEST(JpegSplice, CacheSplicesFromTheSecondFrameOnATemplateFrame) {
  testing::TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 3, 640, 360);
  const auto avatar = avatar::Avatar::open(dir / "demo", {});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(0.0f, 1.0f);
  auto random_output = [&] {
    std::vector<float> out(contract::kOutputSize);
    for (float& v : out) v = value(rng);
    return out;
  };
  for (std::size_t budget : {std::size_t{64} << 20, std::size_t{0}}) {
    render::JpegSpliceCache cache(avatar, budget);
    int expected_spliced = 0;
    for (int round = 0; round < 3; ++round) {
      for (int t = 0; t < 3; ++t) {
        const auto output = random_output();
        cv::Mat full;
        render::composite(*avatar, t, output, full);
        // Rounds alternate between the cache compositing and being given the composite.
        const auto bytes =
            round % 2 == 0 ? cache.composite_and_encode(t, output, 75) : cache.encode(t, full, 75);
        EXPECT_TRUE(bytes == render::encode_jpeg_segmented(full, 75).bytes)
            << "budget " << budget << " round " << round << " frame " << t;
        if (round > 0 && budget > 0) ++expected_spliced;
      }
    }
    EXPECT_EQ(cache.spliced_frames(), static_cast<std::size_t>(expected_spliced));
    EXPECT_EQ(cache.used_bytes() > 0, budget > 0);
  }
}

TEST(Compositor, RegionIsThatPartOfTheFullComposite) {
  testing::TempDir dir;
  avatar::write_demo_avatar(dir / "demo", 2, 640, 360);
  const auto avatar = avatar::Avatar::open(dir / "demo", {});
  std::vector<float> output(contract::kOutputSize, 0.3f);
  cv::Mat full, part;
  render::composite(*avatar, 1, output, full);
  const avatar::CropRect& r = avatar->crop_rect(1);
  const cv::Rect region(r.x1 - 5, r.y1 - 3, r.width() + 9, r.height() + 4);
  render::composite_region(*avatar, 1, output, region, part);
  EXPECT_EQ(cv::norm(part, full(region), cv::NORM_INF), 0.0);
}

}  // namespace
}  // namespace lipsync
