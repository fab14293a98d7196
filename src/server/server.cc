#include "server/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/memory_trimmer.h"
#include "core/worker_pool.h"
#include "pipeline/ticker.h"
#include "server/call_tracker.h"
#include "server/http_api.h"
#include "server/http_server.h"
#include "server/lipsync_service.h"
#include "server/live_service.h"
#include "server/monolithic_service.h"
#include "server/server_metrics.h"
#include "server/session_hub.h"
#include "server/stream_service.h"
#include "webrtc/whep_sender.h"

namespace lipsync::server {
namespace {

// How long gRPC's own shutdown may take after we ended every call ourselves.
constexpr auto kGrpcShutdownSlack = std::chrono::seconds(1);

HttpReply text_reply(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body), {}};
}

}  // namespace

// Members are declared in the order they are built; they are destroyed in reverse, and stop()
// tears them down explicitly in the order the header describes.
struct Server::Impl {
  ServerConfig config;
  ServerMetrics metrics;
  CallTracker calls;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<core::WorkerPool> workers;
  std::unique_ptr<pipeline::Ticker> ticker;  // the live sessions' clock
  std::atomic<int> live_sessions{0};         // gRPC and HTTP (live.max_sessions)
  std::unique_ptr<SessionHub> hub;           // HTTP-created sessions and their viewers
  std::unique_ptr<HttpApi> api;
  std::unique_ptr<MonolithicService> monolithic;
  std::unique_ptr<StreamService> stream;
  std::unique_ptr<LiveService> live;
  std::unique_ptr<LipSyncService> lipsync;
  std::unique_ptr<grpc::Server> grpc;
  std::unique_ptr<HttpServer> http;
  int grpc_port = 0;
  bool started = false;
  bool stopped = false;
  // Unloads idle models every second when registry.idle_unload_s is set.
  std::thread janitor;
  std::mutex janitor_mutex;
  std::condition_variable janitor_wake;
  bool janitor_stop = false;

