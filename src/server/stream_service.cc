#include "server/stream_service.h"

#include <deque>
#include <map>
#include <mutex>
#include <optional>

#include "audio/audio_file.h"
#include "audio/mel_constants.h"
#include "audio/streaming_resampler.h"
#include "avatar/template_walk.h"
#include "core/stopwatch.h"
#include "infer/model_family.h"
#include "pipeline/feature_track.h"
#include "render/compositor.h"
#include "render/image_encoder.h"
#include "server/monolithic_service.h"

namespace lipsync::server {
namespace {

using lipsync::v1::StreamConfig;
using lipsync::v1::StreamRequest;
using lipsync::v1::StreamResponse;

class StreamSession;

// The session's logic and everything queued work may touch; it outlives the reactor. Methods
// reach the reactor only through `reactor`, under `mutex`, and never after `finished`.
struct SessionState : std::enable_shared_from_this<SessionState> {
  Registry* registry = nullptr;
  core::WorkerPool* workers = nullptr;
  const ServerOptions* options = nullptr;
  ServerMetrics* metrics = nullptr;

  std::mutex mutex;
  StreamSession* reactor = nullptr;         // null after OnDone (guarded)
  bool finished = false;                    // Finish was called (guarded)
  bool writing = false;                     // a write is in flight (guarded)
  int next_write = 0;                       // guarded
  int total_frames = -1;                    // known after the end marker (guarded)
  std::map<int, StreamResponse> completed;  // encoded frames waiting for their turn (guarded)
  std::deque<std::function<void()>> tasks;  // the strand (guarded)
  bool running = false;                     // guarded
  std::shared_ptr<LoadedModel> model;       // set once by configure, read under mutex by cancel

  // Touched only by strand tasks.
  StreamConfig config;
  bool configured = false;
  bool ended = false;
  std::unique_ptr<pipeline::FeatureTrack> track;
  std::unique_ptr<audio::StreamingResampler> resampler;
  std::string partial_sample;  // bytes of a sample split across chunks
  int next_submit = 0;

  void post(std::function<void()> fn);
  void handle(const StreamRequest& message);
  void configure(const StreamConfig& config);
  void add_audio(const std::string& bytes);
  void end_of_audio();
  void submit_ready();
  void fail(const Error& e);
  void finish_locked(const grpc::Status& status);
  void read_next();
  void write_next_locked();
  void cancel_jobs_locked() {
    if (model) model->scheduler->cancel(this);
  }
};

class StreamSession final : public grpc::ServerBidiReactor<StreamRequest, StreamResponse> {
 public:
  StreamSession(std::shared_ptr<SessionState> state, std::atomic<int>& active)
      : state_(std::move(state)), active_(active) {
    ++active_;
    state_->reactor = this;
    StartRead(&read_);
  }

