// SessionHub: the one registry of live sessions, whoever made them. A session created by POST
// /v1/sessions lives until DELETE, shutdown, or live.session_idle_timeout_s with nothing using
// it (expire_idle, on the hub's reaper thread), and makes raw BGR frames, which each WebRTC
// viewer (a webrtc::WhepSender) encodes for its browser; one made by a gRPC Live call makes the
// frames that call asked for and ends with it. Either kind takes speech, text and interrupts from
// the HTTP API and from gRPC Live calls attached to it (LiveConfig.session_id), and hands every
// frame to its viewers and attached calls (fan-out). Speech comes in as utterances through the
// session's one inbox (LiveSession::open_utterance), one at a time whoever sends it, as fast as
// the session takes it (live.max_buffered_s): an upload is read only as fast as it is played once
// the buffer is full. Its events (SessionEvents) are numbered here, before any client sees them.
// Admission: live.max_sessions (shared with gRPC Live calls), webrtc.max_viewers.
// Thread contract: every method from any thread. Viewer negotiation and teardown block, so they
// run on the request workers; frames reach viewers on the ticker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/memory_trimmer.h"
#include "core/mutex.h"
#include "pipeline/live_session.h"
#include "server/service_context.h"
#include "server/session_events.h"
#include "webrtc/ice_servers.h"
#include "webrtc/webrtc_options.h"
#include "webrtc/whep_sender.h"

namespace lipsync::server {

class HubSession;

// One utterance coming into a session: the session's inbox (pipeline/live_session.h).
using SpeechInput = pipeline::SpeechInput;

struct SessionInfo {
  std::string id;
  std::string model;
  std::string origin;  // "http" or "grpc"
  std::string format;  // of its frames: "raw" (HTTP sessions), "jpeg", "png"
  int viewers = 0;
  std::string state;  // idle, speaking, fading
  std::int64_t frames = 0;
  std::int64_t late_frames = 0;
  std::int64_t speech_frames = 0;           // emitted while speaking
  std::int64_t speech_late_frames = 0;      // of those, late (their picture was not ready)
  std::optional<double> speech_latency_ms;  // of the last utterance
  int latency_ms = 0;
  int width = 0;
  int height = 0;
  double age_s = 0;
  // HTTP sessions under live.session_idle_timeout_s: the seconds before it ends unused (the
  // whole timeout while something uses it).
  std::optional<double> expires_in_s;
};

class SessionHub {
 public:
  SessionHub(const ServiceContext& context, webrtc::WebRtcOptions options);
  ~SessionHub();

  // What a new session is made with; HTTP sessions take the defaults.
  struct NewSession {
    std::string model;
    int start_frame = 0;
    pipeline::FrameEncoding encoding = pipeline::FrameEncoding::kNone;
    int latency_ms = 0;  // 0: the server's
    std::string origin = "http";
  };
  // Throws kNotFound (model), kResourceExhausted (live.max_sessions), kInvalidInput (start
  // frame), kUnavailable (stopping).
  std::shared_ptr<HubSession> create(const NewSession& spec);
  std::shared_ptr<HubSession> find(const std::string& id) const;
  // Ends the session at once (its viewers too); false when there is none. `reason`: what its
  // calls are told (HTTP DELETE: that it was deleted); none: it ended. `why`: session_ended's
  // reason (deleted, expired, shutdown, error, closed).
  bool remove(const std::string& id, std::optional<Error> reason = std::nullopt,
              const std::string& why = "closed");
  std::vector<SessionInfo> list() const;
  // Stops every session and viewer and refuses new ones (shutdown).
  void stop();
  // Refuses new sessions (kUnavailable: the instance is leaving); those there are go on.
  void drain();
  bool draining() const;
  // This instance's id: every session's id is `<instance>.<random>` (server.instance_id).
  const std::string& instance() const { return instance_; }
  // Ends the HTTP sessions nothing has used for live.session_idle_timeout_s (the reaper thread
  // calls it every second; tests may too). Returns how many ended.
  int expire_idle();