  HttpReply route(const HttpRequest& request) const {
    const bool known =
        request.path == "/healthz" || request.path == "/readyz" || request.path == "/metrics";
    if (!known) return text_reply(404, "not found\n");
    if (request.method != "GET" && request.method != "HEAD") {
      HttpReply reply = text_reply(405, "method not allowed; use GET\n");
      reply.headers.emplace_back("Allow", "GET, HEAD");
      return reply;
    }
    if (request.path == "/healthz") return text_reply(200, "ok\n");
    if (request.path == "/readyz") {
      const bool ready = registry->loaded_count() > 0;
      return text_reply(ready ? 200 : 503, ready ? "ready\n" : "no model loaded\n");
    }
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(), {}};
  }

  std::string metrics_text() const {
    std::ostringstream out;
    out << metrics.render();
    out << "# HELP lipsync_loaded_models Models loaded now.\n# TYPE lipsync_loaded_models gauge\n"
        << "lipsync_loaded_models " << registry->loaded_count() << "\n";
    out << "# HELP lipsync_queue_depth Frames waiting for a generator.\n"
           "# TYPE lipsync_queue_depth gauge\nlipsync_queue_depth "
        << registry->queue_depth() << "\n";
    out << "# HELP lipsync_active_streams Open Stream calls.\n"
           "# TYPE lipsync_active_streams gauge\nlipsync_active_streams "
        << stream->active_streams() << "\n";
    out << "# HELP lipsync_live_sessions Live sessions now.\n"
           "# TYPE lipsync_live_sessions gauge\nlipsync_live_sessions "
        << live->active_sessions() << "\n";
    out << "# HELP lipsync_http_sessions Live sessions created over HTTP now.\n"
           "# TYPE lipsync_http_sessions gauge\nlipsync_http_sessions "
        << hub->sessions() << "\n";
    out << "# HELP lipsync_webrtc_viewers WebRTC viewers (sender pipelines) now.\n"
           "# TYPE lipsync_webrtc_viewers gauge\nlipsync_webrtc_viewers "
        << webrtc::WhepSender::live_pipelines() << "\n";
    out << "# HELP lipsync_active_requests InferBatchComposite calls in progress.\n"
           "# TYPE lipsync_active_requests gauge\nlipsync_active_requests "
        << monolithic->inflight() << "\n";
    out << "# HELP lipsync_model_memory_bytes Weights plus cached frames and crops per model.\n"
           "# TYPE lipsync_model_memory_bytes gauge\n";
    const auto models = registry->status();
    for (const auto& s : models) {
      out << "lipsync_model_memory_bytes{model=\"" << s.id << "\"} " << (s.memory_mb << 20) << "\n";
    }
    out << "# HELP lipsync_model_provider The execution provider each loaded model's generator "
           "runs on, and its largest batch.\n# TYPE lipsync_model_provider gauge\n";
    for (const auto& s : models) {
      if (!s.loaded) continue;
      out << "lipsync_model_provider{model=\"" << s.id << "\",provider=\"" << s.provider << "\"} "
          << s.max_batch << "\n";
    }
    out << "# HELP lipsync_frames_skipped_total Live frames not run because they could not have "
           "been ready on their tick (overload), per loaded model.\n"
           "# TYPE lipsync_frames_skipped_total counter\n";
    for (const auto& s : models) {
      if (!s.loaded) continue;
      out << "lipsync_frames_skipped_total{model=\"" << s.id << "\"} " << s.skipped_frames << "\n";
    }
    const core::HeapUsage heap = core::heap_usage();
    out << "# HELP lipsync_heap_bytes The C library's heap: bytes allocated (in_use) and bytes "
           "it holds free (free); resident memory that grows while in_use does not is "
           "fragmentation.\n# TYPE lipsync_heap_bytes gauge\n"
        << "lipsync_heap_bytes{state=\"in_use\"} " << heap.in_use << "\n"
        << "lipsync_heap_bytes{state=\"free\"} " << heap.free << "\n";
    out << "# HELP lipsync_frame_cache_bytes Decoded template frames and crops held per model.\n"
           "# TYPE lipsync_frame_cache_bytes gauge\n";
    for (const auto& s : models) {
      out << "lipsync_frame_cache_bytes{model=\"" << s.id << "\"} " << s.cache_bytes << "\n";
    }
    return out.str();
  }

  void start_grpc() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    // A second server must not quietly share the port (gRPC sets SO_REUSEPORT by default).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(config.server.grpc_address, grpc::InsecureServerCredentials(),
                             &grpc_port);
    const int max_bytes = config.server.max_message_mb << 20;
    builder.SetMaxReceiveMessageSize(max_bytes);
    builder.SetMaxSendMessageSize(max_bytes);
    builder.RegisterService(monolithic.get());
    builder.RegisterService(lipsync.get());
    grpc = builder.BuildAndStart();
    if (!grpc || grpc_port == 0) {
      if (grpc) grpc->Shutdown();
      grpc.reset();
      throw Error::invalid_input("server.grpc: cannot listen on '" + config.server.grpc_address +
                                 "' (is the port in use?)");
    }
  }

  void start_http() {
    if (config.server.http_off()) return;
    HttpLimits limits;
    limits.timeout_s = config.server.http_timeout_s;
    limits.max_body_bytes = static_cast<std::size_t>(config.server.http_max_body_kb) << 10;
    limits.max_connections = config.server.http_max_connections;
    limits.max_connections_per_client = config.server.http_max_connections_per_client;
    limits.probe_paths = {"/healthz", "/readyz"};
    http = std::make_unique<HttpServer>(config.server.http_address, limits, api->routes());
  }

  void start_janitor() {
    if (config.registry.idle_unload_s <= 0) return;
    janitor = std::thread([this] {
      std::unique_lock lock(janitor_mutex);
      while (
          !janitor_wake.wait_for(lock, std::chrono::seconds(1), [this] { return janitor_stop; })) {
        registry->unload_idle();
      }
    });
  }

  void stop_janitor() {
    if (!janitor.joinable()) return;
    {
      std::lock_guard lock(janitor_mutex);
      janitor_stop = true;
    }
    janitor_wake.notify_all();
    janitor.join();
  }

  // Waits the grace period for the calls in progress, then ends the rest with UNAVAILABLE.
  void end_calls() {
    const auto grace = std::chrono::seconds(config.server.shutdown_grace_s);
    calls.close();
    std::thread grpc_shutdown([this, grace] {
      grpc->Shutdown(std::chrono::system_clock::now() + grace + kGrpcShutdownSlack);
    });
    if (!calls.wait_idle(std::chrono::steady_clock::now() + grace)) {
      spdlog::info("lipsync serve: ending {} calls still running after {} s", calls.active(),
                   config.server.shutdown_grace_s);
      calls.end_all(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
    }
    grpc_shutdown.join();
    grpc->Wait();
  }
};

