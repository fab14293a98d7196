// The YAML configuration file: one section per component, keys named as in the README
// (audio.parallel_mel_extraction, ...). Unknown keys and bad values are errors naming the key.
// Thread contract: stateless functions.
#pragma once

#include <filesystem>

#include "audio/audio_options.h"
#include "infer/infer_options.h"

namespace lipsync::cli {

// Options read from a config file; fields the file does not set keep their defaults.
struct ConfigFile {
  audio::AudioOptions audio;
  infer::InferOptions infer;
};

// Reads and validates a config file. Throws Error::Code::kNotFound for a missing file and
// kInvalidInput for bad YAML, an unknown key or a bad value, naming the file and the key.
ConfigFile load_config_file(const std::filesystem::path& path);

}  // namespace lipsync::cli
