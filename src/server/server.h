// Server: `lipsync serve`: the gRPC services (the old monolithic API, the streaming and live
// APIs, the standard health service, reflection), the HTTP endpoints (/healthz, /readyz,
// /metrics, the live-session API with WebRTC viewers, the demo page), the model registry and the
// request workers, started and stopped together.
//
// Draining (SIGTERM, POST /v1/admin/drain): see drain().
// Stopping (SIGINT, or the end of a drain): stop accepting; calls in progress get shutdown_grace_s
// to finish; the ones left are ended with UNAVAILABLE; then every scheduler thread stops and joins,
// the workers drain, and only then are the models freed. HTTP connections are closed at once, and
// the HTTP sessions and their viewers end with them.
// Thread contract: start() and stop() from one thread; the services run on their own threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "audio/audio_options.h"
#include "avatar/avatar.h"
#include "infer/infer_options.h"
#include "pipeline/frame_producer.h"
#include "pipeline/live_session.h"
#include "pipeline/scheduler.h"
#include "render/output_options.h"
#include "server/registry.h"
#include "server/server_options.h"
#include "webrtc/webrtc_options.h"

namespace lipsync::server {

// Everything a server is configured with (the keys `lipsync serve` honours).
struct ServerConfig {
  ServerOptions server;
  RegistryOptions registry;
  infer::InferOptions infer;
  avatar::AvatarOptions avatar;
  pipeline::SchedulerOptions scheduler;
  pipeline::PipelineOptions pipeline;
  pipeline::LiveOptions live;
  webrtc::WebRtcOptions webrtc;
  render::OutputOptions output;
  audio::AudioOptions audio;
  std::vector<ModelSpec> models;
};

// How busy an instance is (GET /v1/load, the lipsync_load gauges, /readyz).
struct LoadReport {
  std::string instance;
  int sessions = 0;  // live sessions, gRPC and HTTP
  int viewers = 0;   // WebRTC viewers
  int max_sessions = 0;
  double generator_busy = 0;  // generator time over the last 10 s, per loaded model, 0..1
  int late_frames = 0;        // live frames emitted late over the last 10 s
  double late_fraction = 0;   // of the live frames of the last 10 s
  // The largest of sessions / max_sessions, generator_busy and late_fraction.
  double load = 0;
  bool draining = false;
  // Ready for new sessions: a model loaded, not draining, load under server.load_threshold.
  bool accepting = false;
  std::string why;  // why not, when not
};

class Server {
 public:
  // Throws Error::Code::kInvalidInput naming the key for a bad option.
  explicit Server(ServerConfig config);
  ~Server();

  // Preloads models, binds the ports and starts serving. Throws Error::Code::kInvalidInput for
  // an address that cannot be bound (also one already in use), and whatever preloading a bad
  // model throws.
  void start();
  // See the header comment. Idempotent.
  void stop();
  // Starts a drain (SIGTERM, POST /v1/admin/drain; idempotent, any thread): /readyz says 503
  // and the gRPC health service NOT_SERVING at once; new sessions are refused (HTTP 503 with
  // Retry-After, gRPC UNAVAILABLE), and so are new unary and Stream calls; those in progress get
  // server.shutdown_grace_s, then UNAVAILABLE. Live sessions go on; stop() ends the ones left
  // (session_ended, shutdown). `lipsync serve` stops once drained() or after
  // server.drain_timeout_s.
  void drain();
  bool draining() const;
  // No live session is left (a drain is done).
  bool drained() const;
  LoadReport load() const;

  // The bound ports (useful with port 0); 0 for HTTP when it is off.
  int grpc_port() const;
  int http_port() const;
  Registry& registry();
  int active_streams() const;
  int active_live_sessions() const;
  // HTTP-created live sessions, and WebRTC viewers, now.
  int http_sessions() const;
  int webrtc_viewers() const;
  int active_calls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::server