Server::Server(ServerConfig config) : impl_(std::make_unique<Impl>()) {
  config.server.validate();
  config.registry.validate();
  config.infer.validate();
  config.avatar.validate();
  config.scheduler.validate();
  config.pipeline.validate();
  config.output.validate();
  config.audio.validate();
  config.live.validate();
  config.webrtc.validate();
  Impl& m = *impl_;
  m.config = std::move(config);
  ServerMetrics* metrics = &m.metrics;
  m.registry = std::make_unique<Registry>(m.config.models, m.config.registry, m.config.infer,
                                          m.config.avatar, m.config.scheduler,
                                          [metrics](int size, double ms) {
                                            metrics->observe_batch(size);
                                            metrics->observe_ms("generator", ms);
                                          });
  m.workers = std::make_unique<core::WorkerPool>(m.config.server.resolved_workers());
  m.ticker = std::make_unique<pipeline::Ticker>();
  ServiceContext context;
  context.registry = m.registry.get();
  context.workers = m.workers.get();
  context.metrics = &m.metrics;
  context.calls = &m.calls;
  context.ticker = m.ticker.get();
  context.live_sessions = &m.live_sessions;
  context.idle_pictures = std::make_shared<pipeline::IdlePictureCache>(
      static_cast<std::size_t>(m.config.live.idle_cache_mb) << 20);
  context.server = m.config.server;
  context.live = m.config.live;
  context.output = m.config.output;
  context.audio = m.config.audio;
  context.pipeline = m.config.pipeline;
  m.hub = std::make_unique<SessionHub>(context, m.config.webrtc);
  context.hub = m.hub.get();
  m.monolithic = std::make_unique<MonolithicService>(context);
  m.stream = std::make_unique<StreamService>(context);
  m.live = std::make_unique<LiveService>(context);
  m.lipsync = std::make_unique<LipSyncService>(*m.stream, *m.live);
  m.api = std::make_unique<HttpApi>(*m.hub, context,
                                    [impl = &m](const HttpRequest& r) { return impl->route(r); });
}

Server::~Server() {
  stop();
}

void Server::start() {
  Impl& m = *impl_;
  m.registry->preload();
  m.start_grpc();
  m.start_http();
  m.start_janitor();
  m.started = true;
  if (m.http) {
    spdlog::info("lipsync serve: gRPC on port {}, HTTP on port {} (the demo page: http://{}:{}/)",
                 m.grpc_port, m.http->port(),
                 parse_listen_address(m.config.server.http_address, "server.http").host,
                 m.http->port());
  } else {
    spdlog::info("lipsync serve: gRPC on port {}, HTTP off", m.grpc_port);
  }
}

void Server::stop() {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  m.stop_janitor();
  if (m.http) m.http->stop();
  m.end_calls();
  m.hub->stop();  // the HTTP sessions (the gRPC ones ended with their calls)
  // No call is left: stop the live clock (its sessions post to the workers), stop the generators
  // (each joins its threads; a running batch finishes), let the workers drain what the last
  // frames posted, and only then free anything.
  m.ticker->stop();
  m.registry->stop_all();
  m.workers.reset();
  spdlog::info("lipsync serve: stopped");
}

int Server::grpc_port() const {
  return impl_->grpc_port;
}
int Server::active_streams() const {
  return impl_->stream->active_streams();
}
int Server::active_live_sessions() const {
  return impl_->live->active_sessions();
}
int Server::http_sessions() const {
  return impl_->hub->sessions();
}
int Server::webrtc_viewers() const {
  return webrtc::WhepSender::live_pipelines();
}
int Server::active_calls() const {
  return impl_->calls.active();
}
int Server::http_port() const {
  return impl_->http ? impl_->http->port() : 0;
}
Registry& Server::registry() {
  return *impl_->registry;
}

}  // namespace lipsync::server
