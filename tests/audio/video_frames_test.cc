// The frame/sample arithmetic and its inverses.
#include "audio/video_frames.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace lipsync::audio {
namespace {

TEST(VideoFrames, ConstantsAndInverses) {
  EXPECT_EQ(kSamplesPerFrame, 640);
  EXPECT_EQ(kMsPerFrame, 40);
  for (std::int64_t f : {0, 1, 24, 25, 1000, 90000}) {
    EXPECT_EQ(frame_for_sample(samples_for_frames(f)), f);
    EXPECT_EQ(frame_for_sample(samples_for_frames(f) + 639), f);
    EXPECT_EQ(frame_at_ms(frame_pts_ms(f)), f);
    EXPECT_EQ(frame_at_ms(frame_pts_ms(f) + 39), f);
  }
  EXPECT_EQ(samples_for_seconds(2), 32000);
  EXPECT_DOUBLE_EQ(seconds_for_samples(24000), 1.5);
}

TEST(VideoFrames, ClipFramesFollowTheReferenceAndTheInverseIsTight) {
  EXPECT_EQ(clip_frames_for_samples(3000), 4);     // T = 16: L = 2
  EXPECT_EQ(clip_frames_for_samples(76700), 118);  // the reference clip: T = 384, L = 116
  EXPECT_THROW(clip_frames_for_samples(2999), Error);
  for (int frames = 1; frames <= 400; ++frames) {
    const std::size_t n = min_samples_for_clip_frames(frames);
    EXPECT_GE(clip_frames_for_samples(n), frames) << frames;
    if (n > 3000) {
      EXPECT_LT(clip_frames_for_samples(n - 1), frames) << frames;
    }
  }
}

}  // namespace
}  // namespace lipsync::audio
