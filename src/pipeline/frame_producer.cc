#include "pipeline/frame_producer.h"

#include <algorithm>
#include <cstring>

#include "audio/mel_spectrogram.h"
#include "audio/video_frames.h"
#include "avatar/template_walk.h"
#include "contract/model_family.h"
#include "core/check.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "render/compositor.h"
#include "render/image_encoder.h"

namespace lipsync::pipeline {
namespace {

// Audio handed to the feature track at a time: one second keeps the encoder's batches full
// without computing features far ahead of the window.
constexpr std::size_t kTrackChunkSamples = audio::kSampleRateHz;

}  // namespace

std::vector<std::uint8_t> encode_frame(const cv::Mat& image, FrameEncoding encoding,
                                       int jpeg_quality, render::JpegSpliceCache* splices,
                                       int template_frame) {
  LIPSYNC_CHECK(encoding != FrameEncoding::kNone);
  if (encoding == FrameEncoding::kPng) return render::encode_png(image);
  if (splices != nullptr) return splices->encode(template_frame, image, jpeg_quality);
  return render::encode_jpeg(image, jpeg_quality);
}

const core::ConfigTable<PipelineOptions>& PipelineOptions::config() {
  static const auto table =
      core::ConfigTable<PipelineOptions>("pipeline")
          .integer("window_frames", &PipelineOptions::window_frames, 1, 1024,
                   "frames one stream, request or render has in flight (flow control); memory "
                   "per stream is at most this many frames");
  return table;
}

void PipelineOptions::validate() const {
  config().validate(*this);
}

FrameProducer::FrameProducer(FrameTarget target, ProducerSettings settings,
                             std::weak_ptr<FrameConsumer> consumer)
    : target_(std::move(target)),
      settings_(std::move(settings)),
      consumer_(std::move(consumer)),
      strand_(settings_.strand ? settings_.strand
                               : std::make_shared<core::Strand>(*target_.workers)),
      own_strand_(!settings_.strand),
      colors_(settings_.blend.color_match
                  ? std::make_unique<render::ColorTrack>(settings_.blend.color_match_frames)
                  : nullptr) {
  LIPSYNC_CHECK(target_.avatar && target_.scheduler && target_.workers && target_.encoder);
  require_in_range("pipeline.window_frames", settings_.window_frames, 1, 1024);
  settings_.audio.validate();
  const int n = target_.avatar->frame_count();
  if (settings_.walk_start < 0 || settings_.walk_start >= n) {
    throw Error::invalid_input("start frame " + std::to_string(settings_.walk_start) +
                               " is out of range; the avatar has " + std::to_string(n) +
                               " frames (0 to " + std::to_string(n - 1) + ")");
  }
  if (settings_.walk_offset < 0) {
    throw Error::invalid_input("start frame index " + std::to_string(settings_.walk_offset) +
                               " is negative");
  }
  if (settings_.images) {
    LIPSYNC_CHECK(settings_.frame_limit >= 0);
    LIPSYNC_CHECK_EQ(settings_.images->size(), static_cast<std::size_t>(settings_.frame_limit) *
                                                   contract::kImageInputSize * sizeof(float));
  }
}

FrameProducer::~FrameProducer() = default;

std::shared_ptr<FrameProducer> FrameProducer::streaming(FrameTarget target,
                                                        ProducerSettings settings,
                                                        std::weak_ptr<FrameConsumer> consumer) {
  std::shared_ptr<FrameProducer> p(
      new FrameProducer(std::move(target), std::move(settings), std::move(consumer)));
  p->track_.emplace(*p->target_.encoder, p->settings_.audio);
  return p;
}

std::shared_ptr<FrameProducer> FrameProducer::from_clip(FrameTarget target,
                                                        ProducerSettings settings,
                                                        ClipFeatures features,
                                                        std::weak_ptr<FrameConsumer> consumer) {
  std::shared_ptr<FrameProducer> p(
      new FrameProducer(std::move(target), std::move(settings), std::move(consumer)));
  p->track_.emplace(FeatureTrack::from_features(std::move(features)));
  p->audio_ended_ = true;
  return p;
}

void FrameProducer::start() {
  strand_->post([self = shared_from_this()] { self->pump(); });
}

void FrameProducer::append_audio(std::vector<float> samples) {
  strand_->post([self = shared_from_this(), samples = std::move(samples)]() mutable {
    if (self->audio_ended_) return;
    try {
      // Empty pieces are fine (a chunk split inside a sample, a resampler still filling).
      if (!samples.empty()) audio::validate_samples(samples, "audio chunk");
      self->audio_samples_ += static_cast<std::int64_t>(samples.size());
      const int max_seconds = self->settings_.audio.max_seconds;
      if (self->audio_samples_ > audio::samples_for_seconds(max_seconds)) {
        throw Error::invalid_input("audio: longer than audio.max_seconds (" +
                                   std::to_string(max_seconds) + " s)");
      }
    } catch (const Error& e) {
      self->fail(e);
      return;
    }
    // Compact what the track has taken, then keep the new samples.
    auto& pending = self->pending_audio_;
    pending.erase(pending.begin(),
                  pending.begin() + static_cast<std::ptrdiff_t>(self->pending_used_));
    self->pending_used_ = 0;
    if (pending.empty()) {
      pending = std::move(samples);
    } else {
      pending.insert(pending.end(), samples.begin(), samples.end());
    }
    self->audio_wanted_ = false;
    self->pump();
  });
}

void FrameProducer::audio_available() {
  strand_->post([self = shared_from_this()] { self->pump(); });
}

void FrameProducer::end_audio() {
  strand_->post([self = shared_from_this()] {
    self->audio_ended_ = true;
    self->pump();
  });
}

void FrameProducer::release(int frames) {
  bool wake = false;
  {
    core::MutexLock lock(mutex_);
    released_ += frames;
    LIPSYNC_CHECK_LE(released_, next_deliver_);
    wake = waiting_for_room_ && !stopped_;
    waiting_for_room_ = false;
  }
  if (wake) strand_->post([self = shared_from_this()] { self->pump(); });
}

void FrameProducer::cancel() {
  (void)halt();
}

bool FrameProducer::halt() {
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return false;
    stopped_ = true;
    ready_.clear();
    parked_.clear();
    rows_.clear();
  }
  if (own_strand_) strand_->close();  // a shared strand's later tasks find it stopped
  target_.scheduler->cancel(this);
  return true;
}

