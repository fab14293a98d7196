// The live timeline's rules on a fake clock (pipeline/live_timeline.h): no thread, no sleep, and
// 24 hours of ticks in well under a second.
#include "pipeline/live_timeline.h"

#include <gtest/gtest.h>

#include <vector>

namespace lipsync::pipeline {
namespace {

using std::chrono::milliseconds;
using timeline::Fade;
using timeline::Placement;
using timeline::Shows;

const SteadyTime t0 = SteadyTime{} + std::chrono::hours(1000);

Shows speaking(int utterance, int frame) {
  return {LiveState::kSpeaking, utterance, frame};
}
Shows fading(int step) {
  return {LiveState::kFading, -1, step};
}
const Shows idle{};

TEST(LiveTimeline, TwentyFourHoursOfTicksAndSpeechDoNotDriftByASingleSample) {
  // Utterances of 3..97 frames back to back for 24 hours, each placed where the last ends: tick
  // k is due exactly at t0 + 40 ms x k, shows the frame its utterance's start gives it, and
  // carries the samples [640 k, 640 k + 640) of the session's audio.
  constexpr std::int64_t kTicks = 24LL * 3600 * 25;
  ASSERT_EQ(kTicks, 2160000);
  std::vector<Placement> placed;
  std::int64_t end = 0;
  for (int i = 0; end < kTicks; ++i) {
    const int frames = 3 + (i * 37) % 95;
    placed.push_back({timeline::start_tick(t0, end, end, t0, 0), frames});
    ASSERT_EQ(placed.back().start, end);
    end += frames;
  }
  std::size_t u = 0;
  std::int64_t audio_before = 0;  // samples of the utterances before u
  for (std::int64_t k = 0; k < kTicks; ++k) {
    const SteadyTime due = timeline::due(t0, k);
    ASSERT_EQ(due - t0, milliseconds(40) * k);
    ASSERT_EQ(timeline::first_tick_at_or_after(t0, due), k);
    ASSERT_EQ(timeline::first_tick_at_or_after(t0, due + std::chrono::nanoseconds(1)), k + 1);
    if (placed[u].over_by(k)) {
      audio_before += audio::samples_for_frames(placed[u].frames);
      ++u;
    }
    // The queue as a session holds it: the playing one first.
    const std::span<const Placement> queue(placed.data() + u,
                                           std::min<std::size_t>(2, placed.size() - u));
    const Shows s = timeline::what_tick_shows(k, queue, {}, false);
    ASSERT_EQ(s.state, LiveState::kSpeaking) << k;
    ASSERT_EQ(s.utterance, 0);
    ASSERT_EQ(audio_before + audio::samples_for_frames(s.frame), audio::samples_for_frames(k))
        << "tick " << k;
  }
}

TEST(LiveTimeline, BackToBackUtterancesAndWhereAQueuedOneStarts) {
  const std::vector<Placement> queue = {{10, 5}, {15, 3}, {-1, -1}};
  EXPECT_EQ(timeline::what_tick_shows(9, queue, {}, false), idle);
  EXPECT_EQ(timeline::what_tick_shows(10, queue, {}, false), speaking(0, 0));
  EXPECT_EQ(timeline::what_tick_shows(14, queue, {}, false), speaking(0, 4));
  EXPECT_EQ(timeline::what_tick_shows(15, queue, {}, false), speaking(1, 0));
  EXPECT_EQ(timeline::what_tick_shows(17, queue, {}, false), speaking(1, 2));
  EXPECT_EQ(timeline::what_tick_shows(18, queue, {}, false), idle);  // the third is not placed
  // An utterance still coming in (frames unknown) speaks on.
  const std::vector<Placement> open = {{10, -1}};
  EXPECT_EQ(timeline::what_tick_shows(100000, open, {}, false), speaking(0, 99990));
  // Its first audio came at t0 + 1 s: with 500 ms of latency it starts on the first tick at or
  // after 1.5 s (37.5 -> 38), unless the one before ends later, or the clock is past it.
  const SteadyTime first = t0 + milliseconds(1000);
  EXPECT_EQ(timeline::start_tick(t0, 5, -1, first, 500), 38);
  EXPECT_EQ(timeline::start_tick(t0, 5, 60, first, 500), 60);
  EXPECT_EQ(timeline::start_tick(t0, 70, 60, first, 500), 70);
  EXPECT_EQ(timeline::start_tick(t0, 0, -1, t0 - milliseconds(900), 500), 0);  // before t0
}

TEST(LiveTimeline, TheLatencyIsWholeTicks) {
  EXPECT_EQ(timeline::latency_ticks(520), 13);
  EXPECT_EQ(timeline::latency_ticks(521), 14);
  EXPECT_EQ(timeline::latency_ticks(40), 1);
  EXPECT_EQ(timeline::latency_ticks(41), 2);
  EXPECT_EQ(timeline::latency_ticks(0), 1);
}

TEST(LiveTimeline, AnUnderrunInsertsWhatIsMissingAtEveryPhase) {
  // Placed at tick 100 with 10 ticks of latency: at tick k the utterance must have its audio up
  // to frame k + 10 - 100, inclusive.
  constexpr int kLatency = 10;
  constexpr std::int64_t kStart = 100;
  for (std::int64_t k : {89, 90, 95, 100, 101, 103, 150, 1000}) {
    const std::int64_t needed = std::max<std::int64_t>(0, 640 * (k + kLatency + 1 - kStart));
    for (const std::int64_t have :
         std::vector<std::int64_t>{0, 640, needed - 1, needed, needed + 5000}) {
      if (have < 0) continue;
      EXPECT_EQ(timeline::underrun_gap(k, kLatency, kStart, have),
                std::max<std::int64_t>(0, needed - have))
          << "tick " << k << ", have " << have;
    }
  }
  // Long before it starts nothing is missing, whatever it has.
  EXPECT_EQ(timeline::underrun_gap(80, kLatency, kStart, 0), 0);
}

TEST(LiveTimeline, AnInterruptFadesOnTheNextTickOrHoldsItWhenTooClose) {
  // Mid-utterance: the next tick (20) is 30 ms away: the fade starts on it.
  const Fade mid =
      timeline::fade_after_interrupt(t0, 20, timeline::due(t0, 20) - milliseconds(30), 2);
  EXPECT_EQ(mid.start, 20);
  EXPECT_FALSE(mid.hold);
  const std::vector<Placement> none;
  EXPECT_EQ(timeline::what_tick_shows(19, none, mid, true), idle);
  EXPECT_EQ(timeline::what_tick_shows(20, none, mid, true), fading(0));
  EXPECT_EQ(timeline::what_tick_shows(21, none, mid, true), fading(1));
  EXPECT_EQ(timeline::what_tick_shows(22, none, mid, true), idle);
  // Exactly kFadeLead away: still drawn.
  EXPECT_FALSE(
      timeline::fade_after_interrupt(t0, 20, timeline::due(t0, 20) - timeline::kFadeLead, 2).hold);
  // 10 ms before its tick: that tick holds the last speech picture, the fade follows.
  const Fade close =
      timeline::fade_after_interrupt(t0, 20, timeline::due(t0, 20) - milliseconds(10), 1);
  EXPECT_TRUE(close.hold);
  EXPECT_EQ(close.start, 21);
  EXPECT_EQ(timeline::what_tick_shows(20, none, close, true), fading(-1));
  EXPECT_EQ(timeline::what_tick_shows(21, none, close, true), fading(0));
  EXPECT_EQ(timeline::what_tick_shows(22, none, close, true), idle);
  // Late: the interrupt came after tick 20 was due (the ticker is behind): it holds too.
  EXPECT_TRUE(
      timeline::fade_after_interrupt(t0, 20, timeline::due(t0, 20) + milliseconds(5), 1).hold);
  // Nothing to fade from (an interrupt before the first speech frame): idle at once.
  EXPECT_EQ(timeline::what_tick_shows(20, none, mid, false), idle);
  // No fade frames configured: idle at once.
  const Fade zero =
      timeline::fade_after_interrupt(t0, 20, timeline::due(t0, 20) - milliseconds(30), 0);
  EXPECT_EQ(timeline::what_tick_shows(20, none, zero, true), idle);
  // Speech queued after an interrupt plays over the fade's last steps once it starts.
  const std::vector<Placement> next = {{21, 5}};
  EXPECT_EQ(timeline::what_tick_shows(20, next, mid, true), fading(0));
  EXPECT_EQ(timeline::what_tick_shows(21, next, mid, true), speaking(0, 0));
}

TEST(LiveTimeline, CrossFadeAndFadeWeights) {
  // Three frames blended at each end of a 10-frame utterance: 1/4, 2/4, 3/4 in, then out.
  const std::vector<double> in_out = {0.25, 0.5, 0.75, 1, 1, 1, 1, 0.75, 0.5, 0.25};
  for (int j = 0; j < 10; ++j) EXPECT_DOUBLE_EQ(timeline::speech_weight(j, 10, 3), in_out[j]) << j;
  // Its end is not known yet: no fade-out.
  EXPECT_DOUBLE_EQ(timeline::speech_weight(9, -1, 3), 1.0);
  // A 2-frame utterance: both ends at once, the smaller weight.
  EXPECT_DOUBLE_EQ(timeline::speech_weight(0, 2, 3), 0.25);
  EXPECT_DOUBLE_EQ(timeline::speech_weight(1, 2, 3), 0.25);
  EXPECT_DOUBLE_EQ(timeline::speech_weight(0, 10, 0), 1.0);
  // The fade after an interrupt: n steps from the last speech picture down to idle.
  EXPECT_DOUBLE_EQ(timeline::fade_weight(0, 1), 0.5);
  EXPECT_DOUBLE_EQ(timeline::fade_weight(0, 3), 0.75);
  EXPECT_DOUBLE_EQ(timeline::fade_weight(2, 3), 0.25);
}

}  // namespace
}  // namespace lipsync::pipeline
