#include "server/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/json_text.h"
#include "core/memory_trimmer.h"
#include "core/mutex.h"
#include "core/worker_pool.h"
#include "pipeline/ticker.h"
#include "server/call_tracker.h"
#include "server/grpc_access_log.h"
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
// After a drain, how long the sessions' event streams and sockets may take to send their
// session_ended before the HTTP connections are closed.
constexpr auto kFlushAfterDrain = std::chrono::seconds(1);

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
  // A drain: started once (SIGTERM, POST /v1/admin/drain); whether one is on is the hub's (it
  // refuses new sessions under its own lock). The thread ends the request calls left after the
  // grace.
  core::Mutex drain_mutex;
  std::thread request_drain LIPSYNC_GUARDED_BY(drain_mutex);
  bool started = false;
  bool stopped = false;
  // Unloads idle models every second when registry.idle_unload_s is set.
  std::thread janitor;
  core::Mutex janitor_mutex;
  core::CondVar janitor_wake;
  bool janitor_stop LIPSYNC_GUARDED_BY(janitor_mutex) = false;

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
      const LoadReport l = load();
      return text_reply(l.accepting ? 200 : 503, l.accepting ? "ready\n" : l.why + "\n");
    }
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(), {}};
  }

  LoadReport load() const {
    LoadReport l;
    l.instance = hub->instance();
    l.sessions = live_sessions.load();
    l.viewers = webrtc::WhepSender::live_pipelines();
    l.max_sessions = config.live.max_sessions;
    const ServerMetrics::Recent recent = metrics.recent();
    const int models = registry->loaded_count();
    l.generator_busy =
        std::min(1.0, recent.generator_ms / (RecentSum::kSeconds * 1000.0 * std::max(1, models)));
    l.late_frames = static_cast<int>(recent.live_late);
    l.late_fraction = recent.live_frames > 0 ? recent.live_late / recent.live_frames : 0.0;
    l.load = std::max({static_cast<double>(l.sessions) / std::max(1, l.max_sessions),
                       l.generator_busy, l.late_fraction});
    l.draining = hub->draining();
    const double threshold = config.server.load_threshold;
    if (l.draining) {
      l.why = "draining";
    } else if (models == 0) {
      l.why = "no model loaded";
    } else if (l.load >= threshold) {
      char text[160];
      std::snprintf(text, sizeof text,
                    "overloaded: load %.2f is at or above server.load_threshold %.2f", l.load,
                    threshold);
      l.why = text;
    }
    l.accepting = l.why.empty();
    return l;
  }

  std::string load_json() const {
    const LoadReport l = load();
    nlohmann::json j = {{"instance", l.instance},
                        {"sessions", l.sessions},
                        {"viewers", l.viewers},
                        {"max_sessions", l.max_sessions},
                        {"generator_busy", l.generator_busy},
                        {"late_frames", l.late_frames},
                        {"late_fraction", l.late_fraction},
                        {"load", l.load},
                        {"load_threshold", config.server.load_threshold},
                        {"draining", l.draining},
                        {"accepting", l.accepting}};
    if (!l.accepting) j["why"] = l.why;
    return core::json_text(j);
  }

  // What one scrape of /metrics reads once, for every family of read_metrics to share.
  struct Scrape {
    LoadReport load;
    std::vector<ModelStatus> models;
    core::HeapUsage heap;
  };
  ReadMetrics<Scrape> read_metrics;

  std::string metrics_text() const {
    std::ostringstream out;
    out << metrics.render();
    read_metrics.render({load(), registry->status(), core::heap_usage()}, out);
    return out.str();
  }

  // The gauges on /metrics, and the counters their owners keep; once, in the constructor.
  void register_read_metrics() {
    using Samples = std::vector<MetricSample>;
    // One sample per model (every model, or only the loaded ones), labelled by its id.
    const auto per_model = [](bool loaded_only, auto value) {
      return [loaded_only, value](const Scrape& s, Samples& out) {
        for (const ModelStatus& m : s.models) {
          if (!loaded_only || m.loaded)
            out.push_back({"model=\"" + m.id + "\"", static_cast<double>(value(m))});
        }
      };
    };
    read_metrics
        .gauge("lipsync_load", "This instance's load, 0..1 (GET /v1/load).",
               [](const Scrape& s) { return s.load.load; })
        .gauge("lipsync_accepting", "1 while the instance takes new sessions (its /readyz).",
               [](const Scrape& s) { return s.load.accepting ? 1.0 : 0.0; })
        .gauge("lipsync_draining", "1 while the instance drains.",
               [](const Scrape& s) { return s.load.draining ? 1.0 : 0.0; })
        .gauge("lipsync_generator_busy_ratio",
               "Generator time over the last 10 s per loaded model, 0..1.",
               [](const Scrape& s) { return s.load.generator_busy; })
        .gauge("lipsync_live_late_frames_recent", "Live frames emitted late over the last 10 s.",
               [](const Scrape& s) { return s.load.late_frames; })
        .gauge("lipsync_live_max_sessions", "live.max_sessions.",
               [](const Scrape& s) { return s.load.max_sessions; })
        .gauge("lipsync_loaded_models", "Models loaded now.",
               [this](const Scrape&) { return registry->loaded_count(); })
        .gauge("lipsync_queue_depth", "Frames waiting for a generator.",
               [this](const Scrape&) { return static_cast<double>(registry->queue_depth()); })
        .gauge("lipsync_active_streams", "Open Stream calls.",
               [this](const Scrape&) { return stream->active_streams(); })
        .gauge("lipsync_live_sessions", "Live sessions now.",
               [this](const Scrape&) { return live->active_sessions(); })
        .gauge("lipsync_http_sessions", "Live sessions created over HTTP now.",
               [this](const Scrape&) { return hub->sessions(); })
        .gauge("lipsync_webrtc_viewers", "WebRTC viewers (sender pipelines) now.",
               [](const Scrape&) { return webrtc::WhepSender::live_pipelines(); })
        .gauge("lipsync_active_requests", "InferBatchComposite calls in progress.",
               [this](const Scrape&) { return monolithic->inflight(); })
        .family("lipsync_model_memory_bytes", "gauge",
                "Weights plus cached frames and crops per model.",
                per_model(false, [](const ModelStatus& m) { return m.memory_mb << 20; }))
        .family("lipsync_model_provider", "gauge",
                "The execution provider each loaded model's generator runs on, and its largest "
                "batch.",
                [](const Scrape& s, Samples& out) {
                  for (const ModelStatus& m : s.models) {
                    if (!m.loaded) continue;
                    out.push_back({"model=\"" + m.id + "\",provider=\"" + m.provider + "\"",
                                   static_cast<double>(m.max_batch)});
                  }
                })
        .family("lipsync_frames_skipped_total", "counter",
                "Live frames not run because they could not have been ready on their tick "
                "(overload), per loaded model.",
                per_model(true, [](const ModelStatus& m) { return m.skipped_frames; }))
        .family("lipsync_heap_bytes", "gauge",
                "The C library's heap: bytes allocated (in_use) and bytes it holds free (free); "
                "resident memory that grows while in_use does not is fragmentation.",
                [](const Scrape& s, Samples& out) {
                  out.push_back({"state=\"in_use\"", static_cast<double>(s.heap.in_use)});
                  out.push_back({"state=\"free\"", static_cast<double>(s.heap.free)});
                })
        .family("lipsync_frame_cache_bytes", "gauge",
                "Decoded template frames and crops held per model.",
                per_model(false, [](const ModelStatus& m) { return m.cache_bytes; }));
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
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> logs;
    logs.push_back(grpc_access_log());
    builder.experimental().SetInterceptorCreators(std::move(logs));
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
      core::MutexLock lock(janitor_mutex);
      while (!janitor_wake.wait_for(lock, std::chrono::seconds(1),
                                    [this]()
                                        LIPSYNC_REQUIRES(janitor_mutex) { return janitor_stop; })) {
        registry->unload_idle();
      }
    });
  }

  void stop_janitor() {
    if (!janitor.joinable()) return;
    {
      core::MutexLock lock(janitor_mutex);
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
  m.register_read_metrics();
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
  HttpApi::Hooks hooks;
  hooks.fallback = [impl = &m](const HttpRequest& r) { return impl->route(r); };
  hooks.drain = [this] { drain(); };
  hooks.load = [impl = &m] { return impl->load_json(); };
  m.api = std::make_unique<HttpApi>(*m.hub, context, std::move(hooks));
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

void Server::drain() {
  Impl& m = *impl_;
  core::MutexLock lock(m.drain_mutex);
  if (!m.started || m.stopped || m.hub->draining()) return;
  spdlog::info(
      "lipsync serve: draining: new sessions are refused; {} live sessions go on for at most {} "
      "s; requests and streams have {} s",
      m.live_sessions.load(), m.config.server.drain_timeout_s, m.config.server.shutdown_grace_s);
  m.hub->drain();
  m.calls.close_requests();
  if (auto* health = m.grpc->GetHealthCheckService()) health->SetServingStatus(false);
  m.request_drain = std::thread([&m] {
    const auto grace = std::chrono::seconds(m.config.server.shutdown_grace_s);
    if (!m.calls.wait_idle(std::chrono::steady_clock::now() + grace, CallTracker::Kind::kRequest)) {
      m.calls.end_all(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"),
                      CallTracker::Kind::kRequest);
    }
  });
}

bool Server::draining() const {
  return impl_->hub && impl_->hub->draining();
}

bool Server::drained() const {
  return impl_->live_sessions.load() == 0;
}

LoadReport Server::load() const {
  return impl_->load();
}

void Server::stop() {
  Impl& m = *impl_;
  {
    core::MutexLock lock(m.drain_mutex);
    if (!m.started || m.stopped) return;
    m.stopped = true;
  }
  m.stop_janitor();
  if (m.hub->draining()) {
    // The drain is over: the sessions left end now (session_ended, shutdown), and their event
    // streams and sockets get a moment to send it before the connections close.
    m.hub->stop();
    const auto until = std::chrono::steady_clock::now() + kFlushAfterDrain;
    while (m.http && m.http->open_streams() > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (m.http) m.http->stop();
  std::thread drain_thread;  // none can start now: drain() sees m.stopped
  {
    core::MutexLock lock(m.drain_mutex);
    drain_thread = std::move(m.request_drain);
  }
  if (drain_thread.joinable()) drain_thread.join();
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
