// FrameProducer: the one per-frame chain of lipsync. It turns "frames 0..n-1 of an audio track on
// template frames t(0)..t(n-1)" into ordered, composited (and optionally encoded) frames:
//
//   audio -> FeatureTrack (on the producer's strand) -> frame jobs to the model's Scheduler
//   -> fill: ROI + audio tensor written straight into the generator batch (scheduler threads)
//   -> composite from the batch's own output buffer, encode (request workers)
//   -> the consumer, strictly in frame order.
//
// Flow control: at most `window_frames` frames are in flight, from submission until the
// consumer calls release() (a gRPC write completed, a sink wrote the frame). While the window is
// full the producer takes no more audio from its pending buffer and does not ask for more
// (on_audio_wanted), so a fast client is slowed down by its own transport, and a client that
// never reads costs at most a window of frames. Audio is fed to the track one second at a time,
// so a huge chunk costs no more features than the window needs.
//
// Every front end (`lipsync render`, InferBatchComposite, Stream, live sessions) drives one of
// these; none touches ROIs, generator batches or the compositor itself.
//
// Thread contract: every public method may be called from any thread. Consumer callbacks come
// from the producer's strand and the workers; on_frame calls are serialised and in order.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "audio/audio_options.h"
#include "avatar/avatar.h"
#include "core/config_table.h"
#include "core/error.h"
#include "core/mutex.h"
#include "core/strand.h"
#include "core/worker_pool.h"
#include "infer/audio_encoder.h"
#include "pipeline/feature_track.h"
#include "pipeline/scheduler.h"
#include "render/color_track.h"
#include "render/jpeg_splice.h"
#include "render/output_options.h"

namespace lipsync::pipeline {

// The `pipeline.*` config keys.
struct PipelineOptions {
  // Config key pipeline.window_frames: frames one stream, request or render has in flight, from
  // submission until its consumer is done with them (1..1024). Three batches of 8 keep the
  // generator busy for one stream; memory per stream is at most this many frames.
  int window_frames = 24;
  void validate() const;
  static const core::ConfigTable<PipelineOptions>& config();
};

enum class FrameEncoding { kNone, kJpeg, kPng };

// A composited frame of template frame `template_frame` in `encoding` (kJpeg or kPng): PNG, or a
// JPEG spliced into that template frame's when `splices` is given (render/jpeg_splice.h), else
// a whole one. The one encoder of produced frames and of a live session's own pictures.
std::vector<std::uint8_t> encode_frame(const cv::Mat& image, FrameEncoding encoding,
                                       int jpeg_quality, render::JpegSpliceCache* splices,
                                       int template_frame);

// What one producer makes.
struct ProducerSettings {
  // Template frame of output frame i: avatar::template_frame_for(walk_offset + i, n, walk_start).
  // A stream sets walk_start (its start frame); InferBatchComposite sets walk_offset
  // (start_frame_idx).
  int walk_start = 0;
  int walk_offset = 0;
  // Produce only frames [0, frame_limit) (-1: every frame the audio gives).
  int frame_limit = -1;
  FrameEncoding encoding = FrameEncoding::kNone;
  int jpeg_quality = 75;
  // How each face goes back into its frame (render.blend, render.color_match). With ring, frame
  // i waits to be composited until the colour statistics of the frames before it in its
  // window are known (render::ColorTrack), so the pictures do not depend on batching.
  render::BlendOptions blend;
  // Deliver the composited image (BGR); when false only the encoded bytes are kept.
  bool keep_image = true;
  int window_frames = PipelineOptions{}.window_frames;
  audio::AudioOptions audio;
  // Optional generator images for frames [0, frame_limit): [n][6][320][320] float32 (client
  // ROIs of the old API). Without them the avatar's own ROIs are used.
  std::shared_ptr<const std::string> images;
  // Optional stage timings: "mel", "windows", "encoder", "composite", "encode" (milliseconds).
  std::function<void(std::string_view stage, double ms)> observe;
  // Optional: when frame i is needed (its tick, for a live session); the scheduler runs jobs
  // with a deadline first, earliest first, and skips those it cannot make in time (they are
  // delivered with ProducedFrame::skipped).
  std::function<std::optional<SteadyTime>(int frame)> deadline;
  // With deadlines: when the speech run these frames belong to began (batch_policy.h,
  // seniority); the epoch: senior to every run.
  SteadyTime since{};
  // Deliver each frame's generator output too (ProducedFrame::batch and slot), for a live
  // session's fade after an interrupt. It holds the batch's output buffer while kept.
  bool keep_output = false;
  // Optional, for a streaming producer: where its audio is, instead of append_audio (a live
  // session's utterance, so that its samples are kept in one place). The producer reads its next
  // samples, from input sample `from` on, into `out` as its window has room (on its strand),
  // and reads again after audio_available(). Returns how many it wrote (validated samples) and
  // sets `ended` once none will follow them.
  std::function<std::size_t(std::int64_t from, std::span<float> out, bool& ended)> source;
  // Optional: the strand to run on (a live session's own, so that the session's work and its
  // producers' are one sequence); by default the producer has its own.
  std::shared_ptr<core::Strand> strand;
};

// Where a producer's frames come from. All borrowed but `avatar`: the front end keeps the
// encoder and scheduler alive (a registry lease) until the producer finished, failed or was
// cancelled; after that the producer only drops what the scheduler still hands back.
struct FrameTarget {
  std::shared_ptr<const avatar::Avatar> avatar;
  const infer::AudioEncoder* encoder = nullptr;
  Scheduler* scheduler = nullptr;
  core::WorkerPool* workers = nullptr;  // compositing, encoding and the strand
  // The avatar's JPEG frames to splice into (null: every frame is encoded whole).
  render::JpegSpliceCache* jpeg_splices = nullptr;

