#include "support/test_server.h"

#include "support/test_models.h"

namespace lipsync::testing {

server::ServerConfig test_server_config(const std::filesystem::path& avatar) {
  server::ServerConfig config;
  config.server.grpc_address = "127.0.0.1:0";
  config.server.http_address = "127.0.0.1:0";
  config.server.shutdown_grace_s = 1;
  config.models = {{"demo", avatar, demo_models(), true}};
  config.infer = two_threads();
  return config;
}

std::unique_ptr<server::Server> start_test_server(
    const std::filesystem::path& avatar, const std::function<void(server::ServerConfig&)>& edit) {
  server::ServerConfig config = test_server_config(avatar);
  if (edit) edit(config);
  auto server = std::make_unique<server::Server>(config);
  server->start();
  return server;
}

}  // namespace lipsync::testing
