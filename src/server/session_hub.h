// SessionHub: the live sessions the HTTP API creates and drives, each with its WebRTC viewers.
// A session is created by POST /v1/sessions and lives until DELETE (or shutdown); it makes raw
// BGR frames, which each viewer (a webrtc::WhepSender) encodes for its browser. Speech comes in
// as utterances from uploads and text to speech, one at a time per session; it is fed to the
// session as fast as the session takes it (live.max_buffered_s), so an upload is read only as
// fast as it is played once the buffer is full.
// Admission: live.max_sessions (shared with gRPC Live calls), webrtc.max_viewers.
// Thread contract: every method from any thread. Viewer negotiation and teardown block, so they
// run on the request workers; frames reach viewers on the ticker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/live_session.h"
#include "server/service_context.h"
#include "webrtc/webrtc_options.h"
#include "webrtc/whep_sender.h"

namespace lipsync::server {

class HubSession;

// One utterance coming into a session (an upload, a text being spoken). Pieces are fed in order;
// end() completes the utterance once everything is in; `done` is told when it has all been
// handed to the session (or the session ended).
class SpeechInput {
 public:
  virtual ~SpeechInput() = default;
  // Returns whether more is wanted now; when not, `wanted` (set at begin) is called later.
  virtual bool add(std::vector<float> samples) = 0;
  // The utterance is complete (`keep_open`: more pieces follow in a later request).
  virtual void end(bool keep_open, std::function<void(std::optional<Error>)> done) = 0;
  // Drops what was not yet fed and frees the session for another utterance.
  virtual void abandon() = 0;
  // The input is over (interrupted, the session ended): stop producing.
  virtual bool closed() = 0;
};

struct SessionInfo {
  std::string id;
  std::string model;
  int viewers = 0;
  std::string state;  // idle, speaking, fading
  std::int64_t frames = 0;
  std::int64_t late_frames = 0;
  std::optional<double> speech_latency_ms;  // of the last utterance
  int latency_ms = 0;
  int width = 0;
  int height = 0;
  double age_s = 0;
};

class SessionHub {
 public:
  SessionHub(const ServiceContext& context, webrtc::WebRtcOptions options);
  ~SessionHub();

  // Throws kNotFound (model), kResourceExhausted (live.max_sessions), kInvalidInput (start
  // frame), kUnavailable (stopping).
  std::shared_ptr<HubSession> create(const std::string& model, int start_frame);
  std::shared_ptr<HubSession> find(const std::string& id) const;
  // Ends the session at once (its viewers too); false when there is none.
  bool remove(const std::string& id);
  std::vector<SessionInfo> list() const;
  // Stops every session and viewer and refuses new ones (shutdown).
  void stop();

  int sessions() const;
  int viewers() const { return viewers_.load(); }
  const webrtc::WebRtcOptions& webrtc_options() const { return options_; }
  const ServiceContext& context() const { return context_; }

  // Threads for work that blocks (viewer negotiation and teardown, text to speech), so that it
  // never holds up the request workers that make the frames.
  core::WorkerPool& blocking() { return blocking_; }

  // For HubSession.
  std::atomic<int>& viewer_count() { return viewers_; }
  void forget(const std::string& id);

 private:
  const ServiceContext context_;
  const webrtc::WebRtcOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<HubSession>> sessions_;  // guarded
  bool stopped_ = false;                                         // guarded
  std::atomic<int> viewers_{0};
  core::WorkerPool blocking_{4};
};

class HubSession final : public pipeline::LiveSink,
                         public std::enable_shared_from_this<HubSession> {
 public:
  HubSession(SessionHub& hub, std::string id, std::string model, Registry::Lease lease);
  ~HubSession() override;
  void start(const pipeline::LiveSettings& settings, int start_frame);

  const std::string& id() const { return id_; }
  SessionInfo info() const;

  // Answers a viewer's offer (blocks up to webrtc.ice_timeout_ms: call from a worker). Returns
  // the viewer id and the answer. Throws kInvalidInput (bad offer), kResourceExhausted
  // (webrtc.max_viewers), kUnavailable (ended, gathering timed out).
  std::pair<std::string, std::string> add_viewer(const std::string& offer);
  // Ends one viewer; false when there is none.
  bool remove_viewer(const std::string& viewer);

  // Starts an utterance; null when another is coming in (409). `wanted` is called (any thread)
  // when the input may add again after add() said no.
  std::shared_ptr<SpeechInput> begin_speech(std::function<void()> wanted);
  void interrupt();
  // Ends the session and its viewers now.
  void close();
  bool ended() const;

  // LiveSink.
  void on_live_frame(pipeline::LiveFrame frame) override;
  void on_speech_wanted() override;
  void on_live_ended(const std::optional<Error>& error) override;

  // For the speech inputs (see session_hub.cc).
  struct Input;
  void feed();

 private:
  void drop_viewer(const std::string& viewer);

  SessionHub& hub_;
  const std::string id_;
  const std::string model_;
  const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  Registry::Lease lease_;
  std::shared_ptr<pipeline::LiveSession> session_;
  core::Strand strand_;  // speech feeding, in order
  int width_ = 0;
  int height_ = 0;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<webrtc::WhepSender>> viewers_;  // guarded
  int next_viewer_ = 0;                                                 // guarded
  std::shared_ptr<Input> input_;  // the utterance coming in (guarded)
  bool ended_ = false;            // guarded
  std::atomic<std::int64_t> frames_{0};
  std::atomic<std::int64_t> late_{0};
  std::atomic<int> state_{0};
  std::atomic<double> speech_latency_ms_{-1};
  bool last_underrun_ = false;  // the ticker thread's
};

}  // namespace lipsync::server