int FrameProducer::total_frames() const {
  core::MutexLock lock(mutex_);
  return total_;
}

int FrameProducer::delivered_frames() const {
  core::MutexLock lock(mutex_);
  return next_deliver_;
}

int FrameProducer::in_flight() const {
  core::MutexLock lock(mutex_);
  return submitted_ - released_;
}

int FrameProducer::template_for(int frame) const {
  return avatar::template_frame_for(settings_.walk_offset + frame, target_.avatar->frame_count(),
                                    settings_.walk_start);
}

void FrameProducer::observe(std::string_view stage, double ms) const {
  if (settings_.observe) settings_.observe(stage, ms);
}

// The producer's loop, on its strand: submit what is ready and fits the window, else feed the
// track from the pending audio, else finish the track or ask for audio.
void FrameProducer::pump() {
  try {
    while (true) {
      {
        core::MutexLock lock(mutex_);
        if (stopped_) return;
        if (submitted_ - released_ >= settings_.window_frames) {
          waiting_for_room_ = true;
          return;
        }
      }
      if (submit_ready()) continue;
      if (total_frames() >= 0 && next_submit_ >= total_frames()) return;  // all submitted
      if (pending_used_ < pending_audio_.size()) {
        feed_track();
        continue;
      }
      if (settings_.source && !audio_ended_ && pull_track()) continue;
      if (audio_ended_) {
        if (!track_->finished()) track_->finish();
        report_track_timings();
        const int limit = settings_.frame_limit;
        const int total =
            limit >= 0 ? std::min(limit, track_->total_frames()) : track_->total_frames();
        {
          core::MutexLock lock(mutex_);
          total_ = total;
        }
        if (submit_ready()) continue;
        deliver_ready();  // everything may have been delivered already
        return;
      }
      if (!audio_wanted_) {
        audio_wanted_ = true;
        if (auto consumer = consumer_.lock()) consumer->on_audio_wanted();
      }
      return;
    }
  } catch (const Error& e) {
    fail(e);
  } catch (const std::exception& e) {
    fail(Error::internal(std::string("frame producer: ") + e.what()));
  }
}

