// `lipsync serve`: runs the server until SIGINT or SIGTERM, then stops it gracefully (exit 0).
// SIGTERM (or POST /v1/admin/drain) drains first: new sessions go elsewhere, the live ones go on
// until they end or server.drain_timeout_s passes; SIGINT, or a second SIGTERM, stops at once.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/demo_assets.h"
#include "core/json_text.h"
#include "core/task_arena.h"
#include "core/thread_budget.h"
#include "server/server.h"

namespace lipsync::cli {
namespace {

struct ServeArgs {
  std::string config;
  std::string grpc;
  std::string http;
  std::optional<int> threads;
};

// Returns when the server should stop: SIGINT; SIGTERM during a drain; or a drain (begun by
// SIGTERM or POST /v1/admin/drain) that is done or has run for `drain_timeout_s`.
void wait_for_the_end(server::Server& server, const sigset_t& signals, int drain_timeout_s) {
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> drain_deadline;
  for (;;) {
    const timespec poll{0, 100'000'000};  // the drain is watched ten times a second
    const int received = sigtimedwait(&signals, nullptr, &poll);
    if (received == SIGINT || (received == SIGTERM && drain_deadline)) {
      spdlog::info("lipsync serve: signal {}, stopping", received);
      return;
    }
    if (received == SIGTERM) server.drain();
    if (!server.draining()) continue;
    if (!drain_deadline) drain_deadline = Clock::now() + std::chrono::seconds(drain_timeout_s);
    if (server.drained()) {
      spdlog::info("lipsync serve: drained: no live session is left, stopping");
      return;
    }
    if (Clock::now() >= *drain_deadline) {
      spdlog::info("lipsync serve: drain_timeout_s ({} s) passed, ending the sessions left",
                   drain_timeout_s);
      return;
    }
  }
}

void run_serve(const ServeArgs& args) {
  // Signals go to sigwait below, not to whichever thread the kernel picks: block them before
  // any thread exists, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ConfigFile config = args.config.empty() ? ConfigFile{} : load_config_file(args.config);
  if (!args.grpc.empty()) config.server.grpc_address = args.grpc;
  if (!args.http.empty()) config.server.http_address = args.http == "off" ? "" : args.http;
  if (args.threads) config.cpu.threads = *args.threads;
  config.server.validate();                     // the flags too
  core::set_thread_budget(config.cpu.threads);  // before any pool is made
  spdlog::set_level(spdlog::level::from_str(config.server.log_level));
  if (config.server.arena_threads > 0)
    core::TaskArena::configure_global(config.server.arena_threads);
  if (config.models.empty()) {
    config.models.push_back({"demo", demo_avatar_dir(), demo_models_dir(), true});
  }
  server::Server server(config.server_config());
  server.start();
  std::cout << core::json_text(
                   {{"grpc_port", server.grpc_port()}, {"http_port", server.http_port()}})
            << std::endl;
  wait_for_the_end(server, signals, config.server.drain_timeout_s);
  server.stop();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run the gRPC server (old monolithic API, health, reflection) and HTTP endpoints");
  cmd->add_option("--config", args->config, "YAML config file (keys: see README)");
  cmd->add_option("--grpc", args->grpc, "gRPC address host:port (default 127.0.0.1:50051)");
  cmd->add_option("--http", args->http, "HTTP address host:port, or off (default 127.0.0.1:8080)");
  cmd->add_option("--threads", args->threads,
                  "Cores to use: the thread budget every pool at 0 takes (cpu.threads; default: "
                  "the CPUs this process may run on)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace lipsync::cli
