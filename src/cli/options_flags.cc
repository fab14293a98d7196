#include "cli/options_flags.h"

#include "cli/config_file.h"

namespace lipsync::cli {

void AudioFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--config", config_path,
                 "YAML config file (its keys: lipsync config, docs/config-keys.md)");
  cmd.add_option(
      "--parallel-mel-extraction", parallel_mel_extraction,
      "Split mel frames and window packing over the CPU threads; same results (default: " +
          std::string(audio::AudioOptions{}.parallel_mel_extraction ? "true" : "false") + ")");
}

audio::AudioOptions AudioFlags::to_options() const {
  audio::AudioOptions options =
      config_path.empty() ? audio::AudioOptions{} : load_config_file(config_path).audio;
  if (parallel_mel_extraction) options.parallel_mel_extraction = *parallel_mel_extraction;
  options.validate();
  return options;
}

void InferFlags::add_to(CLI::App& cmd) {
  audio.add_to(cmd);
  cmd.add_option("--threads", threads,
                 "Cores to use: the thread budget every pool at 0 takes (cpu.threads; default: "
                 "the CPUs this process may run on)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--providers", providers,
                 "Execution providers in order: cpu, cuda, tensorrt; a later one is the fallback "
                 "(infer.execution_providers; cuda,cpu: the GPU, else the CPU with a warning)")
      ->delimiter(',');
  cmd.add_option("--device", device_id, "GPU for cuda and tensorrt (infer.device_id; default 0)")
      ->check(CLI::Range(0, 255));
  cmd.add_option("--encoder-batch", encoder_batch,
                 "Audio-encoder windows per run (infer.encoder_batch; default " +
                     std::to_string(infer::InferOptions{}.encoder_batch) + ")");
  cmd.add_option("--parallel-runs", parallel_runs,
                 "Generator batches run at once, each on budget / N threads (infer.parallel_runs; "
                 "default 0: the thread budget in render on the CPU, else 1)")
      ->check(CLI::Range(0, 64));
}

infer::InferOptions InferFlags::to_infer_options() const {
  const ConfigFile file =
      audio.config_path.empty() ? ConfigFile{} : load_config_file(audio.config_path);
  infer::InferOptions options = file.infer;
  core::set_thread_budget(threads ? *threads : file.cpu.threads);
  if (!providers.empty()) options.execution_providers = providers;
  if (device_id) options.device_id = *device_id;
  if (encoder_batch) options.encoder_batch = *encoder_batch;
  if (parallel_runs) options.parallel_runs = *parallel_runs;
  options.validate();
  return options;
}

}  // namespace lipsync::cli
