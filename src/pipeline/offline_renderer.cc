#include "pipeline/offline_renderer.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "avatar/template_walk.h"
#include "core/bounded_queue.h"
#include "core/error.h"
#include "core/stopwatch.h"
#include "core/task_arena.h"
#include "pipeline/feature_track.h"
#include "render/compositor.h"

namespace lipsync::pipeline {
namespace {

struct Job {
  int first = 0;               // output frame index of item 0
  std::vector<int> templates;  // template frame per item
  infer::GeneratorBatch batch;
};

// The first exception of any stage; closing the queues stops the others.
class Failure {
 public:
  void set(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(e);
  }
  void rethrow() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace

void RenderOptions::validate() const {
  require_in_range("render.batch", batch, 1, 256);
  require_in_range("render.queue_batches", queue_batches, 1, 64);
  require_in_range("audio_chunk_samples", audio_chunk_samples, 1, 1 << 24);
  if (start_frame < 0) {
    throw Error::invalid_input("start frame " + std::to_string(start_frame) +
                               " is negative; expected 0 or more");
  }
  audio.validate();
}

int frames_for_samples(std::size_t samples) {
  if (samples < static_cast<std::size_t>(audio::kMinSamples)) {
    throw Error::invalid_input("audio: " + std::to_string(samples) +
                               " samples is too short; at least " +
                               std::to_string(audio::kMinSamples) + " (0.1875 s) are needed");
  }
  const int mel_frames = audio::MelSpectrogram::frames_for_samples(samples);
  return audio::MelWindows::count_for_frames(mel_frames) + 2;
}

OfflineRenderer::OfflineRenderer(std::shared_ptr<const avatar::Avatar> avatar,
                                 const infer::Models& models, RenderOptions options)
    : avatar_(std::move(avatar)), models_(&models), options_(std::move(options)) {
  options_.validate();
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
  const int total = frames_for_samples(samples.size());
  const int n_templates = avatar_->frame_count();
  const infer::Generator& generator = models_->generator();
  const core::TaskArena& arena = core::TaskArena::global();

  core::BoundedQueue<Job> prepared(static_cast<std::size_t>(options_.queue_batches));
  core::BoundedQueue<Job> generated(static_cast<std::size_t>(options_.queue_batches));
  Failure failure;
  RenderStats stats;
  std::mutex stats_mutex;
  auto add = [&](double RenderStats::*field, double ms) {
    std::lock_guard lock(stats_mutex);
    stats.*field += ms;
  };
  const core::Stopwatch clock;

  // Stage 1: features and generator inputs.
  std::thread prepare([&] {
    try {
      FeatureTrack track(models_->encoder(), options_.audio);
      std::size_t fed = 0;
      for (int first = 0; first < total; first += options_.batch) {
        const int count = std::min(options_.batch, total - first);
        core::Stopwatch sw;
        while (track.ready_frames() < first + count) {
          if (fed == samples.size()) {
            track.finish();
            break;
          }
          const std::size_t n = std::min(samples.size() - fed,
                                         static_cast<std::size_t>(options_.audio_chunk_samples));
          track.append(samples.subspan(fed, n));
          fed += n;
        }
        Job job;
        job.first = first;
        job.batch = generator.make_batch(count);
        for (int i = 0; i < count; ++i) {
          job.templates.push_back(
              avatar::template_frame_for(first + i, n_templates, options_.start_frame));
          track.frame_audio(first + i, job.batch.audio(i));
        }
        track.release_before(first + count);
        add(&RenderStats::features_ms, sw.elapsed_ms());
        core::Stopwatch roi;
        arena.parallel_for(static_cast<std::size_t>(count), 1, [&](std::size_t b, std::size_t e) {
          for (std::size_t i = b; i < e; ++i) {
            avatar_->pack_generator_input(job.templates[i], job.batch.image(static_cast<int>(i)));
          }
        });
        add(&RenderStats::roi_ms, roi.elapsed_ms());
        if (!prepared.push(std::move(job))) return;
      }
    } catch (...) {
      failure.set(std::current_exception());
      generated.close();
    }
    prepared.close();
  });

  // Stage 3: composite, encode, write in order.
  std::thread output([&] {
    try {
      int done = 0;
      std::vector<cv::Mat> frames;  // pooled frame buffers, reused batch after batch
      std::vector<std::vector<std::uint8_t>> encoded;
      while (auto job = generated.pop()) {
        const int count = job->batch.size();
        frames.resize(static_cast<std::size_t>(std::max<std::size_t>(frames.size(), count)));
        encoded.assign(static_cast<std::size_t>(count), {});
        std::vector<double> composite_ms(count, 0.0), encode_ms(count, 0.0);
        arena.parallel_for(static_cast<std::size_t>(count), 1, [&](std::size_t b, std::size_t e) {
          for (std::size_t i = b; i < e; ++i) {
            const int t = job->templates[i];
            core::Stopwatch sw;
            render::composite(*avatar_, t, job->batch.output(static_cast<int>(i)), frames[i]);
            composite_ms[i] = sw.elapsed_ms();
            core::Stopwatch enc;
            encoded[i] = sink.encode(frames[i]);
            encode_ms[i] = enc.elapsed_ms();
          }
        });
        for (int i = 0; i < count; ++i) {
          add(&RenderStats::composite_ms, composite_ms[i]);
          add(&RenderStats::encode_ms, encode_ms[i]);
        }
        core::Stopwatch write;
        for (int i = 0; i < count; ++i)
          sink.write(job->first + i, frames[i], std::move(encoded[i]));
        add(&RenderStats::write_ms, write.elapsed_ms());
        done += count;
        if (progress) progress(done, total);
      }
    } catch (...) {
      failure.set(std::current_exception());
      prepared.close();
    }
    generated.close();
  });

  // Stage 2, on this thread: the generator.
  try {
    while (auto job = prepared.pop()) {
      core::Stopwatch sw;
      generator.run(job->batch);
      add(&RenderStats::generator_ms, sw.elapsed_ms());
      if (!generated.push(std::move(*job))) break;
    }
  } catch (...) {
    failure.set(std::current_exception());
    prepared.close();
  }
  generated.close();
  prepare.join();
  output.join();
  failure.rethrow();
  sink.finish();
  stats.frames = total;
  stats.seconds = clock.elapsed_ms() / 1000.0;
  return stats;
}

}  // namespace lipsync::pipeline
