#include "render/color_track.h"

#include <algorithm>

#include "core/check.h"
#include "core/mutex.h"

namespace lipsync::render {

ColorTrack::ColorTrack(int frames) : frames_(frames) {
  LIPSYNC_CHECK(frames >= 1);
}

std::vector<ColorTrack::Ready> ColorTrack::add(int frame, const BandStats& generated,
                                               const BandStats& tmpl) {
  core::MutexLock lock(mutex_);
  LIPSYNC_CHECK(frame >= 0 && !known_.contains(frame));
  known_[frame].stats.emplace(generated, tmpl);
  waiting_.insert(frame);
  return settle_locked();
}

std::vector<ColorTrack::Ready> ColorTrack::skip(int frame) {
  core::MutexLock lock(mutex_);
  LIPSYNC_CHECK(frame >= 0 && !known_.contains(frame));
  known_[frame];
  return settle_locked();
}

int ColorTrack::waiting() const {
  core::MutexLock lock(mutex_);
  return static_cast<int>(waiting_.size());
}

std::vector<ColorTrack::Ready> ColorTrack::settle_locked() {
  while (known_.contains(next_unknown_)) ++next_unknown_;
  std::vector<Ready> ready;
  // A frame's window is known once every frame before it is (its own is).
  for (auto it = waiting_.begin(); it != waiting_.end() && *it < next_unknown_;) {
    if (const auto k = correction_locked(*it)) ready.push_back({*it, *k});
    it = waiting_.erase(it);
  }
  // What no frame still to come can need: entries more than a window before the first one not
  // yet settled.
  const int first_open =
      waiting_.empty() ? next_unknown_ : std::min(*waiting_.begin(), next_unknown_);
  known_.erase(known_.begin(), known_.lower_bound(first_open - frames_ + 1));
  return ready;
}

// Requires mutex_ held, and frames max(0, frame - frames_ + 1) .. frame known.
std::optional<ColorCorrection> ColorTrack::correction_locked(int frame) const {
  BandStats generated, tmpl;
  int n = 0;
  for (auto it = known_.lower_bound(std::max(0, frame - frames_ + 1));
       it != known_.end() && it->first <= frame; ++it) {
    if (!it->second.stats) continue;
    const auto& [g, t] = *it->second.stats;
    for (int c = 0; c < 3; ++c) {
      generated.mean[c] += g.mean[c];
      generated.stddev[c] += g.stddev[c];
      tmpl.mean[c] += t.mean[c];
      tmpl.stddev[c] += t.stddev[c];
    }
    ++n;
  }
  if (n == 0) return std::nullopt;  // not reached: the frame itself was added
  for (int c = 0; c < 3; ++c) {
    generated.mean[c] /= n;
    generated.stddev[c] /= n;
    tmpl.mean[c] /= n;
    tmpl.stddev[c] /= n;
  }
  return match_colors(generated, tmpl);
}

}  // namespace lipsync::render
