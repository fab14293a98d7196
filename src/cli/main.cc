// lipsync: the command-line front end. Parses arguments, runs one subcommand, maps errors to
// exit codes (core/error.h: exit_code_for) and prints them on stderr.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/memory_trimmer.h"
#include "infer/execution_providers.h"

int main(int argc, char** argv) {
  lipsync::core::tune_heap();               // before any thread or large block
  lipsync::infer::disable_ort_telemetry();  // before any thread: it sets an environment variable
  CLI::App app{"lipsync: audio-driven lip-sync video (SyncTalk_2D models through ONNX Runtime)"};
  // Logs go to stderr: stdout is the commands' JSON lines.
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  app.require_subcommand(1);
  app.set_version_flag("--version", "lipsync 0.1.0");
  lipsync::cli::add_audio_commands(app);
  lipsync::cli::add_model_commands(app);
  lipsync::cli::add_avatar_commands(app);
  lipsync::cli::add_bench_commands(app);
  lipsync::cli::add_render_commands(app);
  lipsync::cli::add_serve_command(app);
  lipsync::cli::add_client_commands(app);
  lipsync::cli::add_config_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const lipsync::Error& e) {
    std::cerr << "lipsync: error: " << e.message() << "\n";
    return lipsync::exit_code_for(e.code());
  } catch (const std::exception& e) {
    std::cerr << "lipsync: internal error: " << e.what() << "\n";
    return lipsync::exit_code_for(lipsync::Error::Code::kInternal);
  }
  return 0;
}
