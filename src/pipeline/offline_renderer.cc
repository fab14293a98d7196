#include "pipeline/offline_renderer.h"

#include <algorithm>
#include <exception>
#include <optional>

#include "audio/video_frames.h"
#include "core/error.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "core/task_arena.h"
#include "core/thread_budget.h"
#include "core/worker_pool.h"

namespace lipsync::pipeline {
namespace {

// Audio read from the source at a time: one second, the piece the producer's track takes.
constexpr std::size_t kReadSamples = audio::kSampleRateHz;

// The renderer's side of the producer: reads audio when asked, writes frames to the sink in
// order, and tells render() when it is over.
class RenderConsumer final : public FrameConsumer {
 public:
  RenderConsumer(FrameSink& sink, const std::function<std::vector<float>(std::size_t)>& read,
                 const std::function<void(int, int)>& progress, int expected_frames)
      : sink_(sink), read_(read), progress_(progress), expected_frames_(expected_frames) {}

  void attach(std::weak_ptr<FrameProducer> producer) { producer_ = std::move(producer); }

  void on_audio_wanted() override {
    auto producer = producer_.lock();
    if (!producer) return;
    try {
      std::vector<float> piece = read_(kReadSamples);
      audio_samples_ += static_cast<std::int64_t>(piece.size());
      if (piece.empty()) {
        producer->end_audio();
        return;
      }
      {
        core::MutexLock lock(sink_mutex_);
        sink_.add_audio(piece);
      }
      producer->append_audio(std::move(piece));
    } catch (...) {  // the file went bad: stop everything
      producer->cancel();
      end(std::current_exception());
    }
  }

  void on_frame(ProducedFrame frame) override {
    int done = 0;
    {
      core::MutexLock lock(sink_mutex_);
      core::Stopwatch sw;
      sink_.write(frame.index, frame.image, std::move(frame.encoded));
      write_ms_ += sw.elapsed_ms();
      done = ++frames_;
    }
    auto producer = producer_.lock();
    if (producer) producer->release(1);
    if (progress_) {
      const int total = producer && producer->total_frames() >= 0
                            ? producer->total_frames()
                            : std::max(expected_frames_, done);
      progress_(done, total);
    }
  }

  void on_finished() override { end(nullptr); }
  void on_failed(const Error& error) override { end(std::make_exception_ptr(error)); }

  // Waits for the end; rethrows the first failure.
  void wait() {
    core::MutexLock lock(end_mutex_);
    ended_cv_.wait(lock, [&]() LIPSYNC_REQUIRES(end_mutex_) { return ended_; });
    if (error_) std::rethrow_exception(error_);
  }
  int frames() const {
    core::MutexLock lock(sink_mutex_);
    return frames_;
  }
  std::int64_t audio_samples() const { return audio_samples_; }
  double write_ms() const {
    core::MutexLock lock(sink_mutex_);
    return write_ms_;
  }

 private:
  void end(std::exception_ptr error) {
    core::MutexLock lock(end_mutex_);
    if (ended_) return;
    ended_ = true;
    error_ = std::move(error);
    ended_cv_.notify_all();
  }

