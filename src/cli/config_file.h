// The YAML configuration file: one section per component, keys named as in the README
// (audio.parallel_mel_extraction, ...). Every key comes from the config table of the layer that
// owns it (core::ConfigTable); this file only binds each table to its field here and walks the
// YAML. Unknown keys, duplicate keys and bad values are errors naming the key.
// Thread contract: stateless functions.
#pragma once

#include <filesystem>
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

// Options read from a config file; fields the file does not set keep their defaults.
struct ConfigFile {
  core::CpuOptions cpu;  // cpu.threads: the thread budget
  audio::AudioOptions audio;
  infer::InferOptions infer;
  avatar::AvatarOptions avatar;
  pipeline::RenderOptions render;  // render.batch (its audio field is `audio` above)
  render::OutputOptions output;    // render.jpeg_quality, render.mp4_*
  pipeline::PipelineOptions pipeline;
  pipeline::LiveOptions live;
  webrtc::WebRtcOptions webrtc;
  pipeline::SchedulerOptions scheduler;
  server::ServerOptions server;           // server.*, log_level
  server::RegistryOptions registry;       // registry.*
  std::vector<server::ModelSpec> models;  // avatars: {id: {avatar, models, preload}}

  // The part `lipsync serve` uses.
  server::ServerConfig server_config() const;
};

// Reads and validates a config file. Throws Error::Code::kNotFound for a missing file and
// kInvalidInput for bad YAML, an unknown or repeated key or a bad value, naming the file and
// the key.
ConfigFile load_config_file(const std::filesystem::path& path);

// Every key a config file may set, in README order (`lipsync config`; the README test). The
// `avatars` section is not in it: it is a mapping of model ids, not a key.
std::vector<core::ConfigKeyInfo> all_config_keys();

}  // namespace lipsync::cli
