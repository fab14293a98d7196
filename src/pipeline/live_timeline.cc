#include "pipeline/live_timeline.h"

#include <algorithm>

namespace lipsync::pipeline::timeline {

SteadyTime due(SteadyTime t0, std::int64_t tick) {
  return t0 + kTick * tick;
}

std::int64_t first_tick_at_or_after(SteadyTime t0, SteadyTime t) {
  if (t <= t0) return 0;
  return (t - t0 + kTick - SteadyDuration(1)) / kTick;
}

int latency_ticks(int latency_ms) {
  return std::max(1, (latency_ms + audio::kMsPerFrame - 1) / audio::kMsPerFrame);
}

Shows what_tick_shows(std::int64_t tick, std::span<const Placement> queue, const Fade& fade,
                      bool can_fade) {
  for (std::size_t i = 0; i < queue.size(); ++i) {
    const Placement& p = queue[i];
    if (p.start < 0 || tick < p.start) break;
    if (p.over_by(tick)) continue;
    return {LiveState::kSpeaking, static_cast<int>(i), static_cast<int>(tick - p.start)};
  }
  if (can_fade && fade.start >= 0 && tick >= fade.start - (fade.hold ? 1 : 0) &&
      tick < fade.start + fade.frames) {
    return {LiveState::kFading, -1, static_cast<int>(tick - fade.start)};
  }
  return {};
}

std::int64_t start_tick(SteadyTime t0, std::int64_t next_tick, std::int64_t after, SteadyTime since,
                        int latency_ms) {
  const std::int64_t earliest = std::max(next_tick, after);
  return std::max(earliest,
                  first_tick_at_or_after(t0, since + std::chrono::milliseconds(latency_ms)));
}

std::int64_t underrun_gap(std::int64_t tick, int latency_ticks, std::int64_t start,
                          std::int64_t have) {
  const std::int64_t needed = audio::samples_for_frames(tick + latency_ticks + 1 - start);
  return std::max<std::int64_t>(0, needed - have);
}

Fade fade_after_interrupt(SteadyTime t0, std::int64_t next_tick, SteadyTime now, int frames) {
  Fade f;
  f.frames = frames;
  f.hold = due(t0, next_tick) - now < kFadeLead;
  f.start = next_tick + (f.hold ? 1 : 0);
  return f;
}

double speech_weight(int frame, int frames, int crossfade) {
  double w = 1.0;
  if (frame < crossfade) w = std::min(w, static_cast<double>(frame + 1) / (crossfade + 1));
  if (frames >= 0 && frame >= frames - crossfade) {
    w = std::min(w, static_cast<double>(frames - frame) / (crossfade + 1));
  }
  return w;
}

double fade_weight(int step, int frames) {
  return static_cast<double>(frames - step) / (frames + 1);
}

}  // namespace lipsync::pipeline::timeline
