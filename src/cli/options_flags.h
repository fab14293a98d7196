// Command-line flags for option structs, with the defaults shown in --help read from the structs.
// Thread contract: used from main's thread only.
#pragma once

#include <CLI/CLI.hpp>

#include "audio/audio_options.h"

namespace lipsync::cli {

// --parallel-mel-extraction (audio.parallel_mel_extraction).
struct AudioFlags {
  audio::AudioOptions options;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--parallel-mel-extraction", options.parallel_mel_extraction,
                   "Split mel frames and window packing over the CPU threads (same results)")
        ->capture_default_str();
  }
  audio::AudioOptions to_options() const {
    options.validate();
    return options;
  }
};

}  // namespace lipsync::cli
