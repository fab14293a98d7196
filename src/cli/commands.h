// Registration of the `lipsync` subcommands. Each add_* function adds one command group to the
// app; the command's work runs in its CLI11 callback and reports failures as lipsync::Error.
// Thread contract: called once, from main.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <vector>

namespace lipsync::pipeline {
struct RenderStats;
}

namespace lipsync::cli {

void add_audio_commands(CLI::App& app);  // mel, windows
void add_bench_commands(CLI::App& app);  // bench mel, windows, encoder, generator, render
void add_model_commands(CLI::App& app);  // features, models synth, models demo
void add_models_compare_command(CLI::App& models);  // models compare (add_model_commands calls it)
void add_avatar_commands(CLI::App& app);            // avatar import, avatar demo
void add_render_commands(CLI::App& app);            // render
void add_bench_render_command(CLI::App& bench);     // bench render (add_bench_commands calls it)
void add_serve_command(CLI::App& app);              // serve
void add_client_commands(CLI::App& app);            // client, loadtest, live-client
void add_config_command(CLI::App& app);             // config

// What every benchmark prints about the machine and the build: `threads` (ONNX Runtime's),
// the CPU, hardware threads, available CPUs, the thread budget, the build type (and a warning,
// also on stderr, when the build's timings mean nothing).
nlohmann::json machine_json(int threads);

// Timings' median (the mean of the middle two for an even count) and minimum; 0 for none.
struct Summary {
  double median = 0;
  double min = 0;
};
Summary summarize(std::vector<double> values);
double median(std::vector<double> values);

// A render's time per frame in each stage, summed over the threads that ran it (they overlap).
nlohmann::json stage_ms_per_frame(const pipeline::RenderStats& s);

}  // namespace lipsync::cli
