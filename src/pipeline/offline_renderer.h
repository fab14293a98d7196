// OfflineRenderer: audio in, lip-synced frames out (the `lipsync render` job). A bounded,
// overlapped pipeline of three stages on their own threads:
//   prepare   features (a streaming FeatureTrack over the audio) + per-frame audio tensors +
//             generator images from the avatar's cached ROIs, into a pooled GeneratorBatch;
//   generate  the generator, batch after batch, never waiting for earlier frames' output work;
//   output    composite (and encode, for image sinks) each frame of a batch on the task arena,
//             then hand the frames to the sink in order.
// At most `queue_batches` batches wait between stages, so memory stays flat however long the
// audio. The frames are those of the reference pipeline (REFERENCE.md §4-§6), in order.
// Thread contract: render() may be called from one thread at a time per renderer; the avatar and
// models are shared read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <span>
#include <vector>

#include "audio/audio_options.h"
#include "avatar/avatar.h"
#include "infer/models.h"

namespace lipsync::pipeline {

// Where rendered frames go. encode() may run on several threads at once (one call per frame);
// write() is called once per frame, in frame order, from one thread.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Per-frame work that can run in parallel (image encoding); the default does nothing.
  virtual std::vector<std::uint8_t> encode(const cv::Mat& /*frame*/) const { return {}; }
  virtual void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> encoded) = 0;
  // After the last frame; makes the output visible (renames, trailers).
  virtual void finish() = 0;
};

struct RenderOptions {
  int batch = 4;                    // config key render.batch: generator frames per run (1..256)
  int start_frame = 0;              // template frame the walk starts from (0..n-1)
  int queue_batches = 2;            // batches in flight between two stages (1..64)
  int audio_chunk_samples = 16000;  // audio fed to the feature track at a time
  audio::AudioOptions audio;
  // Throws Error::Code::kInvalidInput naming the key.
  void validate() const;
};

// Times per stage, summed over the frames (milliseconds), for `lipsync bench render`.
struct RenderStats {
  int frames = 0;
  double seconds = 0;
  double features_ms = 0;  // mel + encoder + per-frame audio tensors
  double roi_ms = 0;       // generator images from the ROI cache
  double generator_ms = 0;
  double composite_ms = 0;
  double encode_ms = 0;  // FrameSink::encode
  double write_ms = 0;   // FrameSink::write (the MP4 encoder runs here)
};

// Number of video frames the clip gives: L + 2 (REFERENCE.md §3-§4). Throws kInvalidInput for
// fewer than 3000 samples.
int frames_for_samples(std::size_t samples);

class OfflineRenderer {
 public:
  // Borrowed: the models must outlive the renderer.
  OfflineRenderer(std::shared_ptr<const avatar::Avatar> avatar, const infer::Models& models,
                  RenderOptions options);

  // Renders every frame of `samples` (16 kHz mono) into the sink, then calls sink.finish().
  // `progress(done, total)` is called after each batch. Exceptions from any stage stop the
  // others and propagate here (the sink is then not finished).
  RenderStats render(std::span<const float> samples, FrameSink& sink,
                     const std::function<void(int, int)>& progress = {}) const;

 private:
  std::shared_ptr<const avatar::Avatar> avatar_;
  const infer::Models* models_;
  RenderOptions options_;
};

}  // namespace lipsync::pipeline