  FrameSink& sink_;
  const std::function<std::vector<float>(std::size_t)>& read_;
  const std::function<void(int, int)>& progress_;
  const int expected_frames_;
  std::weak_ptr<FrameProducer> producer_;
  std::int64_t audio_samples_ = 0;  // read on the producer's strand only
  mutable core::Mutex sink_mutex_;
  int frames_ LIPSYNC_GUARDED_BY(sink_mutex_) = 0;
  double write_ms_ LIPSYNC_GUARDED_BY(sink_mutex_) = 0;
  core::Mutex end_mutex_;
  core::CondVar ended_cv_;
  bool ended_ LIPSYNC_GUARDED_BY(end_mutex_) = false;
  std::exception_ptr error_ LIPSYNC_GUARDED_BY(end_mutex_);
};

}  // namespace

const core::ConfigTable<RenderOptions>& RenderOptions::config() {
  static const auto table = core::ConfigTable<RenderOptions>("render").integer(
      "batch", &RenderOptions::batch, 0, 256,
      "generator frames per run in `lipsync render` (--batch); 0 = 32 on a GPU provider, "
      "else 1 when `infer.parallel_runs` is above 1, else 4");
  return table;
}

void RenderOptions::validate() const {
  config().validate(*this);
  require_in_range("pipeline.window_frames", window_frames, 1, 1024);
  if (start_frame < 0) {
    throw Error::invalid_input("start frame " + std::to_string(start_frame) +
                               " is negative; expected 0 or more");
  }
  audio.validate();
}

OfflineRenderer::OfflineRenderer(std::shared_ptr<const avatar::Avatar> avatar,
                                 const infer::Models& models, RenderOptions options)
    : avatar_(std::move(avatar)), models_(&models), options_(std::move(options)) {
  options_.validate();
  if (options_.batch == 0) {
    const bool gpu = models.generator().session().providers().front() != "cpu";
    options_.batch = gpu ? kGpuMaxBatch : models.generator().parallel_runs() > 1 ? 1 : 4;
  }
  if (options_.start_frame >= avatar_->frame_count()) {
    throw Error::invalid_input("start frame " + std::to_string(options_.start_frame) +
                               " is out of range; the avatar has " +
                               std::to_string(avatar_->frame_count()) + " frames (0 to " +
                               std::to_string(avatar_->frame_count() - 1) + ")");
  }
}

RenderStats OfflineRenderer::render(std::span<const float> samples, FrameSink& sink,
                                    const std::function<void(int, int)>& progress) const {
  audio::validate_samples(samples, "audio");
  (void)audio::clip_frames_for_samples(samples.size());  // too short: fail before anything starts
  if (samples.size() >
      static_cast<std::size_t>(audio::samples_for_seconds(options_.audio.max_seconds))) {
    throw Error::invalid_input("audio: longer than audio.max_seconds (" +
                               std::to_string(options_.audio.max_seconds) + " s)");
  }
  std::size_t pos = 0;
  const Reader read = [&](std::size_t n) {
    const std::size_t take = std::min(n, samples.size() - pos);
    std::vector<float> piece(samples.begin() + static_cast<std::ptrdiff_t>(pos),
                             samples.begin() + static_cast<std::ptrdiff_t>(pos + take));
    pos += take;
    return piece;
  };
  return render_from(read, static_cast<std::int64_t>(samples.size()), sink, progress);
}

RenderStats OfflineRenderer::render(audio::AudioFileReader& audio, FrameSink& sink,
                                    const std::function<void(int, int)>& progress) const {
  const Reader read = [&](std::size_t n) { return audio.read(n); };
  return render_from(read, audio.expected_samples(), sink, progress);
}

RenderStats OfflineRenderer::render_from(const Reader& read,
                                         std::optional<std::int64_t> expected_samples,
                                         FrameSink& sink,
                                         const std::function<void(int, int)>& progress) const {
  const core::Stopwatch clock;
  int expected_frames = 0;
  if (expected_samples && *expected_samples >= audio::kMinSamples) {
    expected_frames = audio::clip_frames_for_samples(static_cast<std::size_t>(*expected_samples));
  }
  RenderStats stats;
  core::Mutex stats_mutex;
  const SinkFormat format = sink.format();
  ProducerSettings settings;
  settings.walk_start = options_.start_frame;
  settings.encoding = format.encoding;
  settings.jpeg_quality = format.jpeg_quality;
  settings.blend = options_.blend;
  settings.keep_image = format.needs_image;
  settings.window_frames = options_.window_frames;
  settings.audio = options_.audio;
  settings.observe = [&](std::string_view stage, double ms) {
    core::MutexLock lock(stats_mutex);
    if (stage == "composite") {
      stats.composite_ms += ms;
    } else if (stage == "encode") {
      stats.encode_ms += ms;
    } else {
      stats.features_ms += ms;  // mel, windows, encoder
    }
  };

  // Declared in this order so that they go in reverse: nothing of the producer's outlives the
  // scheduler and workers it uses, and those are stopped explicitly below.
  std::optional<render::JpegSpliceCache> splices;
  if (format.encoding == FrameEncoding::kJpeg && !format.needs_image &&
      avatar_->jpeg_cache_bytes() > 0) {
    splices.emplace(avatar_, avatar_->jpeg_cache_bytes());
  }
  core::WorkerPool workers(core::thread_budget());
  Scheduler scheduler(models_->generator(), SchedulerOptions{options_.batch, 0});
  auto consumer = std::make_shared<RenderConsumer>(sink, read, progress, expected_frames);
  auto producer = FrameProducer::streaming(FrameTarget{avatar_, &models_->encoder(), &scheduler,
                                                       &workers, splices ? &*splices : nullptr},
                                           settings, consumer);
  consumer->attach(producer);
  producer->start();
  try {
    consumer->wait();
  } catch (...) {
    producer->cancel();
    scheduler.stop();
    throw;
  }
  scheduler.stop();
  sink.finish();
  const SchedulerStats s = scheduler.stats();
  core::MutexLock lock(stats_mutex);
  stats.frames = consumer->frames();
  stats.audio_samples = consumer->audio_samples();
  stats.prepare_ms = s.prepare_ms;
  stats.generator_ms = s.generator_ms;
  stats.write_ms = consumer->write_ms();
  stats.seconds = clock.elapsed_ms() / 1000.0;
  return stats;
}

}  // namespace lipsync::pipeline
