// Command-line flags for option structs, with the defaults shown in --help read from the structs.
// Thread contract: used from main's thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "audio/audio_options.h"
#include "infer/infer_options.h"

namespace lipsync::cli {

// --config FILE and --parallel-mel-extraction (audio.parallel_mel_extraction). A flag given on
// the command line wins over the config file, which wins over the default.
struct AudioFlags {
  std::string config_path;
  std::optional<bool> parallel_mel_extraction;

  void add_to(CLI::App& cmd);
  // The options after applying the config file and the flags; validated.
  audio::AudioOptions to_options() const;
};

// AudioFlags plus the ONNX Runtime flags of the commands that run models: --threads
// (cpu.threads, the process's thread budget; to_infer_options() sets it), --providers
// (infer.execution_providers), --device (infer.device_id), --encoder-batch (infer.encoder_batch),
// --parallel-runs (infer.parallel_runs). Same precedence: flag, then config file, then default.
struct InferFlags {
  AudioFlags audio;
  std::optional<int> threads;
  std::vector<std::string> providers;
  std::optional<int> device_id;
  std::optional<int> encoder_batch;
  std::optional<int> parallel_runs;

  void add_to(CLI::App& cmd);
  audio::AudioOptions to_audio_options() const { return audio.to_options(); }
  // Validated. Also sets the process's thread budget (core::set_thread_budget) from --threads
  // or the file's cpu.threads, so call it before any pool is made.
  infer::InferOptions to_infer_options() const;
};

}  // namespace lipsync::cli