void FrameProducer::feed_track() {
  const std::size_t n = std::min(kTrackChunkSamples, pending_audio_.size() - pending_used_);
  track_->append(std::span<const float>(pending_audio_).subspan(pending_used_, n));
  pending_used_ += n;
  if (pending_used_ == pending_audio_.size()) {
    pending_audio_.clear();
    pending_audio_.shrink_to_fit();
    pending_used_ = 0;
  }
  report_track_timings();
}

bool FrameProducer::pull_track() {
  chunk_.resize(kTrackChunkSamples);
  bool ended = false;
  const std::size_t n = settings_.source(audio_samples_, chunk_, ended);
  LIPSYNC_CHECK_LE(n, chunk_.size());
  if (n > 0) {
    audio_samples_ += static_cast<std::int64_t>(n);
    const int max_seconds = settings_.audio.max_seconds;
    if (audio_samples_ > audio::samples_for_seconds(max_seconds)) {
      throw Error::invalid_input("audio: longer than audio.max_seconds (" +
                                 std::to_string(max_seconds) + " s)");
    }
    track_->append(std::span<const float>(chunk_).first(n));
    audio_wanted_ = false;
    report_track_timings();
  }
  if (ended) {
    audio_ended_ = true;
    chunk_ = std::vector<float>();
  }
  return n > 0 || ended;
}

void FrameProducer::report_track_timings() {
  const ClipFeatureTimings t = track_->take_timings();
  if (t.mel_ms > 0) observe("mel", t.mel_ms);
  if (t.windows_ms > 0) observe("windows", t.windows_ms);
  if (t.encoder_ms > 0) observe("encoder", t.encoder_ms);
}

// Submits the frames that are ready and fit the window; false when none could be.
bool FrameProducer::submit_ready() {
  int ready = track_->ready_frames();
  if (settings_.frame_limit >= 0) ready = std::min(ready, settings_.frame_limit);
  int count = 0;
  {
    core::MutexLock lock(mutex_);
    const int room = settings_.window_frames - (submitted_ - released_);
    count = std::min(room, ready - next_submit_);
    if (count <= 0) return false;
  }
  const int first = next_submit_;
  auto rows = track_->frame_rows(first, count);
  std::vector<FrameJob> jobs;
  jobs.reserve(static_cast<std::size_t>(count));
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return false;
    for (int i = first; i < first + count; ++i) {
      rows_.emplace(i, rows);
      jobs.push_back({shared_from_this(), i,
                      settings_.deadline ? settings_.deadline(i) : std::nullopt, settings_.since});
    }
    submitted_ += count;
  }
  next_submit_ = first + count;
  track_->release_before(next_submit_);
  target_.scheduler->submit(std::move(jobs));
  return true;
}

