#include "server/server.h"

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
#include "core/task_arena.h"
#include "core/worker_pool.h"
#include "server/http_server.h"
#include "server/monolithic_service.h"
#include "server/server_metrics.h"
#include "server/stream_service.h"

namespace lipsync::server {

void ServerOptions::validate() const {
  require_in_range("server.max_message_mb", max_message_mb, 1, 2047);
  require_in_range("server.max_request_frames", max_request_frames, 1, 10000);
  require_in_range("server.max_inflight_requests", max_inflight_requests, 1, 100000);
  require_in_range("server.workers", workers, 0, 1024);
  require_in_range("server.arena_threads", arena_threads, 0, 1024);
  require_in_range("render.jpeg_quality", jpeg_quality, 1, 100);
  require_in_range("server.shutdown_grace_s", shutdown_grace_s, 0, 3600);
  if (grpc_address.empty()) throw Error::invalid_input("server.grpc: empty; expected host:port");
  if (spdlog::level::from_str(log_level) == spdlog::level::off && log_level != "off") {
    throw Error::invalid_input("log_level: '" + log_level +
                               "' is unknown; expected trace, debug, info, warn, error or off");
  }
}

int ServerOptions::resolved_workers() const {
  return workers > 0 ? workers : core::hardware_threads();
}

struct Server::Impl {
  ServerOptions options;
  RegistryOptions registry_options;
  ServerMetrics metrics;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<core::WorkerPool> workers;
  std::unique_ptr<MonolithicService> monolithic;
  std::unique_ptr<StreamService> stream;
  std::unique_ptr<grpc::Server> grpc;
  std::unique_ptr<HttpServer> http;
  int grpc_port = 0;
  bool started = false;
  // Unloads idle models every second when registry.idle_unload_s is set.
  std::thread janitor;
  std::mutex janitor_mutex;
  std::condition_variable janitor_wake;
  bool janitor_stop = false;

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
    out << "# HELP lipsync_model_memory_bytes Weights plus cached frames and crops per model.\n"
           "# TYPE lipsync_model_memory_bytes gauge\n";
    const auto models = registry->status();
    for (const auto& s : models) {
      out << "lipsync_model_memory_bytes{model=\"" << s.id << "\"} " << (s.memory_mb << 20) << "\n";
    }
    out << "# HELP lipsync_frame_cache_bytes Decoded template frames and crops held per model.\n"
           "# TYPE lipsync_frame_cache_bytes gauge\n";
    for (const auto& s : models) {
      out << "lipsync_frame_cache_bytes{model=\"" << s.id << "\"} " << s.cache_bytes << "\n";
    }
    return out.str();
  }
};

Server::Server(ServerOptions options, std::vector<ModelSpec> models, RegistryOptions registry,
               infer::InferOptions infer, avatar::AvatarOptions avatar,
               pipeline::SchedulerOptions scheduler)
    : impl_(std::make_unique<Impl>()) {
  options.validate();
  impl_->options = options;
  impl_->registry_options = registry;
  ServerMetrics* metrics = &impl_->metrics;
  impl_->registry = std::make_unique<Registry>(std::move(models), registry, std::move(infer),
                                               avatar, scheduler, [metrics](int size, double ms) {
                                                 metrics->observe_batch(size);
                                                 metrics->observe_ms("generator", ms);
                                               });
  impl_->workers = std::make_unique<core::WorkerPool>(options.resolved_workers());
  impl_->monolithic = std::make_unique<MonolithicService>(*impl_->registry, *impl_->workers,
                                                          impl_->options, impl_->metrics);
  impl_->stream = std::make_unique<StreamService>(*impl_->registry, *impl_->workers, impl_->options,
                                                  impl_->metrics);
}

Server::~Server() {
  stop();
}

void Server::start() {
  impl_->registry->preload();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.grpc_address, grpc::InsecureServerCredentials(),
                           &impl_->grpc_port);
  const int max_bytes = impl_->options.max_message_mb << 20;
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  builder.RegisterService(impl_->monolithic.get());
  builder.RegisterService(impl_->stream.get());
  impl_->grpc = builder.BuildAndStart();
  if (!impl_->grpc || impl_->grpc_port == 0) {
    throw Error::invalid_input("server.grpc: cannot listen on '" + impl_->options.grpc_address +
                               "'");
  }
  if (!impl_->options.http_address.empty()) {
    Impl* impl = impl_.get();
    impl_->http = std::make_unique<HttpServer>(
        impl_->options.http_address, [impl](const std::string&, const std::string& target) {
          if (target == "/healthz") return HttpReply{200, "text/plain; charset=utf-8", "ok\n"};
          if (target == "/readyz") {
            const bool ready = impl->registry->loaded_count() > 0;
            return HttpReply{ready ? 200 : 503, "text/plain; charset=utf-8",
                             ready ? "ready\n" : "no model loaded\n"};
          }
          if (target == "/metrics") {
            return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", impl->metrics_text()};
          }
          return HttpReply{404, "text/plain; charset=utf-8", "not found\n"};
        });
  }
  if (impl_->registry_options.idle_unload_s > 0) {
    Impl* impl = impl_.get();
    impl_->janitor = std::thread([impl] {
      std::unique_lock lock(impl->janitor_mutex);
      while (!impl->janitor_wake.wait_for(lock, std::chrono::seconds(1),
                                          [impl] { return impl->janitor_stop; })) {
        impl->registry->unload_idle();
      }
    });
  }
  impl_->started = true;
  spdlog::info("lipsync serve: gRPC on port {}, HTTP on port {}", impl_->grpc_port, http_port());
}

void Server::stop() {
  if (!impl_->started) return;
  impl_->started = false;
  if (impl_->janitor.joinable()) {
    {
      std::lock_guard lock(impl_->janitor_mutex);
      impl_->janitor_stop = true;
    }
    impl_->janitor_wake.notify_all();
    impl_->janitor.join();
  }
  if (impl_->http) impl_->http->stop();
  // In-flight calls get the grace period, then are cancelled.
  impl_->grpc->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(impl_->options.shutdown_grace_s));
  impl_->grpc->Wait();
  spdlog::info("lipsync serve: stopped");
}

int Server::grpc_port() const {
  return impl_->grpc_port;
}
int Server::active_streams() const {
  return impl_->stream->active_streams();
}
int Server::http_port() const {
  return impl_->http ? impl_->http->port() : 0;
}
Registry& Server::registry() {
  return *impl_->registry;
}

}  // namespace lipsync::server