  int sessions() const;
  int viewers() const { return viewers_.load(); }
  const webrtc::WebRtcOptions& webrtc_options() const { return options_; }
  // The STUN and TURN servers of this server's viewers (webrtc.*): what clients get as
  // ice_servers, and what each viewer's ICE agent relays through.
  const webrtc::IceServers& ice_servers() const { return ice_servers_; }
  const ServiceContext& context() const { return context_; }

  // Work that blocks runs on these threads, never on the request workers that make the frames.
  // Control work (create, DELETE, a viewer's teardown) is quick and has its own threads, so it
  // never queues behind media work (WebRTC negotiation, text to speech, decoding an uploaded
  // file: up to seconds each), of which each session has at most kMaxMediaJobsPerSession.
  core::WorkerPool& control() { return control_; }
  core::WorkerPool& media() { return media_; }
  // Speech coming off the wire (an upload's raw PCM, a WebSocket's audio) is decoded here, a
  // piece at a time (core::ReadLane): off the HTTP I/O thread, and never behind media work.
  core::WorkerPool& wire() { return wire_; }
  // Speech was dropped: free memory goes back to the system soon (core::MemoryTrimmer).
  void trim_memory_soon() { trimmer_.request(); }

  // For HubSession.
  std::atomic<int>& viewer_count() { return viewers_; }
  void forget(const std::string& id);