  void OnReadDone(bool ok) override {
    auto state = state_;
    if (!ok) {  // the client closed its side (or went away): the end of the audio
      state->post([state] { state->end_of_audio(); });
      return;
    }
    auto message = std::make_shared<StreamRequest>(std::move(read_));
    state->post([state, message] { state->handle(*message); });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(state_->mutex);
    state_->writing = false;
    if (state_->finished) return;
    if (!ok) {
      state_->cancel_jobs_locked();
      state_->finish_locked(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    state_->completed.erase(state_->next_write);
    ++state_->next_write;
    state_->write_next_locked();
  }

  void OnCancel() override {
    std::lock_guard lock(state_->mutex);
    state_->cancel_jobs_locked();
    state_->finish_locked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client"));
  }

  void OnDone() override {
    {
      std::lock_guard lock(state_->mutex);
      state_->reactor = nullptr;
      state_->finished = true;
      state_->cancel_jobs_locked();
      state_->completed.clear();
    }
    --active_;
    delete this;
  }

  void start_read() { StartRead(&read_); }
  void start_write(const StreamResponse* r) { StartWrite(r); }
  void finish(const grpc::Status& status) { Finish(status); }

 private:
  std::shared_ptr<SessionState> state_;
  std::atomic<int>& active_;
  StreamRequest read_;
};

void SessionState::post(std::function<void()> fn) {
  std::lock_guard lock(mutex);
  if (finished) return;
  tasks.push_back(std::move(fn));
  if (running) return;
  running = true;
  workers->post([self = shared_from_this()] {
    while (true) {
      std::function<void()> task;
      {
        std::lock_guard guard(self->mutex);
        if (self->tasks.empty() || self->finished) {
          self->tasks.clear();
          self->running = false;
          return;
        }
        task = std::move(self->tasks.front());
        self->tasks.pop_front();
      }
      task();
    }
  });
}

void SessionState::fail(const Error& e) {
  std::lock_guard lock(mutex);
  cancel_jobs_locked();
  finish_locked(to_status(e));
}

void SessionState::finish_locked(const grpc::Status& status) {
  if (finished || reactor == nullptr) return;
  finished = true;
  metrics->count_request("Stream", std::to_string(status.error_code()));
  reactor->finish(status);
}

void SessionState::read_next() {
  std::lock_guard lock(mutex);
  if (!finished && reactor != nullptr) reactor->start_read();
}

void SessionState::write_next_locked() {
  if (finished || writing || reactor == nullptr) return;
  if (total_frames >= 0 && next_write == total_frames) {
    finish_locked(grpc::Status::OK);
    return;
  }
  auto it = completed.find(next_write);
  if (it == completed.end()) return;
  writing = true;
  reactor->start_write(&it->second);
}

void SessionState::handle(const StreamRequest& message) {
  try {
    switch (message.message_case()) {
      case StreamRequest::kConfig:
        configure(message.config());
        break;
      case StreamRequest::kAudio:
        if (!configured) throw Error::invalid_input("audio before the config message");
        if (ended) throw Error::invalid_input("audio after the end marker");
        add_audio(message.audio());
        break;
      case StreamRequest::kEnd:
        end_of_audio();
        return;  // no more reads
      default:
        throw Error::invalid_input("an empty StreamRequest (expected config, audio or end)");
    }
    read_next();
  } catch (const Error& e) {
    fail(e);
  } catch (const std::exception& e) {
    fail(Error::internal(e.what()));
  }
}

void SessionState::configure(const StreamConfig& c) {
  if (configured) throw Error::invalid_input("a second config message");
  const int rate = c.sample_rate() == 0 ? audio::kSampleRateHz : c.sample_rate();
  if (rate < 8000 || rate > 192000) {
    throw Error::invalid_input("sample_rate " + std::to_string(c.sample_rate()) +
                               " is out of range; expected 0 (16000) or 8000 to 192000");
  }
  if (c.start_frame() < 0) {
    throw Error::invalid_input("start_frame " + std::to_string(c.start_frame()) + " is negative");
  }
  auto lease = registry->acquire(c.model_id());
  const int n = lease.model->avatar->frame_count();
  if (c.start_frame() >= n) {
    throw Error::invalid_input("start_frame " + std::to_string(c.start_frame()) +
                               " is out of range; the avatar has " + std::to_string(n) + " frames");
  }
  {
    std::lock_guard lock(mutex);
    model = lease.model;
  }
  config = c;
  if (rate != audio::kSampleRateHz) {
    resampler = std::make_unique<audio::StreamingResampler>(rate, audio::kSampleRateHz);
  }
  track = std::make_unique<pipeline::FeatureTrack>(model->models->encoder(), audio::AudioOptions{});
  configured = true;
}

void SessionState::add_audio(const std::string& bytes) {
  const bool s16 = config.encoding() == StreamConfig::ENCODING_S16LE;
  const std::size_t width = s16 ? 2 : 4;
  const std::string data = partial_sample + bytes;
  const std::size_t whole = data.size() - data.size() % width;
  partial_sample = data.substr(whole);
  if (whole == 0) return;
  std::vector<float> samples = audio::decode_raw(
      std::as_bytes(std::span(data.data(), whole)),
      s16 ? audio::RawEncoding::kS16le : audio::RawEncoding::kF32le, "audio chunk");
  audio::validate_samples(samples, "audio chunk");
  if (resampler) samples = resampler->process(samples);
  track->append(samples);
  submit_ready();
}

void SessionState::end_of_audio() {
  try {
    if (ended) return;
    if (!configured) throw Error::invalid_input("the stream ended before its config message");
    ended = true;
    if (!partial_sample.empty()) {
      throw Error::invalid_input("the audio ends with " + std::to_string(partial_sample.size()) +
                                 " bytes of an incomplete sample");
    }
    if (resampler) track->append(resampler->finish());
    track->finish();
    {
      std::lock_guard lock(mutex);
      total_frames = track->total_frames();
    }
    submit_ready();
    std::lock_guard lock(mutex);
    write_next_locked();
  } catch (const Error& e) {
    fail(e);
  }
}

void SessionState::submit_ready() {
  const int ready = track->ready_frames();
  if (ready <= next_submit) return;
  const auto m = model;
  const int n = m->avatar->frame_count();
  std::vector<pipeline::FrameJob> jobs;
  auto self = shared_from_this();
  const auto format = config.format();
  const int quality = options->jpeg_quality;
  for (int i = next_submit; i < ready; ++i) {
    auto audio_in = std::make_shared<std::vector<float>>(infer::kAudioInputSize);
    track->frame_audio(i, *audio_in);
    const int t = avatar::template_frame_for(i, n, config.start_frame());
    pipeline::FrameJob job;
    job.owner = this;
    job.fill = [m, t, audio_in](std::span<float> image, std::span<float> audio_out) {
      m->avatar->pack_generator_input(t, image);
      std::copy(audio_in->begin(), audio_in->end(), audio_out.begin());
    };
    job.done = [self, m, t, i, format, quality](std::span<const float> output) {
      auto copy = std::make_shared<std::vector<float>>(output.begin(), output.end());
      self->workers->post([self, m, t, i, format, quality, copy] {
        {
          std::lock_guard lock(self->mutex);
          if (self->finished) return;
        }
        thread_local cv::Mat frame;
        core::Stopwatch sw;
        render::composite(*m->avatar, t, *copy, frame);
        self->metrics->observe_ms("composite", sw.elapsed_ms());
        sw.reset();
        StreamResponse response;
        response.set_index(i);
        response.set_pts_ms(static_cast<std::int64_t>(i) * 1000 / audio::kVideoFps);
        response.set_width(frame.cols);
        response.set_height(frame.rows);
        if (format == StreamConfig::FORMAT_RAW) {
          response.set_frame(reinterpret_cast<const char*>(frame.data),
                             frame.total() * frame.elemSize());
        } else {
          const auto bytes =
              render::encode_image(frame,
                                   format == StreamConfig::FORMAT_PNG ? render::ImageFormat::kPng
                                                                      : render::ImageFormat::kJpeg,
                                   quality);
          response.set_frame(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        }
        self->metrics->observe_ms("encode", sw.elapsed_ms());
        self->metrics->add_frames(1);
        std::lock_guard lock(self->mutex);
        if (self->finished) return;
        self->completed.emplace(i, std::move(response));
        self->write_next_locked();
      });
    };
    job.failed = [self](const Error& e) { self->fail(e); };
    jobs.push_back(std::move(job));
  }
  m->scheduler->submit(std::move(jobs));
  next_submit = ready;
  track->release_before(ready);
}

}  // namespace

StreamService::StreamService(Registry& registry, core::WorkerPool& workers,
                             const ServerOptions& options, ServerMetrics& metrics)
    : registry_(registry), workers_(workers), options_(options), metrics_(metrics) {}

grpc::ServerBidiReactor<StreamRequest, StreamResponse>* StreamService::Stream(
    grpc::CallbackServerContext*) {
  auto state = std::make_shared<SessionState>();
  state->registry = &registry_;
  state->workers = &workers_;
  state->options = &options_;
  state->metrics = &metrics_;
  return new StreamSession(std::move(state), active_);
}

}  // namespace lipsync::server