void FrameProducer::fill(std::int64_t tag, std::span<float> image, std::span<float> audio) {
  const int frame = static_cast<int>(tag);
  std::shared_ptr<const FrameAudioRows> rows;
  {
    core::MutexLock lock(mutex_);
    const auto it = rows_.find(frame);
    if (it == rows_.end()) {  // cancelled meanwhile; the output will be dropped
      std::fill(audio.begin(), audio.end(), 0.0f);
      std::fill(image.begin(), image.end(), 0.0f);
      return;
    }
    rows = it->second;
  }
  rows->write(frame, audio);
  if (settings_.images) {
    std::memcpy(image.data(),
                settings_.images->data() + static_cast<std::size_t>(frame) * image.size_bytes(),
                image.size_bytes());
  } else {
    target_.avatar->pack_generator_input(template_for(frame), image);
  }
}

void FrameProducer::done(std::int64_t tag, std::shared_ptr<const infer::GeneratorBatch> batch,
                         int slot) {
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return;
    rows_.erase(static_cast<int>(tag));
  }
  target_.workers->post([self = shared_from_this(), tag, batch = std::move(batch), slot]() mutable {
    self->composite_and_deliver(static_cast<int>(tag), std::move(batch), slot);
  });
}

void FrameProducer::failed(std::int64_t, const Error& error) {
  fail(error);
}

void FrameProducer::skipped(std::int64_t tag) {
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return;
    rows_.erase(static_cast<int>(tag));
  }
  // Delivered from a worker: the frames after it that are ready go out with it, and their
  // consumer's work does not belong on the scheduler's thread.
  target_.workers->post([self = shared_from_this(), tag] {
    ProducedFrame frame;
    frame.index = static_cast<int>(tag);
    frame.template_frame = self->template_for(frame.index);
    frame.skipped = true;
    self->deliver(std::move(frame));
    if (self->colors_) self->finish_parked(self->colors_->skip(static_cast<int>(tag)));
  });
}

void FrameProducer::park(int index, std::shared_ptr<const infer::GeneratorBatch> batch, int slot) {
  const int t = template_for(index);
  Parked p;
  core::Stopwatch sw;
  render::make_face(*target_.avatar, t, batch->output(slot), p.face);
  const auto [generated, tmpl] = render::face_band_stats(*target_.avatar, t, p.face);
  p.composite_ms = sw.elapsed_ms();
  if (settings_.keep_output) {
    p.batch = std::move(batch);
    p.slot = slot;
  }
  batch.reset();
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return;
    parked_.emplace(index, std::move(p));
  }
  finish_parked(colors_->add(index, generated, tmpl));
}

void FrameProducer::finish_parked(const std::vector<render::ColorTrack::Ready>& ready) {
  for (const render::ColorTrack::Ready& r : ready) {
    Parked p;
    {
      core::MutexLock lock(mutex_);
      const auto it = parked_.find(r.frame);
      if (stopped_ || it == parked_.end()) return;
      p = std::move(it->second);
      parked_.erase(it);
    }
    try {
      finish_frame(
          r.frame,
          [&](int template_frame, cv::Mat& image) {
            render::composite_face(*target_.avatar, template_frame, p.face, settings_.blend,
                                   &r.correction, image);
          },
          std::move(p.batch), p.slot, p.composite_ms);
    } catch (...) {
      fail_compositing(r.frame);
      return;
    }
  }
}

void FrameProducer::finish_frame(int index, const std::function<void(int, cv::Mat&)>& compose,
                                 std::shared_ptr<const infer::GeneratorBatch> batch, int slot,
                                 double measured_ms) {
  ProducedFrame frame;
  frame.index = index;
  frame.template_frame = template_for(index);
  thread_local cv::Mat scratch;  // the composited frame when only its encoding is kept
  cv::Mat& image = settings_.keep_image ? frame.image : scratch;
  core::Stopwatch sw;
  compose(frame.template_frame, image);
  const double composite_ms = measured_ms + sw.elapsed_ms();
  double encode_ms = 0;
  if (settings_.encoding != FrameEncoding::kNone) {
    sw.reset();
    frame.encoded = encode_frame(image, settings_.encoding, settings_.jpeg_quality, splices(),
                                 frame.template_frame);
    encode_ms = sw.elapsed_ms();
  }
  keep_or_release(frame, std::move(batch), slot);
  observe("composite", composite_ms);
  if (settings_.encoding != FrameEncoding::kNone) observe("encode", encode_ms);
  deliver(std::move(frame));
}

