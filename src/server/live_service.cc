#include "server/live_service.h"

#include "audio/video_frames.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "server/bidi_call.h"
#include "server/grpc_status.h"
#include "server/input_limits.h"
#include "server/session_hub.h"
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
  static constexpr CallTracker::Kind kKind = CallTracker::Kind::kSession;
  using BidiCall::BidiCall;

  // LiveSink ----------------------------------------------------------------------------------
  void on_live_frame(pipeline::LiveFrame f) override {
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
    for (const auto& e : f.events) {
      if (e.seq == 0) continue;  // not published (the session has ended)
      auto* event = out.add_events();
      event->set_seq(e.seq);
      event->set_type(std::string(event_type_name(e.type)));
      event->set_json(e.json);
    }
    if (first_frame_) {
      first_frame_ = false;
      out.set_latency_ms(latency_ms_);
      out.set_session_id(session_id_);
    }
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

  // The session has room for the speech this call writes again.
  void on_room() {
    {
      core::MutexLock lock(mutex_);
      if (!waiting_for_room_) return;
      waiting_for_room_ = false;
    }
    request_read();
  }

  void on_live_ended(const std::optional<Error>& error) override {
    // The session's last event, session_ended, has no tick to ride on: it is the trailer.
    if (auto s = session()) {
      if (std::string ended = s->ended_json(); !ended.empty()) {
        add_trailer(std::string(kSessionEndedTrailer), std::move(ended));
      }
    }
    if (!error && attached_ && !client_closed_) {
      finish_when_written(
          grpc::Status(grpc::StatusCode::CANCELLED, "session " + session_id_ + " has ended"));
      return;
    }
    finish_when_written(error ? to_status(*error) : grpc::Status::OK);
  }

 private:
  friend class BidiCall<LiveCall, LiveRequest>;

  // The call ends: its own session stops at once; an attached one goes on without it (what the
  // call said of its utterance plays).
  void drop() {
    std::shared_ptr<HubSession> session;
    std::shared_ptr<pipeline::SpeechInput> input;
    {
      core::MutexLock lock(mutex_);
      session = std::move(session_);
      input = std::move(input_);
    }
    if (input) input->abandon();
    if (!session) return;
    session->detach(this);
    if (!attached_) ctx_.hub->remove(session->id());
  }

  // The client closed its side: the session ends once the speech has played.
  void half_closed() { client_done(); }

  std::shared_ptr<HubSession> session() {
    core::MutexLock lock(mutex_);
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
    auto hub_session = session();
    if (!hub_session) return;  // the call is ending
    switch (message.message_case()) {
      case LiveRequest::kSpeech:
        if (add_speech(*hub_session, message.speech())) {
          request_read();
        } else {
          core::MutexLock lock(mutex_);
          waiting_for_room_ = true;  // read on once the session has played some
        }
        return;
      case LiveRequest::kSegmentEnd:
        end_speech();
        break;
      case LiveRequest::kInterrupt:
        audio_.drop_partial();
        take_input();  // closed by the interrupt
        hub_session->interrupt();
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
    limits::checked(limits::kLatencyMs, "latency_ms (0: the server's)", c.latency_ms());
    limits::checked(limits::kStartFrame, "start_frame", c.start_frame());
    audio_.configure(c.encoding() == StreamConfig::ENCODING_S16LE, rate);
    const pipeline::FrameEncoding encoding = frame_encoding_for(c.format());
    std::shared_ptr<HubSession> session;
    if (!c.session_id().empty()) {
      session = ctx_.hub->find(c.session_id());
      if (!session)
        throw Error::not_found("no live session '" + c.session_id().substr(0, 64) + "'");
      if (session->encoding() != encoding) {
        throw Error::invalid_input("session " + c.session_id() + " makes " +
                                   session->info().format +
                                   " frames; ask for that format (LiveConfig.format)");
      }
      attached_ = true;
    } else {
      SessionHub::NewSession spec;
      spec.model = c.model_id();
      spec.start_frame = c.start_frame();
      spec.encoding = encoding;
      spec.latency_ms = c.latency_ms();
      spec.origin = "grpc";
      session = ctx_.hub->create(spec);
    }
    width_ = session->width();
    height_ = session->height();
    latency_ms_ = session->live().latency_ms();
    session_id_ = session->id();
    bool ended = false;
    {
      core::MutexLock lock(mutex_);
      ended = ended_;
      if (!ended) session_ = session;
    }
    if (ended || !session->attach(shared_from_this())) {
      if (!attached_) ctx_.hub->remove(session->id());
      throw Error::unavailable("session " + session_id_ + " has ended");
    }
  }

  // Decodes a speech chunk (samples may be split across chunks) into the call's utterance on the
  // session's inbox (opened by its first chunk); returns whether the session wants more now.
  // Another utterance coming into the session (an HTTP upload) ends the call: ABORTED.
  bool add_speech(HubSession& session, const std::string& bytes) {
    core::Stopwatch sw;
    std::vector<float> samples = audio_.decode(bytes, "speech chunk");
    ctx_.metrics->observe_ms("decode", sw.elapsed_ms());
    if (samples.empty()) return true;
    std::shared_ptr<pipeline::SpeechInput> input;
    {
      core::MutexLock lock(mutex_);
      input = input_;
    }
    if (!input) {
      const std::weak_ptr<LiveCall> weak = shared_from_this();
      input = session.begin_speech([weak] {
        if (auto self = weak.lock()) self->on_room();
      });
      if (!input) {
        throw Error::conflict("session " + session_id_ +
                              " is taking another utterance (an HTTP upload, a text, a WebSocket "
                              "stream); send speech when it has ended");
      }
      core::MutexLock lock(mutex_);
      input_ = input;
    }
    return input->add(std::move(samples));  // dropped when an interrupt closed it
  }

  std::shared_ptr<pipeline::SpeechInput> take_input() {
    core::MutexLock lock(mutex_);
    return std::move(input_);
  }

  // The end of an utterance: what the resampler still holds belongs to it.
  void end_speech() {
    std::vector<float> tail = audio_.finish("utterance");
    auto input = take_input();
    if (!input) return;
    if (!tail.empty()) input->add(std::move(tail));
    input->end();
  }

  void client_done() {
    if (!stop_reading()) return;
    if (!configured_) throw Error::invalid_input("the call ended before its config message");
    client_closed_ = true;
    auto s = session();
    if (!s) return;
    end_speech();
    if (attached_) {
      s->detach(this);
      finish_when_written(grpc::Status::OK);
    } else {
      s->live().close(false);
    }
  }

  // Touched only on the strand (or written by configure before the session exists).
  bool configured_ = false;
  WireAudio audio_;
  int width_ = 0;
  int height_ = 0;
  int latency_ms_ = 0;
  std::string session_id_;
  bool attached_ = false;       // to a session that exists (not ours to end)
  bool client_closed_ = false;  // the client half-closed
  bool first_frame_ = true;     // the ticker thread's

  bool waiting_for_room_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::shared_ptr<HubSession> session_ LIPSYNC_GUARDED_BY(mutex_);
  std::shared_ptr<pipeline::SpeechInput> input_ LIPSYNC_GUARDED_BY(mutex_);  // the call's utterance
};

}  // namespace

LiveService::LiveService(const ServiceContext& context) : context_(context) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* LiveService::start(
    grpc::CallbackServerContext* rpc) {
  return start_bidi_call<LiveCall>(context_, *rpc, calls_, context_.live.max_sessions,
                                   "live sessions", "live.max_sessions");
}

}  // namespace lipsync::server
