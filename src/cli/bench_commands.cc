// `lipsync bench ...`: times the in-process work (never process start-up) and prints one JSON
// object with the median and minimum, the sizes, the thread count, the CPU and the build type.
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "audio/audio_file.h"
#include "audio/mel_constants.h"
#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "cli/commands.h"
#include "cli/options_flags.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/stopwatch.h"
#include "core/system_info.h"
#include "core/task_arena.h"
#include "core/thread_budget.h"
#include "infer/audio_encoder.h"
#include "infer/generator.h"
#include "infer/models.h"
#include "infer/session.h"

namespace lipsync::cli {

Summary summarize(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double mid = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  return {mid, values.front()};
}

double median(std::vector<double> values) {
  return summarize(std::move(values)).median;
}

nlohmann::json machine_json(int threads) {
  nlohmann::json j{{"threads", threads},
                   {"cpu", core::cpu_model_name()},
                   {"int8_instructions", core::cpu_int8_instructions()},
                   {"hardware_threads", static_cast<int>(std::thread::hardware_concurrency())},
                   {"available_cpus", core::available_cpus()},
                   {"thread_budget", core::thread_budget()},
                   {"build_type", core::build_type()}};
  if (core::timings_are_unoptimised()) {
    std::cerr << "lipsync bench: warning: this build is not optimised; timings are meaningless\n";
    j["warning"] = "unoptimised build";
  }
  return j;
}

namespace {

// Repeats (or cuts) samples to exactly `seconds` of audio; seconds <= 0 keeps them as they are.
std::vector<float> fit_to_seconds(std::vector<float> samples, double seconds) {
  if (seconds <= 0) return samples;
  const auto n = static_cast<std::size_t>(std::llround(seconds * audio::kSampleRateHz));
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = samples[i % samples.size()];
  return out;
}

// Deterministic speech-like test signal: noise bursts under a syllable-rate envelope.
std::vector<float> synthetic_speech(double seconds) {
  std::mt19937 rng(12345);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  const auto n = static_cast<std::size_t>(seconds * audio::kSampleRateHz);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / audio::kSampleRateHz;
    const double envelope = 0.5 + 0.5 * std::sin(2 * 3.141592653589793 * 4.0 * t);
    out[i] = static_cast<float>(envelope) * noise(rng);
  }
  return out;
}

struct MelBenchArgs {
  std::string input;
  int threads = 1;
  int repeat = 20;
  double seconds = 0;
};

void run_bench_mel(const MelBenchArgs& args) {
  const std::vector<float> samples =
      fit_to_seconds(audio::load_audio_file(args.input), args.seconds);
  const core::TaskArena arena(args.threads);
  audio::AudioOptions options;
  options.arena = &arena;
  options.parallel_mel_extraction = args.threads > 1;
  const audio::MelSpectrogram mel_spectrogram;
  for (int i = 0; i < 2; ++i) (void)mel_spectrogram.compute(samples, options);  // warm-up
  std::vector<double> ms;
  int frames = 0;
  for (int i = 0; i < args.repeat; ++i) {
    core::Stopwatch sw;
    const audio::Mel mel = mel_spectrogram.compute(samples, options);
    ms.push_back(sw.elapsed_ms());
    frames = mel.frames();
  }
  const Summary s = summarize(ms);
  nlohmann::json j{{"bench", "mel"},
                   {"input", args.input},
                   {"samples", samples.size()},
                   {"audio_seconds", static_cast<double>(samples.size()) / audio::kSampleRateHz},
                   {"frames", frames},
                   {"repeat", args.repeat},
                   {"median_ms", s.median},
                   {"min_ms", s.min}};
  j.update(machine_json(args.threads));
  std::cout << core::json_text(j) << "\n";
}

struct WindowsBenchArgs {
  std::string input;
  int batch = 25;
  int threads = 1;
  int repeat = 2000;
  int grain = audio::AudioOptions{}.pack_windows_per_task;
};

// Times pack_encoder_batch of `batch` consecutive windows, cycling over the clip.
Summary time_packing(const audio::MelWindows& windows, int batch, int repeat) {
  std::vector<float> out(static_cast<std::size_t>(batch) * audio::MelWindows::kPackedWindowSize);
  const int positions = windows.count() - batch + 1;
  for (int i = 0; i < 10; ++i) windows.pack_encoder_batch(0, batch, out);  // warm-up
  std::vector<double> us;
  us.reserve(repeat);
  for (int i = 0; i < repeat; ++i) {
    const int first = (i * 25) % positions;
    core::Stopwatch sw;
    windows.pack_encoder_batch(first, batch, out);
    us.push_back(sw.elapsed_us());
  }
  return summarize(us);
}

void run_bench_windows(const WindowsBenchArgs& args) {
  std::vector<float> samples;
  if (args.input.empty()) {
    samples = synthetic_speech(std::max(60.0, args.batch / audio::kVideoFps + 1.0));
  } else {
    samples = audio::load_audio_file(args.input);
  }
  const core::TaskArena arena(args.threads);
  audio::AudioOptions sequential;
  sequential.parallel_mel_extraction = false;
  audio::AudioOptions parallel;
  parallel.arena = &arena;
  parallel.pack_windows_per_task = args.grain;
  const audio::Mel mel = audio::MelSpectrogram().compute(samples, sequential);
  const audio::MelWindows seq_windows(mel, sequential);
  const audio::MelWindows par_windows(mel, parallel);
  if (args.batch < 1 || args.batch > seq_windows.count()) {
    throw Error::invalid_input("--batch=" + std::to_string(args.batch) + ": expected 1.." +
                               std::to_string(seq_windows.count()) + " for this clip");
  }
  const Summary seq = time_packing(seq_windows, args.batch, args.repeat);
  const Summary par = time_packing(par_windows, args.batch, args.repeat);
  nlohmann::json j{{"bench", "windows"},
                   {"input", args.input.empty() ? "synthetic" : args.input},
                   {"mel_frames", mel.frames()},
                   {"windows", seq_windows.count()},
                   {"batch", args.batch},
                   {"grain_windows", args.grain},
                   {"repeat", args.repeat},
                   {"sequential_us", {{"median", seq.median}, {"min", seq.min}}},
                   {"parallel_us", {{"median", par.median}, {"min", par.min}}},
                   {"speedup", seq.median / par.median}};
  j.update(machine_json(args.threads));
  std::cout << core::json_text(j) << "\n";
}

struct ModelBenchArgs {
  std::string models;
  std::string baseline;  // bench generator --baseline: a second models folder, timed in turn
  int batch = 1;
  int threads = 0;
  int repeat = 10;
  int windows = 25;
  std::vector<std::string> providers{"cpu"};  // infer.execution_providers
  int device = 0;                             // infer.device_id
};

infer::InferOptions bench_infer_options(const ModelBenchArgs& args) {
  infer::InferOptions options;
  options.intra_op_threads = args.threads;
  options.execution_providers = args.providers;
  options.device_id = args.device;
  options.validate();
  if (args.threads > 0) core::set_thread_budget(args.threads);  // the arena and stage pools match
  return options;
}

// Deterministic stand-in inputs: values in [lo, hi).
std::vector<float> filler(std::size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

nlohmann::json ms_json(const Summary& s, int per) {
  return {{"median", s.median}, {"min", s.min}, {"median_per_item", s.median / per}};
}

// bench generator --baseline: runs of each model per round (after one untimed run).
constexpr int kBaselineBlock = 5;

// bench generator's times in ms: each run of ours and of the bare loop, each of the baseline's,
// and each round's speedup (its median baseline time / its median of ours).
struct GeneratorTimings {
  std::vector<double> ours;
  std::vector<double> bare;
  std::vector<double> base;
  std::vector<double> speedups;
};

// Warm up, then time in rounds: a block of ours (each run followed by the bare loop's), then a
// block of the baseline's, so that drift in the machine's speed hits both alike. Each block
// starts with one untimed run: a model's weights are back in cache after the other's block.
GeneratorTimings time_generator(const ModelBenchArgs& args, const infer::Generator& generator,
                                infer::BareOrtLoop& bare, const infer::Generator* baseline,
                                std::span<const float> image, std::span<const float> audio_in,
                                std::vector<float>& output, std::vector<float>& baseline_output) {
  for (int i = 0; i < 2; ++i) {
    generator.run(args.batch, image, audio_in, output);
    bare.run();
  }
  const int block = baseline ? kBaselineBlock : args.repeat;
  GeneratorTimings t;
  for (int done = 0; done < args.repeat;) {
    const int n = std::min(block, args.repeat - done);
    std::vector<double> round_ours;
    for (int i = 0; i < n; ++i) {
      core::Stopwatch sw;
      generator.run(args.batch, image, audio_in, output);
      round_ours.push_back(sw.elapsed_ms());
      core::Stopwatch sw2;
      bare.run();
      t.bare.push_back(sw2.elapsed_ms());
    }
    t.ours.insert(t.ours.end(), round_ours.begin(), round_ours.end());
    if (baseline) {
      std::vector<double> round_base;
      baseline->run(args.batch, image, audio_in, baseline_output);
      for (int i = 0; i < n; ++i) {
        core::Stopwatch sw;
        baseline->run(args.batch, image, audio_in, baseline_output);
        round_base.push_back(sw.elapsed_ms());
      }
      t.base.insert(t.base.end(), round_base.begin(), round_base.end());
      t.speedups.push_back(summarize(round_base).median / summarize(round_ours).median);
      generator.run(args.batch, image, audio_in, output);  // back in cache for the next round
    }
    done += n;
  }
  return t;
}

// Throws kInternal unless the wrapper's output is the bare loop's: the same bits on the CPU, within
// 1e-4 on a GPU (which picks its kernels per session).
void check_bare_output(const std::string& provider, const std::vector<float>& output,
                       const std::vector<float>& bare_output) {
  float max_diff = 0.0f;
  for (std::size_t i = 0; i < output.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(output[i] - bare_output[i]));
  }
  if (provider == "cpu" ? output != bare_output : !(max_diff <= 1e-4f)) {
    throw Error::internal(
        "bench generator: the wrapper and the bare loop gave different outputs "
        "(max difference " +
        std::to_string(max_diff) + ")");
  }
}

void run_bench_generator(const ModelBenchArgs& args) {
  const infer::InferOptions options = bench_infer_options(args);
  const std::filesystem::path path = std::filesystem::path(args.models) / infer::kGeneratorFileName;
  const infer::Generator generator(path, options);
  const auto b = static_cast<std::size_t>(args.batch);
  const std::vector<float> image = filler(b * contract::kImageInputSize, 0.0f, 1.0f, 1);
  const std::vector<float> audio_in = filler(b * contract::kAudioInputSize, 0.0f, 4.0f, 2);
  std::vector<float> output(b * contract::kOutputSize);
  std::vector<float> bare_output(output.size());

  auto specs = [&](std::vector<infer::TensorSpec> v) {
    for (auto& spec : v) spec.shape[0] = args.batch;
    return v;
  };
  const std::vector<infer::TensorSpec> in_specs = specs(generator.session().inputs());
  const std::vector<infer::TensorSpec> out_specs = specs(generator.session().outputs());
  const std::array<std::span<const float>, 2> in{image, audio_in};
  const std::array<std::span<float>, 1> out{bare_output};
  infer::BareOrtLoop bare(path, options, in_specs, in, out_specs, out);

  // A baseline generator (say the float32 source of an int8 folder), with the same settings.
  std::optional<infer::Generator> baseline;
  std::vector<float> baseline_output;
  if (!args.baseline.empty()) {
    baseline.emplace(std::filesystem::path(args.baseline) / infer::kGeneratorFileName, options);
    baseline_output.resize(output.size());
  }

  const GeneratorTimings t = time_generator(args, generator, bare, baseline ? &*baseline : nullptr,
                                            image, audio_in, output, baseline_output);
  const std::string& provider = generator.session().providers().front();
  check_bare_output(provider, output, bare_output);
  const Summary s = summarize(t.ours);
  const Summary bare_s = summarize(t.bare);
  nlohmann::json j{{"bench", "generator"},
                   {"models", args.models},
                   {"batch", args.batch},
                   {"provider", provider},
                   {"repeat", args.repeat},
                   {"ms_per_batch", ms_json(s, 1)},
                   {"ms_per_frame", s.median / args.batch},
                   {"frames_per_second", 1000.0 * args.batch / s.median},
                   {"bare_onnxruntime_ms_per_batch", ms_json(bare_s, 1)},
                   {"wrapper_overhead", s.median / bare_s.median - 1.0},
                   {"onnxruntime", infer::onnxruntime_version()}};
  if (baseline) {
    // `rounds`: the median of the rounds' speedups, robust to the machine's speed drifting
    // between rounds; `of_medians`: the ratio of the two overall medians.
    const Summary base_s = summarize(t.base);
    j["baseline"] = {{"models", args.baseline},
                     {"ms_per_batch", ms_json(base_s, 1)},
                     {"ms_per_frame", base_s.median / args.batch}};
    j["speedup"] = {{"of_medians", base_s.median / s.median},
                    {"median_of_rounds", summarize(t.speedups).median},
                    {"rounds", t.speedups.size()}};
  }
  j.update(machine_json(options.resolved_intra_op_threads()));
  std::cout << core::json_text(j) << "\n";
}

void run_bench_encoder(const ModelBenchArgs& args) {
  infer::InferOptions options = bench_infer_options(args);
  options.encoder_batch = args.batch;
  options.validate();
  const std::filesystem::path path = std::filesystem::path(args.models) / infer::kEncoderFileName;
  const infer::AudioEncoder encoder(path, options);
  audio::AudioOptions audio_options;
  audio_options.parallel_mel_extraction = false;
  const audio::Mel mel = audio::MelSpectrogram().compute(synthetic_speech(60.0), audio_options);
  const audio::MelWindows windows(mel, audio_options);
  if (args.windows < 1 || args.windows > windows.count()) {
    throw Error::invalid_input("--windows=" + std::to_string(args.windows) + ": expected 1.." +
                               std::to_string(windows.count()));
  }
  std::vector<float> features(static_cast<std::size_t>(args.windows) * contract::kFeatureSize);
  for (int i = 0; i < 2; ++i) encoder.encode(windows, 0, args.windows, features);
  std::vector<double> ms;
  const int positions = windows.count() - args.windows + 1;
  for (int i = 0; i < args.repeat; ++i) {
    const int first = (i * args.windows) % positions;
    core::Stopwatch sw;
    encoder.encode(windows, first, args.windows, features);
    ms.push_back(sw.elapsed_ms());
  }
  const Summary s = summarize(ms);
  nlohmann::json j{{"bench", "encoder"},
                   {"models", args.models},
                   {"windows", args.windows},
                   {"encoder_batch", args.batch},
                   {"provider", encoder.session().providers().front()},
                   {"repeat", args.repeat},
                   {"ms_per_call", ms_json(s, args.windows)},
                   {"ms_per_window", s.median / args.windows},
                   {"onnxruntime", infer::onnxruntime_version()}};
  j.update(machine_json(options.resolved_intra_op_threads()));
  std::cout << core::json_text(j) << "\n";
}

void add_model_bench(CLI::App& bench, const char* name, const char* help, bool encoder) {
  auto args = std::make_shared<ModelBenchArgs>();
  if (encoder) args->batch = infer::InferOptions{}.encoder_batch;
  CLI::App* cmd = bench.add_subcommand(name, help);
  cmd->add_option("--models", args->models, "Model folder")->required();
  if (!encoder) {
    cmd->add_option("--baseline", args->baseline,
                    "A second model folder (say the float32 source of an int8 one), timed in "
                    "turn with the same settings; prints its times and the speedup");
  }
  if (encoder) {
    add_key_flag(*cmd, "--batch", args->batch, "infer.encoder_batch");
  } else {
    cmd->add_option("--batch", args->batch, "Frames per run")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
  }
  cmd->add_option("--threads", args->threads, "ONNX Runtime threads (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--repeat", args->repeat, "Timed runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  add_key_flag(*cmd, "--providers", args->providers, "infer.execution_providers");
  add_key_flag(*cmd, "--device", args->device, "infer.device_id");
  if (encoder) {
    cmd->add_option("--windows", args->windows, "Windows per timed call (25 = 1 s of video)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100000));
    cmd->callback([args] { run_bench_encoder(*args); });
  } else {
    cmd->callback([args] { run_bench_generator(*args); });
  }
}

}  // namespace

void add_bench_commands(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Measure the speed of one stage on this machine");
  bench->require_subcommand(1);

  auto mel = std::make_shared<MelBenchArgs>();
  CLI::App* mel_cmd = bench->add_subcommand("mel", "Time the mel spectrogram of a clip");
  mel_cmd->add_option("input", mel->input, "Audio file")->required();
  mel_cmd->add_option("--threads", mel->threads, "CPU threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  mel_cmd->add_option("--repeat", mel->repeat, "Timed runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  mel_cmd->add_option("--seconds", mel->seconds, "Repeat or cut the clip to this length (0: as is)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 36000.0));
  mel_cmd->callback([mel] { run_bench_mel(*mel); });

  auto win = std::make_shared<WindowsBenchArgs>();
  CLI::App* win_cmd = bench->add_subcommand(
      "windows",
      "Time packing a batch of mel windows into the encoder input, sequential and parallel");
  win_cmd->add_option("input", win->input, "Audio file (default: 60 s of synthetic speech)");
  win_cmd->add_option("--batch", win->batch, "Windows per pack")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  win_cmd->add_option("--threads", win->threads, "CPU threads of the parallel path")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  win_cmd->add_option("--repeat", win->repeat, "Timed packs")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  win_cmd->add_option("--grain", win->grain, "Minimum windows per parallel task")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  win_cmd->callback([win] { run_bench_windows(*win); });

  add_model_bench(*bench, "generator",
                  "Time generator batches, against a bare ONNX Runtime loop with the same settings",
                  false);
  add_model_bench(*bench, "encoder", "Time the audio encoder on a batch of mel windows", true);
  add_bench_render_command(*bench);
}

}  // namespace lipsync::cli