  // jpeg_splices when it is this avatar's, else null.
  render::JpegSpliceCache* splices() const {
    return jpeg_splices != nullptr && jpeg_splices->avatar() == avatar ? jpeg_splices : nullptr;
  }
};

struct ProducedFrame {
  int index = 0;
  int template_frame = 0;
  cv::Mat image;                      // composited BGR (empty unless keep_image)
  std::vector<std::uint8_t> encoded;  // JPEG/PNG bytes (empty for kNone)
  // With keep_output: the generator output [3][320][320] is batch->output(slot).
  std::shared_ptr<const infer::GeneratorBatch> batch;
  int slot = 0;
  // Not made: its deadline would have passed first (Scheduler: skipped). No image, no bytes;
  // it still comes in order and holds its window slot until released.
  bool skipped = false;
};

// Receives a producer's frames. Implemented by each front end.
class FrameConsumer {
 public:
  virtual ~FrameConsumer() = default;
  // The next frame in order. It holds one window slot until release() is called for it.
  virtual void on_frame(ProducedFrame frame) = 0;
  // Every audio sample handed in so far is in the track and the window has room: hand in more
  // (append_audio) or end it (end_audio). Called once per such moment.
  virtual void on_audio_wanted() {}
  // The last frame was delivered.
  virtual void on_finished() = 0;
  // The producer failed (bad audio, a generator error, the scheduler stopped); no more frames
  // come. Not called after cancel().
  virtual void on_failed(const Error& error) = 0;
};

class FrameProducer final : public BatchClient, public std::enable_shared_from_this<FrameProducer> {
 public:
  // A producer fed with streaming audio (append_audio, end_audio). The consumer is held weakly.
  static std::shared_ptr<FrameProducer> streaming(FrameTarget target, ProducerSettings settings,
                                                  std::weak_ptr<FrameConsumer> consumer);
  // A producer of a whole clip whose features are known; it starts at once.
  static std::shared_ptr<FrameProducer> from_clip(FrameTarget target, ProducerSettings settings,
                                                  ClipFeatures features,
                                                  std::weak_ptr<FrameConsumer> consumer);
  ~FrameProducer() override;

  // Starts asking for audio (a streaming producer) or submitting frames (a clip).
  void start();
  // The next 16 kHz samples (any count, NaN/inf refused). Fails the producer with kInvalidInput
  // when the audio passes audio.max_seconds.
  void append_audio(std::vector<float> samples);
  // No more audio: the track is finished with the end-of-clip rules (too short: on_failed).
  void end_audio();
  // With a source: it has more samples (or has ended); the producer reads them when it has room.
  void audio_available();
  // The consumer is done with `frames` delivered frames: their window slots are free.
  void release(int frames = 1);
  // Drops every queued job at once and stops all work; no callback follows (an on_frame running
  // now completes).
  void cancel();

