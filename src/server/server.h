// Server: `lipsync serve`: the gRPC services (the old monolithic API, the streaming and live
// APIs, the standard health service, reflection), the HTTP endpoints (/healthz, /readyz,
// /metrics, the live-session API with WebRTC viewers, the demo page), the model registry and the
// request workers, started and stopped together.
//
// Stopping (SIGINT/SIGTERM): stop accepting; calls in progress get shutdown_grace_s to finish;
// the ones left are ended with UNAVAILABLE; then every scheduler thread stops and joins, the
// workers drain, and only then are the models freed. HTTP connections are closed at once, and
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
