// SilenceIdle: what an avatar shows while it listens (avatar.idle: silence). A trained avatar is
// cut from a video of a person talking, so its template frames move their mouth; idling on them
// looks like lips moving on empty audio. The idle frame of template frame t is instead the frame
// the pipeline makes for silent audio on t: the generator run on t's ROI with the features of
// silence for all 16 neighbours (REFERENCE.md §4: every window of digital silence is the same
// mel, so every feature row is the same), composited as usual. Eyes, blinks and head motion are
// the template's (outside the regenerated region); the mouth is closed and still.
//
// The faces (each generator output through the reference's canvas round trip, at its crop's
// size: what compositing starts from) are computed once per (model, avatar), every template
// frame, as scheduler jobs without a deadline, and kept in the cache folder under a key made
// from the models' and the avatar's bytes: a restart costs a file read; a stale entry is never
// found, a damaged one (its checksum) is recomputed and rewritten. Idling then runs no model.
//
// Exact: idle_frame(t) equals, byte for byte, the offline renderer's frame for silent audio on t
// wherever that frame's 16 feature rows are all inside the clip (not its first 8 or last 7),
// with paste or feather; with ring, when the renderer's correction window is one frame (an idle
// frame's correction is its own face's: the same face on every visit, so it cannot flicker).
// Thread contract: immutable once made; read from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "avatar/avatar.h"
#include "infer/models.h"
#include "pipeline/scheduler.h"
#include "render/output_options.h"

namespace lipsync::pipeline {

class SilenceIdle {
 public:
  // The faces of `avatar` with `models`, read from `cache_dir` (empty: no cache) when a good
  // entry is there, else
  // computed on `scheduler` (which runs models.generator()) and written there (a damaged entry
  // or a cache folder that cannot be written is not an error: cache_note() says what happened,
  // for the log). `progress` (optional) is told the frames done and the total as they finish,
  // from the scheduler's threads. Throws what the generator or the avatar throw.
  static std::shared_ptr<const SilenceIdle> load_or_build(
      std::shared_ptr<const avatar::Avatar> avatar, const infer::Models& models,
      Scheduler& scheduler, const std::filesystem::path& cache_dir,
      const std::function<void(int, int)>& progress = {});

  // The cache key: a fingerprint of the generator's and encoder's files, their provider, and
  // the avatar's manifest, crop rects and frame files.
  static std::string key(const avatar::Avatar& avatar, const infer::Models& models);
  // The cache entry's file in `cache_dir`.
  static std::filesystem::path cache_file(const std::filesystem::path& cache_dir,
                                          const std::string& key);

  // Template frame t's idle frame (the whole frame): its silent face composited as `blend` says.
  void idle_frame(int template_frame, const render::BlendOptions& blend, cv::Mat& dst) const;
  // Template frame t's silent face at its crop's size (CV_8UC3).
  const cv::Mat& face(int template_frame) const { return faces_.at(template_frame); }

  const std::shared_ptr<const avatar::Avatar>& avatar() const { return avatar_; }
  bool from_cache() const { return from_cache_; }
  // Empty, or what went wrong with the cache entry (damaged and recomputed, not written).
  const std::string& cache_note() const { return cache_note_; }
  double build_ms() const { return build_ms_; }  // 0 when read from the cache
  std::size_t bytes() const;

 private:
  SilenceIdle() = default;
  // Fills faces_ from `file`; false (faces_ empty) when it is missing, damaged or not this key's.
  bool read(const std::filesystem::path& file);
  std::vector<std::byte> serialise() const;

  std::shared_ptr<const avatar::Avatar> avatar_;
  std::string key_;
  std::vector<cv::Mat> faces_;
  bool from_cache_ = false;
  double build_ms_ = 0;
  std::string cache_note_;
};

// The generator's audio input for a frame whose 16 feature rows are all silence ([32][16][16]),
// through the same mel, windows, encoder and feature layout as any clip.
std::vector<float> silence_frame_audio(const infer::AudioEncoder& encoder);

}  // namespace lipsync::pipeline
