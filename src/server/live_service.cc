#include "server/live_service.h"

#include <deque>
#include <mutex>

#include "audio/audio_file.h"
#include "audio/mel_spectrogram.h"
#include "audio/streaming_resampler.h"
#include "core/stopwatch.h"
#include "core/strand.h"
#include "server/bidi_call.h"
#include "server/grpc_status.h"

namespace lipsync::server {
namespace {

using lipsync::v1::LiveConfig;
using lipsync::v1::LiveFrame;
using lipsync::v1::LiveRequest;
using lipsync::v1::StreamConfig;

constexpr const char* kMethod = "Live";
// Frames waiting for a slow reader beyond which the rest go out without their picture.
constexpr std::size_t kMaxQueuedPictures = 25;

LiveFrame::State wire_state(pipeline::LiveState s) {
  switch (s) {
    case pipeline::LiveState::kSpeaking:
      return LiveFrame::SPEAKING;
    case pipeline::LiveState::kFading:
      return LiveFrame::FADING;
    case pipeline::LiveState::kIdle:
      break;
  }
  return LiveFrame::IDLE;
}

class LiveCall;

using LiveReactor = BidiReactor<LiveCall>;

// One live session's call: the session's sink, and everything queued work may touch. The
// reactor is reached only under mutex_ and never after OnDone.
class LiveCall final : public pipeline::LiveSink, public std::enable_shared_from_this<LiveCall> {
 public:
  LiveCall(const ServiceContext& ctx, std::atomic<int>& active)
      : ctx_(ctx), active_(active), strand_(*ctx.workers) {}

  void attach(LiveReactor* reactor, std::uint64_t call_id) {
    std::lock_guard lock(mutex_);
    reactor_ = reactor;
    call_id_ = call_id;
  }
  void detach() {
    std::shared_ptr<pipeline::LiveSession> session;
    {
      std::lock_guard lock(mutex_);
      reactor_ = nullptr;
      ended_ = true;
      session = std::move(session_);
    }
    if (session) session->close(true);
    --active_;
  }

  void begin() { request_read(); }

  void read_done(bool ok, grpc::ByteBuffer bytes) {
    int number = 0;
    {
      std::lock_guard lock(mutex_);
      reading_ = false;
      number = ++messages_read_;
    }
    auto self = shared_from_this();
    if (!ok) {  // the client half-closed (or went away): end once the speech has played
      strand_.post([self] { self->run([&] { self->client_done(); }); });
      return;
    }
    auto message = std::make_shared<LiveRequest>();
    if (!grpc::SerializationTraits<LiveRequest>::Deserialize(&bytes, message.get()).ok()) {
      end(to_status(Error::invalid_input("message " + std::to_string(number) +
                                         " is not a valid lipsync.v1.LiveRequest (protobuf "
                                         "parsing failed)")));
      return;
    }
    strand_.post([self, message] { self->run([&] { self->handle(*message); }); });
  }

  void write_done(bool ok) {
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      writing_ = false;
      if (ended_) return;
      if (ok) {
        outbox_.pop_front();
        write_next_locked();
        finish = outbox_.empty() && !writing_ && session_done_;
      }
    }
    if (!ok) {
      end(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    } else if (finish) {
      end(final_status_);
    }
  }

