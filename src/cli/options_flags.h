// Command-line flags for option structs, with the defaults shown in --help read from the structs.
// Thread contract: used from main's thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "audio/audio_options.h"

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

}  // namespace lipsync::cli
