// ColorTrack: the ring colour correction of one stream of frames (render.color_match: ring),
// smoothed over time whatever order its frames are composited in, so that a render, a stream and
// a live session make the same pictures however their frames were batched and scheduled.
//
// Frame i's correction matches the mean, over frames max(0, i - frames + 1) .. i, of the band
// statistics of their generated crops to the mean of their templates' (seams.h match_colors):
// a moving average over `frames` frames (render.color_match_frames), so one frame's estimate
// cannot make the picture flicker. It is known once each of those frames has been added (or
// skipped: a frame without a picture is left out of the average).
// Thread contract: any thread; one stream's frames each added or skipped once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "core/mutex.h"
#include "render/seams.h"

namespace lipsync::render {

class ColorTrack {
 public:
  // Requires: frames >= 1.
  explicit ColorTrack(int frames);

  struct Ready {
    int frame = 0;
    ColorCorrection correction;
  };
  // Frame `frame`'s band statistics: its generated crop's and its template's. Returns the frames
  // whose correction this made known (this one, and later ones that were waiting for it), in
  // frame order.
  std::vector<Ready> add(int frame, const BandStats& generated, const BandStats& tmpl);
  // Frame `frame` has no picture (skipped): it is known, with nothing to average.
  std::vector<Ready> skip(int frame);

  // Frames added and still waiting for an earlier one (for tests and the producer's checks).
  int waiting() const;

 private:
  struct Entry {
    std::optional<std::pair<BandStats, BandStats>> stats;  // none: skipped
  };
  std::vector<Ready> settle_locked() LIPSYNC_REQUIRES(mutex_);
  std::optional<ColorCorrection> correction_locked(int frame) const LIPSYNC_REQUIRES(mutex_);

  const int frames_;
  mutable core::Mutex mutex_;
  std::map<int, Entry> known_ LIPSYNC_GUARDED_BY(mutex_);
  std::set<int> waiting_ LIPSYNC_GUARDED_BY(mutex_);  // added, correction not yet made
  int next_unknown_ LIPSYNC_GUARDED_BY(mutex_) = 0;   // every frame before it is known
};

}  // namespace lipsync::render
