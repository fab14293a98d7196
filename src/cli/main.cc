// lipsync: the command-line front end. Parses arguments, runs one subcommand, maps errors to
// exit codes (core/error.h: exit_code_for) and prints them on stderr.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/memory_trimmer.h"
#include "core/text.h"
#include "infer/execution_providers.h"

namespace {

// The subcommand the parse reached last ("render" in `lipsync render --audo x`), or `app`.
CLI::App* deepest(CLI::App* app) {
  for (;;) {
    const auto parsed = app->get_subcommands();
    if (parsed.empty()) return app;
    app = parsed.back();
  }
}

// The command line as far as `cmd`: "lipsync models import".
std::string command_path(const CLI::App* cmd) {
  std::string path;
  for (const CLI::App* c = cmd; c != nullptr; c = c->get_parent()) {
    path =
        (c->get_parent() == nullptr ? "lipsync" : c->get_name()) + (path.empty() ? "" : " ") + path;
  }
  return path;
}

std::vector<std::string> subcommand_names(const CLI::App* cmd) {
  std::vector<std::string> names;
  for (const CLI::App* sub : cmd->get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  return names;
}

// "; did you mean 'x'?" when `word` looks like a typo of one of `candidates`.
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string near = lipsync::core::nearest_word(word, candidates);
  return near.empty() ? "" : "; did you mean '" + near + "'?";
}

// What a command line CLI11 refused got wrong, in words: an unknown command or option named,
// with the nearest one it may have meant.
std::string explain(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  // An unknown command word (`lipsync rendr`, `lipsync models improt`): CLI11 only says a
  // subcommand is required.
  const CLI::App* at = &app;
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    const std::vector<std::string> names = subcommand_names(at);
    if (names.empty()) break;  // a command's own arguments from here
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : at->get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->check_name(argv[i])) next = sub;
    }
    if (next == nullptr) {
      const std::string word = argv[i];
      const std::string prefix = at == &app ? "" : command_path(at) + ": ";
      return prefix + "unknown command " + lipsync::core::quote(word) + suggestion(word, names) +
             " (" + command_path(at) + " --help lists them)";
    }
    at = next;
  }
  CLI::App* cmd = deepest(&app);
  const std::string path = command_path(cmd);
  const std::string where = cmd == &app ? "" : path + ": ";
  // Words the command did not take: the likeliest cause, whatever CLI11 found first (a
  // misspelt --unet leaves --unet missing).
  {
    for (const std::string& extra : cmd->remaining()) {
      if (extra.rfind("-", 0) == 0) {
        const std::string flag = extra.substr(0, extra.find('='));
        std::vector<std::string> flags;
        for (const CLI::Option* o : cmd->get_options()) {
          for (const std::string& name : o->get_lnames()) flags.push_back("--" + name);
          for (const std::string& name : o->get_snames()) flags.push_back("-" + name);
        }
        return where + "unknown option " + lipsync::core::quote(flag) + suggestion(flag, flags) +
               " (" + path + " --help lists them)";
      }
      if (!cmd->get_subcommands([](const CLI::App*) { return true; }).empty()) {
        return where + "unknown command " + lipsync::core::quote(extra) +
               suggestion(extra, subcommand_names(cmd)) + " (" + path + " --help lists them)";
      }
      return where + "unexpected argument " + lipsync::core::quote(extra) + " (" + path +
             " --help)";
    }
  }
  return where + e.what() + " (" + path + " --help)";
}

}  // namespace

int main(int argc, char** argv) {
  lipsync::core::tune_heap();               // before any thread or large block
  lipsync::infer::disable_ort_telemetry();  // before any thread: it sets an environment variable
  CLI::App app{"lipsync: audio-driven lip-sync video (SyncTalk_2D models through ONNX Runtime)"};
  // Logs go to stderr: stdout is the commands' JSON lines.
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  app.require_subcommand(1);
  app.set_version_flag("--version", "lipsync 0.1.0");
  // In the help's order: the main jobs, then setting up models and avatars, then the tools that
  // show or time one stage of the pipeline.
  lipsync::cli::add_render_commands(app);
  lipsync::cli::add_serve_command(app);
  lipsync::cli::add_client_commands(app);
  lipsync::cli::add_model_commands(app);
  lipsync::cli::add_avatar_commands(app);
  lipsync::cli::add_config_command(app);
  lipsync::cli::add_bench_commands(app);
  lipsync::cli::add_audio_commands(app);
  for (CLI::App* cmd : app.get_subcommands([](const CLI::App*) { return true; })) {
    const std::string& name = cmd->get_name();
    if (name == "render" || name == "serve" || name == "client" || name == "live-client" ||
        name == "loadtest") {
      cmd->group("Main commands");
    } else if (name == "models" || name == "avatar" || name == "providers" || name == "config") {
      cmd->group("Models, avatars and settings");
    } else {
      cmd->group("Pipeline stages and timing");
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "lipsync: error: " << explain(app, e, argc, argv) << "\n";
    return 2;
  } catch (const lipsync::Error& e) {
    std::cerr << "lipsync: error: " << e.message() << "\n";
    return lipsync::exit_code_for(e.code());
  } catch (const std::exception& e) {
    std::cerr << "lipsync: internal error: " << e.what() << "\n";
    return lipsync::exit_code_for(lipsync::Error::Code::kInternal);
  }
  return 0;
}
