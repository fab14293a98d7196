#include "server/live_service.h"

#include <mutex>

#include "audio/video_frames.h"
#include "core/stopwatch.h"
#include "server/bidi_call.h"
#include "server/grpc_status.h"
#include "server/wire_audio.h"

namespace lipsync::server {
namespace {

using lipsync::v1::LiveConfig;
using lipsync::v1::LiveFrame;
using lipsync::v1::LiveRequest;
using lipsync::v1::StreamConfig;

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

// One live session's call: the session's sink, and everything queued work may touch. The
// reactor is reached only under mutex_ and never after OnDone.
class LiveCall final : public BidiCall<LiveCall, LiveRequest>, public pipeline::LiveSink {
 public:
  static constexpr const char* kMethod = "Live";
  using BidiCall::BidiCall;

  // LiveSink ----------------------------------------------------------------------------------
  void on_live_frame(pipeline::LiveFrame f) override {
    record_live_frame(*ctx_.metrics, f, last_underrun_);
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
    // A reader that is behind gets the frame without its picture: the timeline and the audio go
    // on, the picture repeats. (Only the ticker thread queues frames, so the count cannot grow
    // between here and send.)
    const bool behind = queued() >= kMaxQueuedPictures;
    out.set_late(f.late || behind || !f.picture);
    if (f.picture && !behind && !f.late) {
      out.set_frame(reinterpret_cast<const char*>(f.picture->data()), f.picture->size());
    }
    grpc::ByteBuffer bytes;
    bool own = false;
    if (!grpc::SerializationTraits<LiveFrame>::Serialize(out, &bytes, &own).ok()) return;
    send(std::move(bytes));
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
    finish_when_written(error ? to_status(*error) : grpc::Status::OK);
  }

 private:
  friend class BidiCall<LiveCall, LiveRequest>;

  // The call ends: the session stops at once.
  void drop() {
    std::shared_ptr<pipeline::LiveSession> session;
    {
      std::lock_guard lock(mutex_);
      session = std::move(session_);
    }
    if (session) session->close(true);
  }

  // The client closed its side: the session ends once the speech has played.
  void half_closed() { client_done(); }

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
        audio_.drop_partial();
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
    const int rate = check_wire_config(c.format(), c.encoding(), c.sample_rate());
    if (c.latency_ms() < 0 || c.latency_ms() > 10000) {
      throw Error::invalid_input("latency_ms " + std::to_string(c.latency_ms()) +
                                 " is out of range; expected 0 (the server's default) to 10000");
    }
    ctx_.registry->check_configured(c.model_id());
    Registry::Lease lease = ctx_.registry->acquire(c.model_id());
    audio_.configure(c.encoding() == StreamConfig::ENCODING_S16LE, rate);
    pipeline::LiveSettings settings;
    settings.start_frame = c.start_frame();
    settings.encoding = frame_encoding_for(c.format());
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
    std::vector<float> samples = audio_.decode(bytes, "speech chunk");
    ctx_.metrics->observe_ms("decode", sw.elapsed_ms());
    if (samples.empty()) return true;
    return s.push_speech(std::move(samples));
  }

  // The end of an utterance: what the resampler still holds belongs to it.
  void flush_speech(pipeline::LiveSession& s) {
    std::vector<float> tail = audio_.finish("utterance");
    if (!tail.empty()) s.push_speech(std::move(tail));
  }

  void client_done() {
    if (!stop_reading()) return;
    if (!configured_) throw Error::invalid_input("the call ended before its config message");
    if (auto s = session()) {
      flush_speech(*s);
      s->close(false);
    }
  }

  // Touched only on the strand (or written by configure before the session exists).
  bool configured_ = false;
  WireAudio audio_;
  int width_ = 0;
  int height_ = 0;
  int latency_ms_ = 0;
  bool last_underrun_ = false;  // the ticker thread's

  bool waiting_for_room_ = false;                   // guarded
  std::shared_ptr<pipeline::LiveSession> session_;  // guarded
};

}  // namespace

LiveService::LiveService(const ServiceContext& context) : context_(context) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* LiveService::start(
    grpc::CallbackServerContext*) {
  return start_bidi_call<LiveCall>(context_, *context_.live_sessions, context_.live.max_sessions,
                                   "live sessions", "live.max_sessions");
}

}  // namespace lipsync::server