 private:
  const ServiceContext context_;
  const webrtc::WebRtcOptions options_;
  const webrtc::IceServers ice_servers_;
  mutable core::Mutex mutex_;
  std::map<std::string, std::shared_ptr<HubSession>> sessions_ LIPSYNC_GUARDED_BY(mutex_);
  bool stopped_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool draining_ LIPSYNC_GUARDED_BY(mutex_) = false;
  const std::string instance_;
  std::atomic<int> viewers_{0};
  core::WorkerPool control_{2};
  core::WorkerPool media_{4};
  core::WorkerPool wire_{2};
  core::MemoryTrimmer trimmer_;  // after speech is dropped (interrupt, end)
  core::CondVar reaper_wake_;
  std::thread reaper_;  // expire_idle() every second, while live.session_idle_timeout_s > 0
};

// Media work of one session at once (offers being answered, text being spoken, files being
// decoded); more is refused (429) so that one session cannot fill the media threads.
inline constexpr int kMaxMediaJobsPerSession = 2;

class HubSession final : public pipeline::LiveSink,
                         public std::enable_shared_from_this<HubSession> {
 public:
  HubSession(SessionHub& hub, std::string id, std::string model, std::string origin,
             Registry::Lease lease);
  ~HubSession() override;
  void start(const pipeline::LiveSettings& settings);

  const std::string& id() const { return id_; }
  const std::string& origin() const { return origin_; }
  // A secret that lets its holder watch this session only (WHEP, its state), not drive it: what
  // a browser gets instead of server.api_token. It ends with the session.
  const std::string& viewer_token() const { return viewer_token_; }
  SessionInfo info() const;
  pipeline::LiveSession& live() { return *session_; }
  pipeline::FrameEncoding encoding() const { return encoding_; }
  int width() const { return width_; }
  int height() const { return height_; }

  // Another receiver of the frames and of the session's end (a gRPC Live call); false when the
  // session has ended. Its callbacks come as LiveSink's.
  bool attach(const std::shared_ptr<pipeline::LiveSink>& sink);
  void detach(const pipeline::LiveSink* sink);

  // Answers a viewer's offer (blocks up to webrtc.ice_timeout_ms: call from a worker). Returns
  // the viewer id and the answer. Throws kInvalidInput (bad offer), kResourceExhausted
  // (webrtc.max_viewers), kUnavailable (ended, gathering timed out).
  std::pair<std::string, std::string> add_viewer(const std::string& offer);
  // Ends one viewer; false when there is none.
  bool remove_viewer(const std::string& viewer);

  // One of the session's places for media work, held until the token is dropped; null when all
  // kMaxMediaJobsPerSession are taken.
  struct MediaSlot;
  std::shared_ptr<MediaSlot> media_slot();

  // Starts an utterance (LiveSession::open_utterance); null while another is still coming in
  // (409). `wanted` is called (any thread) when the input may add again after add() said no.
  // Throws kUnavailable once the session has ended.
  std::shared_ptr<SpeechInput> begin_speech(std::function<void()> wanted);
  // `again`: the same interrupt as the last one, cutting what came since (a WebSocket's message
  // is acted on as it arrives and again in its turn); it is not counted again.
  void interrupt(bool again = false);
  // The session_ended event's JSON once the session has ended (for a gRPC call's trailer).
  std::string ended_json() const;
  // A request used the session: its idle clock starts again.
  void touch();
  // Whether something uses the session now: a viewer, an attached call or socket, speech coming
  // in or playing.
  bool in_use() const;
  // Seconds since it was last used (touched, or in use when the reaper looked).
  double idle_s() const;
  // Ends the session and its viewers now. `reason`: what the attached calls are told (a DELETE);
  // none: the session ended normally. `why`: session_ended's reason.
  void close(std::optional<Error> reason = std::nullopt, const std::string& why = "closed");
  // Its events (playback, state, viewers, its end), numbered, for every transport.
  SessionEvents& events() { return events_; }
  bool ended() const;

  // LiveSink.
  void on_live_frame(pipeline::LiveFrame frame) override;
  void on_speech_wanted() override;
  void on_live_ended(const std::optional<Error>& error) override;

 private:
  void drop_viewer(const std::string& viewer);
  // Publishes viewer_joined or viewer_left with the count now.
  void viewers_changed(bool joined, int count) LIPSYNC_REQUIRES(mutex_);
  // Publishes session_ended (once: the first reason stands).
  void ended_event(const std::string& why, const std::optional<Error>& error)
      LIPSYNC_REQUIRES(mutex_);

  SessionHub& hub_;
  const std::string id_;
  const std::string model_;
  const std::string origin_;
  const std::string viewer_token_;
  pipeline::FrameEncoding encoding_ = pipeline::FrameEncoding::kNone;
  const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  Registry::Lease lease_;
  std::shared_ptr<pipeline::LiveSession> session_;
  int width_ = 0;
  int height_ = 0;

  // Held by on_live_frame from publishing a tick's events to handing its frame to the attached
  // calls, and by close() around publishing session_ended: a client that saw an event on the
  // event stream and then ended the session finds that event's frame on its gRPC call too.
  // Taken before mutex_.
  core::Mutex delivery_mutex_;
  mutable core::Mutex mutex_;
  std::map<std::string, std::shared_ptr<webrtc::WhepSender>> viewers_ LIPSYNC_GUARDED_BY(mutex_);
  std::vector<std::weak_ptr<pipeline::LiveSink>> sinks_ LIPSYNC_GUARDED_BY(mutex_);  // attached
  // Events of no tick (viewer_joined, viewer_left) published since the last frame: they go out
  // on the next one, before its own, for the attached calls.
  std::vector<pipeline::LiveEvent> between_ticks_ LIPSYNC_GUARDED_BY(mutex_);
  std::string ended_json_ LIPSYNC_GUARDED_BY(mutex_);  // the session_ended event, once published
  int next_viewer_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  bool ended_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::optional<Error> close_reason_ LIPSYNC_GUARDED_BY(mutex_);
  std::atomic<int> media_jobs_{0};
  std::atomic<std::int64_t> frames_{0};
  std::atomic<std::int64_t> late_{0};
  std::atomic<std::int64_t> speech_frames_{0};
  std::atomic<std::int64_t> speech_late_{0};
  std::atomic<int> state_{0};
  std::atomic<double> speech_latency_ms_{-1};
  std::atomic<std::chrono::steady_clock::rep> last_used_{0};  // steady_clock ticks
  // When the last interrupt reached the session (steady_clock ticks; 0: none waiting for its
  // playback_finished), for lipsync_live_interrupt_ack_seconds.
  std::atomic<std::chrono::steady_clock::rep> interrupted_at_{0};
  bool last_underrun_ = false;  // the ticker thread's
  SessionEvents events_;
};

}  // namespace lipsync::server