  void cancelled() { end(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client")); }

  // Ends the call once: closes the session at once, releases the lease, sends the status.
  void end(const grpc::Status& status) {
    std::shared_ptr<pipeline::LiveSession> session;
    Registry::Lease lease;
    LiveReactor* reactor = nullptr;
    std::uint64_t call_id = 0;
    {
      std::lock_guard lock(mutex_);
      if (ended_ || reactor_ == nullptr) return;
      ended_ = true;
      reactor = reactor_;
      call_id = call_id_;
      session = std::move(session_);
      lease = std::move(lease_);
    }
    strand_.close();
    if (session) session->close(true);
    session.reset();
    lease.model.reset();
    ctx_.metrics->count_request(kMethod, status_code_name(status.error_code()));
    ctx_.calls->remove(call_id);
    reactor->finish(status);
  }

  // LiveSink ----------------------------------------------------------------------------------
  void on_live_frame(pipeline::LiveFrame f) override {
    const bool underrun_starts = f.underrun && !last_underrun_;
    last_underrun_ = f.underrun;
    ctx_.metrics->count_live_frame(std::string(pipeline::to_string(f.state)), f.late,
                                   underrun_starts);
    ctx_.metrics->observe_live_jitter_ms(
        std::chrono::duration<double, std::milli>(f.emitted - f.due).count());
    if (f.speech_latency_ms) ctx_.metrics->observe_speech_latency_ms(*f.speech_latency_ms);
    LiveFrame out;
    out.set_index(f.index);
    out.set_pts_ms(audio::frame_pts_ms(f.index));
    out.set_state(wire_state(f.state));
    out.set_width(width_);
    out.set_height(height_);
    out.set_samples(reinterpret_cast<const char*>(f.samples.data()), sizeof f.samples);
    out.set_utterance(f.utterance);
    out.set_sample(f.sample);
    out.set_underrun(f.underrun);
    if (f.index == 0) out.set_latency_ms(latency_ms_);
    std::lock_guard lock(mutex_);
    if (ended_) return;
    // A reader that is behind gets the frame without its picture: the timeline and the audio go
    // on, the picture repeats.
    const bool behind = outbox_.size() >= kMaxQueuedPictures;
    out.set_late(f.late || behind || !f.picture);
    if (f.picture && !behind && !f.late) {
      out.set_frame(reinterpret_cast<const char*>(f.picture->data()), f.picture->size());
    }
    grpc::ByteBuffer bytes;
    bool own = false;
    if (!grpc::SerializationTraits<LiveFrame>::Serialize(out, &bytes, &own).ok()) return;
    outbox_.push_back(std::move(bytes));
    write_next_locked();
  }

  void on_speech_wanted() override {
    {
      std::lock_guard lock(mutex_);
      if (!waiting_for_room_) return;
      waiting_for_room_ = false;
    }
    request_read();
  }

  void on_live_ended(const std::optional<Error>& error) override {
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      session_done_ = true;
      final_status_ = error ? to_status(*error) : grpc::Status::OK;
      finish = outbox_.empty() && !writing_;
    }
    if (finish) end(final_status_);
  }

 private:
  template <class F>
  void run(F&& work) {
    try {
      work();
    } catch (const Error& e) {
      end(to_status(e));
    } catch (const std::exception& e) {
      end(to_status(Error::internal(e.what())));
    }
  }

  void request_read() {
    std::lock_guard lock(mutex_);
    if (ended_ || reactor_ == nullptr || reading_ || no_more_reads_) return;
    reading_ = true;
    reactor_->read();
  }

  // Requires mutex_ held.
  void write_next_locked() {
    if (ended_ || writing_ || outbox_.empty() || reactor_ == nullptr) return;
    writing_ = true;
    reactor_->write(&outbox_.front());
  }

  std::shared_ptr<pipeline::LiveSession> session() {
    std::lock_guard lock(mutex_);
    return session_;
  }

  // On the strand --------------------------------------------------------------------------
  void handle(const LiveRequest& message) {
    if (message.message_case() == LiveRequest::kConfig) {
      configure(message.config());
      request_read();
      return;
    }
    if (!configured_) throw Error::invalid_input("a message before the config message");
    auto s = session();
    if (!s) return;  // the call is ending
    switch (message.message_case()) {
      case LiveRequest::kSpeech:
        if (add_speech(*s, message.speech())) {
          request_read();
        } else {
          std::lock_guard lock(mutex_);
          waiting_for_room_ = true;  // read on once the session has played some
        }
        return;
      case LiveRequest::kSegmentEnd:
        flush_speech(*s);
        s->end_utterance();
        break;
      case LiveRequest::kInterrupt:
        partial_sample_.clear();
        s->interrupt();
        ctx_.metrics->count_interrupt();
        break;
      default:
        throw Error::invalid_input(
            "an empty LiveRequest (expected config, speech, segment_end or interrupt)");
    }
    request_read();
  }

  void configure(const LiveConfig& c) {
    if (configured_) throw Error::invalid_input("a second config message");
    configured_ = true;
    if (!StreamConfig::Format_IsValid(c.format())) {
      throw Error::invalid_input("format " + std::to_string(c.format()) +
                                 " is not defined; expected FORMAT_JPEG (0), FORMAT_PNG (1) or "
                                 "FORMAT_RAW (2)");
    }
    if (!StreamConfig::Encoding_IsValid(c.encoding())) {
      throw Error::invalid_input("encoding " + std::to_string(c.encoding()) +
                                 " is not defined; expected ENCODING_S16LE (0) or "
                                 "ENCODING_F32LE (1)");
    }
    const int rate = c.sample_rate() == 0 ? audio::kSampleRateHz : c.sample_rate();
    rate_ = rate;
    if (rate < 8000 || rate > 192000) {
      throw Error::invalid_input("sample_rate " + std::to_string(c.sample_rate()) +
                                 " is out of range; expected 0 (16000) or 8000 to 192000");
    }
    if (c.latency_ms() < 0 || c.latency_ms() > 10000) {
      throw Error::invalid_input("latency_ms " + std::to_string(c.latency_ms()) +
                                 " is out of range; expected 0 (the server's default) to 10000");
    }
    ctx_.registry->check_configured(c.model_id());
    Registry::Lease lease = ctx_.registry->acquire(c.model_id());
    s16_ = c.encoding() == StreamConfig::ENCODING_S16LE;
    if (rate != audio::kSampleRateHz) {
      resampler_ = std::make_unique<audio::StreamingResampler>(rate, audio::kSampleRateHz);
    }
    pipeline::LiveSettings settings;
    settings.start_frame = c.start_frame();
    settings.encoding = c.format() == StreamConfig::FORMAT_RAW   ? pipeline::FrameEncoding::kNone
                        : c.format() == StreamConfig::FORMAT_PNG ? pipeline::FrameEncoding::kPng
                                                                 : pipeline::FrameEncoding::kJpeg;
    settings.jpeg_quality = ctx_.output.jpeg_quality;
    settings.latency_ms = c.latency_ms();
    settings.live = ctx_.live;
    settings.idle_pictures = ctx_.idle_pictures;
    settings.pipeline = ctx_.pipeline;
    settings.audio = ctx_.audio;
    width_ = lease.model->avatar->width();
    height_ = lease.model->avatar->height();
    auto session =
        pipeline::LiveSession::create(ctx_.target(*lease.model), settings, weak_from_this());
    latency_ms_ = session->latency_ms();
    {
      std::lock_guard lock(mutex_);
      if (ended_) return;
      session_ = session;
      lease_ = std::move(lease);
    }
    session->start(*ctx_.ticker);
  }

  // Decodes a speech chunk (samples may be split across chunks) into the session; returns
  // whether the session wants more now.
  bool add_speech(pipeline::LiveSession& s, const std::string& bytes) {
    core::Stopwatch sw;
    const std::size_t width = s16_ ? 2 : 4;
    std::string data = std::move(partial_sample_);
    data += bytes;
    const std::size_t whole = data.size() - data.size() % width;
    partial_sample_ = data.substr(whole);
    std::vector<float> samples = audio::decode_raw(
        std::as_bytes(std::span(data.data(), whole)),
        s16_ ? audio::RawEncoding::kS16le : audio::RawEncoding::kF32le, "speech chunk");
    audio::validate_samples(samples, "speech chunk");
    if (resampler_) samples = resampler_->process(samples);
    ctx_.metrics->observe_ms("decode", sw.elapsed_ms());
    if (samples.empty()) return true;
    return s.push_speech(std::move(samples));
  }

  // The end of an utterance: what the resampler still holds belongs to it.
  void flush_speech(pipeline::LiveSession& s) {
    if (!partial_sample_.empty()) {
      throw Error::invalid_input("the utterance ends with " +
                                 std::to_string(partial_sample_.size()) +
                                 " bytes of an incomplete sample");
    }
    if (resampler_) {
      std::vector<float> tail = resampler_->finish();
      if (!tail.empty()) s.push_speech(std::move(tail));
      resampler_ = std::make_unique<audio::StreamingResampler>(rate_, audio::kSampleRateHz);
    }
  }

  void client_done() {
    {
      std::lock_guard lock(mutex_);
      if (no_more_reads_) return;
      no_more_reads_ = true;
    }
    if (!configured_) throw Error::invalid_input("the call ended before its config message");
    if (auto s = session()) {
      flush_speech(*s);
      s->close(false);
    }
  }

  const ServiceContext& ctx_;
  std::atomic<int>& active_;
  core::Strand strand_;

  // Touched only on the strand (or written by configure before the session exists).
  bool configured_ = false;
  bool s16_ = false;
  int rate_ = audio::kSampleRateHz;
  std::unique_ptr<audio::StreamingResampler> resampler_;
  std::string partial_sample_;
  int width_ = 0;
  int height_ = 0;
  int latency_ms_ = 0;
  bool last_underrun_ = false;  // the ticker thread's

  std::mutex mutex_;
  LiveReactor* reactor_ = nullptr;
  std::uint64_t call_id_ = 0;
  bool ended_ = false;
  bool reading_ = false;
  bool no_more_reads_ = false;
  bool waiting_for_room_ = false;
  bool writing_ = false;
  bool session_done_ = false;
  grpc::Status final_status_;
  int messages_read_ = 0;
  std::deque<grpc::ByteBuffer> outbox_;
  std::shared_ptr<pipeline::LiveSession> session_;
  Registry::Lease lease_;
};

}  // namespace

LiveService::LiveService(const ServiceContext& context) : context_(context) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* LiveService::start(
    grpc::CallbackServerContext*) {
  return start_bidi_call<LiveCall>(context_, active_, context_.live.max_sessions, "live sessions",
                                   "live.max_sessions");
}

}  // namespace lipsync::server