void FrameProducer::keep_or_release(ProducedFrame& frame,
                                    std::shared_ptr<const infer::GeneratorBatch> batch,
                                    int slot) const {
  if (settings_.keep_output) {
    frame.batch = std::move(batch);
    frame.slot = slot;
  }
  // Otherwise the batch's buffers go back to the pool once its last frame is done.
}

render::JpegSpliceCache* FrameProducer::splices() const {
  return settings_.encoding == FrameEncoding::kJpeg ? target_.splices() : nullptr;
}

void FrameProducer::fail_compositing(int index) {
  try {
    throw;
  } catch (const Error& e) {
    fail(e);
  } catch (const std::exception& e) {
    fail(Error::internal(std::string("compositing frame ") + std::to_string(index) + ": " +
                         e.what()));
  }
}

void FrameProducer::composite_and_deliver(int index,
                                          std::shared_ptr<const infer::GeneratorBatch> batch,
                                          int slot) {
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return;
  }
  try {
    if (colors_) {
      park(index, std::move(batch), slot);
      return;
    }
    const std::span<const float> output = batch->output(slot);
    render::JpegSpliceCache* const cache = splices();
    if (cache == nullptr || settings_.keep_image || settings_.blend.feather) {
      finish_frame(
          index,
          [&](int template_frame, cv::Mat& image) {
            render::composite(*target_.avatar, template_frame, output, settings_.blend, image);
          },
          std::move(batch), slot, 0);
      return;
    }
    // Only the encoding is kept: spliced into this template frame's last whole one.
    ProducedFrame frame;
    frame.index = index;
    frame.template_frame = template_for(index);
    double composite_ms = 0;
    double encode_ms = 0;
    frame.encoded = cache->composite_and_encode(frame.template_frame, output,
                                                settings_.jpeg_quality, &composite_ms, &encode_ms);
    keep_or_release(frame, std::move(batch), slot);
    observe("composite", composite_ms);
    observe("encode", encode_ms);
    deliver(std::move(frame));
  } catch (...) {
    fail_compositing(index);
  }
}

void FrameProducer::deliver(ProducedFrame frame) {
  {
    core::MutexLock lock(mutex_);
    if (stopped_) return;
    const int index = frame.index;
    ready_.emplace(index, std::move(frame));
  }
  deliver_ready();
}

// Hands frames to the consumer in order: whoever finds the next frame ready delivers it and every
// one after it that is ready too; the others only leave theirs in ready_. After the last frame,
// on_finished.
void FrameProducer::deliver_ready() {
  const auto consumer = consumer_.lock();
  core::MutexLock lock(mutex_);
  if (stopped_ || delivering_) return;
  delivering_ = true;
  while (true) {
    const auto it = ready_.find(next_deliver_);
    if (it == ready_.end()) break;
    ProducedFrame frame = std::move(it->second);
    ready_.erase(it);
    ++next_deliver_;  // before on_frame, which may release() it at once
    lock.unlock();
    try {
      if (consumer) consumer->on_frame(std::move(frame));
    } catch (const Error& e) {
      fail(e);
      return;
    } catch (const std::exception& e) {
      fail(Error::internal(std::string("frame consumer: ") + e.what()));
      return;
    }
    lock.lock();
    if (stopped_) return;
  }
  delivering_ = false;
  if (total_ < 0 || next_deliver_ < total_) return;
  stopped_ = true;  // finished
  lock.unlock();
  if (own_strand_) strand_->close();
  if (consumer) consumer->on_finished();
}

void FrameProducer::fail(const Error& error) {
  if (!halt()) return;
  if (auto consumer = consumer_.lock()) consumer->on_failed(error);
}

}  // namespace lipsync::pipeline
