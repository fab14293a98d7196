// The YAML configuration file: one section per component, keys named as in the README
// (audio.parallel_mel_extraction, ...). Every key comes from the config table of the layer that
// owns it (core::ConfigTable); this file only binds each table to its field here and walks the
// YAML. Unknown keys, duplicate keys and bad values are errors naming the key.
// Thread contract: stateless functions.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "audio/audio_options.h"
#include "avatar/avatar.h"
#include "core/config_table.h"
#include "core/thread_budget.h"
#include "infer/infer_options.h"
#include "pipeline/frame_producer.h"
#include "pipeline/live_session.h"
#include "pipeline/offline_renderer.h"
#include "pipeline/scheduler.h"
#include "render/output_options.h"
#include "server/registry.h"
#include "server/server.h"
#include "server/server_options.h"
#include "webrtc/webrtc_options.h"

namespace lipsync::cli {

// Options read from a config file; fields the file does not set keep their defaults. It is the
// server's configuration (what `lipsync serve` runs with, the `avatars` section included) plus
// the keys only the offline tools read.
struct ConfigFile : server::ServerConfig {
  core::CpuOptions cpu;  // cpu.threads: the thread budget
  // render.batch only: render_options() takes the rest of a render's options from the
  // pipeline, audio and render sections instead of keeping copies of them here.
  pipeline::RenderOptions render;

  // The part `lipsync serve` uses.
  const server::ServerConfig& server_config() const { return *this; }
  // The options of `lipsync render`: render.batch, pipeline.window_frames, the audio section and
  // the blend keys of the render section.
  pipeline::RenderOptions render_options() const;
};

// One key, for the command-line flag that sets it (cli/options_flags): what `lipsync config`
// shows of it, and a check of a flag's value by the key's own parser and range.
struct ConfigKey {
  core::ConfigKeyInfo info;
  // Empty when `text` is a good value for the key (one item of a list key), else why not, in
  // the words a config file gets ("render.batch: 300 is out of range; expected 0 to 256").
  std::function<std::string(const std::string& text)> check;
};

// Throws Error::Code::kInvalidInput for a key no table declares.
ConfigKey config_key(std::string_view key);

// Reads and validates a config file. Throws Error::Code::kNotFound for a missing file and
// kInvalidInput for bad YAML, an unknown or repeated key or a bad value, naming the file and
// the key.
ConfigFile load_config_file(const std::filesystem::path& path);

// Every key a config file may set, in README order (`lipsync config`; the README test). The
// `avatars` section is not in it: it is a mapping of model ids, not a key.
std::vector<core::ConfigKeyInfo> all_config_keys();

}  // namespace lipsync::cli
