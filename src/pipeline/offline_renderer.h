// OfflineRenderer: audio in, lip-synced frames out (the `lipsync render` job), as fast as the
// generator and the sink allow. It drives one FrameProducer through a Scheduler of its own over
// the models (batches of render.batch frames): the audio is read in pieces as the producer asks
// for it (a file never sits in memory whole), frames come back in order and go to the sink, and
// at most pipeline.window_frames frames are in flight, so memory stays flat however long the
// audio. The frames are those of the reference pipeline (REFERENCE.md §4-§6), in order.
// Thread contract: render() may be called from one thread at a time per renderer; the avatar and
// models are shared read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <span>
#include <vector>

#include "audio/audio_file.h"
#include "audio/audio_options.h"
#include "avatar/avatar.h"
#include "core/config_table.h"
#include "infer/models.h"
#include "pipeline/frame_producer.h"

namespace lipsync::pipeline {

// What a sink wants the producer to do for it, in parallel, before write().
struct SinkFormat {
  FrameEncoding encoding = FrameEncoding::kNone;
  int jpeg_quality = 75;
  bool needs_image = true;  // write() reads `frame`; when false only `encoded` is filled
};

// Where rendered frames go. write() is called once per frame, in frame order, one call at a time
// (from the renderer's worker threads); add_audio() and write() never run at once.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual SinkFormat format() const { return {}; }
  // The next 16 kHz samples of the audio, as they are read (ahead of the frames they belong to).
  virtual void add_audio(std::span<const float> /*samples*/) {}
  virtual void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> encoded) = 0;
  // After the last frame; makes the output visible (renames, trailers).
  virtual void finish() = 0;
};

struct RenderOptions {
  // Config key render.batch: generator frames per run (0..256; 0: automatic: kGpuMaxBatch when the
  // generator runs on a GPU provider; on the CPU 1 when the generator makes several runs at once,
  // one frame each stays in its core's cache, else 4).
  int batch = 0;
  int start_frame = 0;  // template frame the walk starts from (0..n-1; not a config key)
  int window_frames = PipelineOptions{}.window_frames;  // pipeline.window_frames
  audio::AudioOptions audio;
  render::BlendOptions blend;  // render.blend, render.color_match, ... (render::OutputOptions)
  // Throws Error::Code::kInvalidInput naming the key.
  void validate() const;
  // The render.batch key (its section is shared with render::OutputOptions).
  static const core::ConfigTable<RenderOptions>& config();
};

// Times per stage, summed over the frames (milliseconds), for `lipsync bench render`.
struct RenderStats {
  int frames = 0;
  std::int64_t audio_samples = 0;  // 16 kHz samples read
  double seconds = 0;
  double features_ms = 0;  // mel + windows + encoder
  double prepare_ms = 0;   // generator inputs: ROIs and audio tensors written into the batches
  double generator_ms = 0;
  double composite_ms = 0;
  double encode_ms = 0;  // JPEG/PNG for image sinks
  double write_ms = 0;   // FrameSink::write (the MP4 encoder runs here)
};

class OfflineRenderer {
 public:
  // Borrowed: the models must outlive the renderer. Throws Error::Code::kInvalidInput for bad
  // options or a start frame outside the avatar.
  OfflineRenderer(std::shared_ptr<const avatar::Avatar> avatar, const infer::Models& models,
                  RenderOptions options);

  // Renders every frame of `samples` (16 kHz mono) into the sink, then calls sink.finish().
  // `progress(done, total)` is called after each frame. Exceptions from any stage stop the
  // others and propagate here (the sink is then not finished).
  RenderStats render(std::span<const float> samples, FrameSink& sink,
                     const std::function<void(int, int)>& progress = {}) const;
  // The same, reading the audio from a file in pieces.
  RenderStats render(audio::AudioFileReader& audio, FrameSink& sink,
                     const std::function<void(int, int)>& progress = {}) const;

  // Generator frames per run: render.batch, resolved when it is 0.
  int batch() const { return options_.batch; }

 private:
  // Reads up to n samples; empty at the end.
  using Reader = std::function<std::vector<float>(std::size_t n)>;
  RenderStats render_from(const Reader& read, std::optional<std::int64_t> expected_samples,
                          FrameSink& sink, const std::function<void(int, int)>& progress) const;

  std::shared_ptr<const avatar::Avatar> avatar_;
  const infer::Models* models_;
  RenderOptions options_;
};

}  // namespace lipsync::pipeline
