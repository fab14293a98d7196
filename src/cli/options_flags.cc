#include "cli/options_flags.h"

#include "cli/config_file.h"

namespace lipsync::cli {

void AudioFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--config", config_path, "YAML config file (keys: see README)");
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

}  // namespace lipsync::cli
