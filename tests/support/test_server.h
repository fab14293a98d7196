// The real server the server tests talk to, started one way for all of them.
// Thread contract: call from the test's thread.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>

#include "server/server.h"

namespace lipsync::testing {

// A server config for tests: gRPC and HTTP on loopback ports the system picks, the demo models as
// "demo" (preloaded) on the avatar folder `avatar`, two inference threads, and one second of
// shutdown grace.
server::ServerConfig test_server_config(const std::filesystem::path& avatar);

// A started server of test_server_config(avatar), after `edit` (when given) has changed the config.
std::unique_ptr<server::Server> start_test_server(
    const std::filesystem::path& avatar,
    const std::function<void(server::ServerConfig&)>& edit = {});

}  // namespace lipsync::testing
