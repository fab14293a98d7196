// The YAML configuration file: one section per component, keys named as in the README
// (audio.parallel_mel_extraction, ...). Unknown keys and bad values are errors naming the key.
// Thread contract: stateless functions.
#pragma once

#include <filesystem>

#include "audio/audio_options.h"
#include "avatar/avatar.h"
#include "infer/infer_options.h"
#include "pipeline/offline_renderer.h"
#include "render/image_encoder.h"
#include "render/mp4_writer.h"
#include "server/registry.h"
#include "server/server_options.h"

namespace lipsync::cli {

// Options read from a config file; fields the file does not set keep their defaults.
struct ConfigFile {
  audio::AudioOptions audio;
  infer::InferOptions infer;
  avatar::AvatarOptions avatar;
  pipeline::RenderOptions render;  // render.batch (its audio field is `audio` above)
  int jpeg_quality = render::kDefaultJpegQuality;
  render::Mp4Options mp4;
  // lipsync serve
  server::ServerOptions server;           // server.*, log_level
  server::RegistryOptions registry;       // registry.*
  pipeline::SchedulerOptions scheduler;   // scheduler.*
  std::vector<server::ModelSpec> models;  // avatars: {id: {avatar, models, preload}}
};

// Reads and validates a config file. Throws Error::Code::kNotFound for a missing file and
// kInvalidInput for bad YAML, an unknown key or a bad value, naming the file and the key.
ConfigFile load_config_file(const std::filesystem::path& path);

}  // namespace lipsync::cli
