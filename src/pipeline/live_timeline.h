// The rules of a live session's timeline (LiveSession) as pure functions of numbers and time
// points: when tick k is due, what it shows (idle, speech frame j of a queued utterance, a fade
// step, the hold), where a queued utterance starts, how much silence an underrun inserts, the
// fade an interrupt starts, the latency's rounding and the blend weights. LiveSession asks
// these and does what they say; the tests run them on a fake clock (24 hours of ticks included).
// Everything is integer ticks and samples: audio and frames cannot drift apart (tick k carries
// samples [640 k, 640 k + 640) of the session's audio, whatever runs).
// Thread contract: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "audio/video_frames.h"
#include "pipeline/batch_policy.h"

namespace lipsync::pipeline {

enum class LiveState { kIdle, kSpeaking, kFading };

namespace timeline {

inline constexpr SteadyDuration kTick = std::chrono::milliseconds(audio::kMsPerFrame);
// An interrupt that lands closer than this to the next tick cannot have that tick's fade picture
// drawn (composite, blend, encode a 1280 x 720 frame: about 15 ms here): the tick holds.
inline constexpr SteadyDuration kFadeLead = std::chrono::milliseconds(25);

// Tick k is due at t0 + 40 ms x k.
SteadyTime due(SteadyTime t0, std::int64_t tick);
// The first tick due at or after `t` (0 for any time before t0).
std::int64_t first_tick_at_or_after(SteadyTime t0, SteadyTime t);
// A latency in ms as whole ticks (rounded up, at least one).
int latency_ticks(int latency_ms);

// A queued utterance's place: its first tick (-1: not placed yet) and how many ticks it plays
// (-1: not known until it has all come in).
struct Placement {
  std::int64_t start = -1;
  int frames = -1;
  // Whether `tick` is past it (played out).
  bool over_by(std::int64_t tick) const { return frames >= 0 && tick >= start + frames; }
};

// The fade after an interrupt: ticks [start, start + frames) blend the last speech picture back
// to idle; with `hold`, tick start - 1 shows that picture itself (silent).
struct Fade {
  std::int64_t start = -1;  // none
  bool hold = false;
  int frames = 0;
};

// What a tick shows.
struct Shows {
  LiveState state = LiveState::kIdle;
  int utterance = -1;  // kSpeaking: its index in the queue
  int frame = -1;      // kSpeaking: its frame; kFading: the fade's step (-1: the hold)
  bool operator==(const Shows&) const = default;
};

// Tick `tick` with `queue` in play order (placed ones first) and `fade` (after an interrupt;
// a fade shows only when there is a picture to fade from).
Shows what_tick_shows(std::int64_t tick, std::span<const Placement> queue, const Fade& fade,
                      bool can_fade);

// Where a queued utterance starts: not before `next_tick` (the first not yet emitted) nor the
// end of the one before it (`after`, -1: none), and `latency_ms` after `since` (its first audio,
// or, when it waited for the one before, the time it was placed).
std::int64_t start_tick(SteadyTime t0, std::int64_t next_tick, std::int64_t after, SteadyTime since,
                        int latency_ms);

// The silence an underrun inserts: the playing utterance, placed at `start`, needs its audio up
// to `latency_ticks` past tick `tick` (its producer works that far ahead); it has `have`
// samples. Returns the samples missing (0: none).
std::int64_t underrun_gap(std::int64_t tick, int latency_ticks, std::int64_t start,
                          std::int64_t have);

// The fade an interrupt at `now` starts when `next_tick` is the next tick to emit: on that tick,
// or, when it is due in less than kFadeLead, on the one after (that tick holds).
Fade fade_after_interrupt(SteadyTime t0, std::int64_t next_tick, SteadyTime now, int frames);

// The weight of the generated picture in an utterance's frame `frame` of `frames` (-1: unknown
// yet) with `crossfade` frames blended at each end: (j + 1) / (n + 1) rising, then falling.
double speech_weight(int frame, int frames, int crossfade);
// The weight of the last speech picture in the fade's step `step` of `frames`.
double fade_weight(int step, int frames);

}  // namespace timeline
}  // namespace lipsync::pipeline
