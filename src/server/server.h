// Server: `lipsync serve`: the gRPC services (the old monolithic API, the standard health
// service, reflection), the HTTP endpoints (/healthz, /readyz, /metrics), the model registry and
// the request workers, started and stopped together.
// Thread contract: start() and stop() from one thread; the services run on their own threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/registry.h"
#include "server/server_options.h"

namespace lipsync::server {

class Server {
 public:
  Server(ServerOptions options, std::vector<ModelSpec> models, RegistryOptions registry,
         infer::InferOptions infer, avatar::AvatarOptions avatar,
         pipeline::SchedulerOptions scheduler);
  ~Server();

  // Preloads models, binds the ports and starts serving. Throws Error::Code::kInvalidInput for
  // an address that cannot be bound, and whatever preloading a bad model throws.
  void start();
  // Stops accepting, gives in-flight calls shutdown_grace_s to finish, then cancels them.
  void stop();

  // The bound ports (useful with port 0).
  int grpc_port() const;
  int http_port() const;
  Registry& registry();
  int active_streams() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::server