  // Frames the audio gives (capped by frame_limit), once known; -1 before.
  int total_frames() const;
  int delivered_frames() const;
  int in_flight() const;

  // BatchClient (called by the scheduler).
  void fill(std::int64_t tag, std::span<float> image, std::span<float> audio) override;
  void done(std::int64_t tag, std::shared_ptr<const infer::GeneratorBatch> batch,
            int slot) override;
  void failed(std::int64_t tag, const Error& error) override;
  void skipped(std::int64_t tag) override;

 private:
  FrameProducer(FrameTarget target, ProducerSettings settings,
                std::weak_ptr<FrameConsumer> consumer);
  struct Pending;  // a frame submitted and not yet delivered

  void pump();  // on the strand
  bool submit_ready();
  void feed_track();
  // With a source: reads its next samples into the track; false when it has none yet.
  bool pull_track();
  void report_track_timings();
  void composite_and_deliver(int index, std::shared_ptr<const infer::GeneratorBatch> batch,
                             int slot);
  // With ring: the face made and measured, parked until its correction is known.
  void park(int index, std::shared_ptr<const infer::GeneratorBatch> batch, int slot);
  // Composites, encodes and delivers the parked frames whose corrections are known.
  void finish_parked(const std::vector<render::ColorTrack::Ready>& ready);
  // Frame `index` composited by `compose` (template frame, the image to write), encoded and
  // delivered; `batch` (its generator output) kept in it with keep_output, else let go before
  // delivery. `measured_ms`: compositing time already spent on it.
  void finish_frame(int index, const std::function<void(int, cv::Mat&)>& compose,
                    std::shared_ptr<const infer::GeneratorBatch> batch, int slot,
                    double measured_ms);
  void keep_or_release(ProducedFrame& frame, std::shared_ptr<const infer::GeneratorBatch> batch,
                       int slot) const;
  // The JPEG splices frames are encoded with: the target's, for JPEG frames.
  render::JpegSpliceCache* splices() const;
  // In a catch block: fails the producer with the error compositing frame `index` threw
  // (anything but an Error is internal).
  void fail_compositing(int index);
  void deliver(ProducedFrame frame);
  void deliver_ready();
  void fail(const Error& error);
  // Stops the producer and drops its queued jobs; false when it had stopped already.
  bool halt();
  void observe(std::string_view stage, double ms) const;
  int template_for(int frame) const;

  const FrameTarget target_;
  const ProducerSettings settings_;
  const std::weak_ptr<FrameConsumer> consumer_;
  const std::shared_ptr<core::Strand> strand_;
  const bool own_strand_;  // closed when the producer stops (a shared one is not)

  // Touched only on the strand.
  std::optional<FeatureTrack> track_;
  std::vector<float> pending_audio_;  // handed in, not yet in the track (append_audio)
  std::vector<float> chunk_;          // the source's next samples (source)
  std::size_t pending_used_ = 0;
  bool audio_ended_ = false;
  bool audio_wanted_ = false;  // on_audio_wanted was called and no audio came since
  std::int64_t audio_samples_ = 0;
  int next_submit_ = 0;

  // With ring (render.color_match): the stream's colour corrections.
  const std::unique_ptr<render::ColorTrack> colors_;
  struct Parked {
    cv::Mat face;
    std::shared_ptr<const infer::GeneratorBatch> batch;  // with keep_output
    int slot = 0;
    double composite_ms = 0;
  };

  mutable core::Mutex mutex_;
  std::map<int, Parked> parked_
      LIPSYNC_GUARDED_BY(mutex_);  // made and measured, waiting for their correction
  std::map<int, std::shared_ptr<const FrameAudioRows>> rows_
      LIPSYNC_GUARDED_BY(mutex_);  // by frame
  std::map<int, ProducedFrame> ready_
      LIPSYNC_GUARDED_BY(mutex_);  // composited, waiting for their turn
  int submitted_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  int released_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  int next_deliver_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  int total_ LIPSYNC_GUARDED_BY(mutex_) = -1;
  bool delivering_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool waiting_for_room_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool stopped_ LIPSYNC_GUARDED_BY(mutex_) = false;  // failed, cancelled or finished
};

}  // namespace lipsync::pipeline
