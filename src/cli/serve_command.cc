// `lipsync serve`: runs the server until SIGINT or SIGTERM, then stops it gracefully (exit 0).
// SIGTERM (or POST /v1/admin/drain) drains first: new sessions go elsewhere, the live ones go on
// until they end or server.drain_timeout_s passes; SIGINT, or a second SIGTERM, stops at once.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "avatar/avatar.h"
#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/demo_assets.h"
#include "cli/options_flags.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/task_arena.h"
#include "core/text.h"
#include "core/thread_budget.h"
#include "infer/models.h"
#include "server/log_format.h"
#include "server/server.h"

namespace lipsync::cli {
namespace {

struct ServeArgs {
  CommandFlags flags{CommandFlags::kServe};  // --config, --threads
  std::optional<std::string> grpc;
  std::optional<std::string> http;
  std::string models;  // --models, --avatar: one model without a config file
  std::string avatar;
  std::string model_id = "default";
};

// Whether `path` is a folder holding `file`; throws Error::Code::kNotFound naming `key`, the path
// and what is missing.
void require_file(const std::string& key, const std::filesystem::path& folder, const char* file,
                  const char* what) {
  if (!std::filesystem::is_directory(folder)) {
    throw Error::not_found(key + ": " + core::quote(folder.string(), 200) + " is not a folder");
  }
  if (!std::filesystem::exists(folder / file)) {
    throw Error::not_found(key + ": " + core::quote(folder.string(), 200) + " has no " + file +
                           " (" + what + ")");
  }
}

// Every model's folders hold what loading it needs, checked before the server listens: a typo in
// a config or a flag is an error naming it now, not a failure at a model's first request (a
// model loaded on first use included).
void check_model_folders(const std::vector<server::ModelSpec>& models, bool from_flags) {
  for (const server::ModelSpec& m : models) {
    const std::string prefix = from_flags ? "--" : "avatars." + m.id + ".";
    const char* avatar_hint = "an avatar folder: lipsync avatar import";
    const char* models_hint = "a model folder: lipsync models import";
    require_file(prefix + "avatar", m.avatar, avatar::kAvatarFileName, avatar_hint);
    require_file(prefix + "models", m.models, infer::kEncoderFileName, models_hint);
    require_file(prefix + "models", m.models, infer::kGeneratorFileName, models_hint);
  }
}

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

  ConfigFile config = args.flags.config();  // sets the thread budget: before any pool is made
  if (args.grpc) config.server.grpc_address = *args.grpc;
  if (args.http) config.server.http_address = *args.http;  // "off": ServerOptions::http_off()
  config.server.validate();                                // the address flags too
  spdlog::set_level(spdlog::level::from_str(config.server.log_level));
  spdlog::set_formatter(server::make_log_formatter(config.server.log_format));
  if (config.server.arena_threads > 0)
    core::TaskArena::configure_global(config.server.arena_threads);
  if (args.models.empty() != args.avatar.empty()) {
    throw Error::invalid_input(std::string(args.models.empty() ? "--avatar" : "--models") +
                               " needs " + (args.models.empty() ? "--models" : "--avatar") +
                               " too: a model is its model folder and its avatar");
  }
  check_model_folders(config.models, false);
  if (!args.models.empty()) {
    for (const server::ModelSpec& m : config.models) {
      if (m.id == args.model_id) {
        throw Error::invalid_input("--model-id " + core::quote(args.model_id) +
                                   ": the config has a model of that id already");
      }
    }
    const server::ModelSpec flagged{args.model_id, args.avatar, args.models, true};
    check_model_folders({flagged}, true);
    config.models.push_back(flagged);
  }
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
  args->flags.add_to(*cmd);
  cmd->add_option("--models", args->models,
                  "Serve this model folder (with --avatar), without a config file");
  cmd->add_option("--avatar", args->avatar, "The avatar folder of --models");
  cmd->add_option("--model-id", args->model_id, "The id clients name --models by")
      ->capture_default_str()
      ->check([](const std::string& id) {
        return id.empty() || id.size() > 64 ||
                       id.find_first_not_of(
                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "0123456789._-") != std::string::npos
                   ? std::string("expected 1 to 64 of letters, digits, '.', '_' and '-'")
                   : std::string();
      });
  add_key_flag(*cmd, "--grpc", args->grpc, "server.grpc");
  add_key_flag(*cmd, "--http", args->http, "server.http");
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace lipsync::cli
