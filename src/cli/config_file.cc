#include "cli/config_file.h"

#include <yaml-cpp/yaml.h>

#include <string>

#include "core/error.h"

namespace lipsync::cli {
namespace {

template <class T>
T scalar(const YAML::Node& node, const std::string& key, const char* expected) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw Error::invalid_input(key + ": expected " + expected);
  }
}

void read_audio(const YAML::Node& section, audio::AudioOptions& out) {
  if (!section.IsMap()) throw Error::invalid_input("audio: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "audio." + name;
    if (name == "parallel_mel_extraction") {
      out.parallel_mel_extraction = scalar<bool>(entry.second, key, "true or false");
    } else if (name == "mel_frames_per_task") {
      out.mel_frames_per_task = scalar<int>(entry.second, key, "an integer");
    } else if (name == "pack_windows_per_task") {
      out.pack_windows_per_task = scalar<int>(entry.second, key, "an integer");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
  out.validate();
}

void read_infer(const YAML::Node& section, infer::InferOptions& out) {
  if (!section.IsMap()) throw Error::invalid_input("infer: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "infer." + name;
    if (name == "intra_op_threads") {
      out.intra_op_threads = scalar<int>(entry.second, key, "an integer");
    } else if (name == "graph_optimization") {
      out.graph_optimization =
          infer::parse_graph_optimization(scalar<std::string>(entry.second, key, "a string"), key);
    } else if (name == "execution_providers") {
      if (!entry.second.IsSequence()) {
        throw Error::invalid_input(key + ": expected a list such as [cpu] or [cuda, cpu]");
      }
      out.execution_providers.clear();
      for (const auto& item : entry.second) {
        out.execution_providers.push_back(scalar<std::string>(item, key, "provider names"));
      }
    } else if (name == "encoder_batch") {
      out.encoder_batch = scalar<int>(entry.second, key, "an integer");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
  out.validate();
}

void read_avatar(const YAML::Node& section, avatar::AvatarOptions& out) {
  if (!section.IsMap()) throw Error::invalid_input("avatar: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "avatar." + name;
    if (name == "frame_cache_mb") {
      out.frame_cache_mb = scalar<int>(entry.second, key, "an integer");
    } else if (name == "roi_cache_mb") {
      out.roi_cache_mb = scalar<int>(entry.second, key, "an integer");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
  out.validate();
}

void read_render(const YAML::Node& section, ConfigFile& out) {
  if (!section.IsMap()) throw Error::invalid_input("render: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "render." + name;
    if (name == "batch") {
      out.render.batch = scalar<int>(entry.second, key, "an integer");
    } else if (name == "jpeg_quality") {
      out.jpeg_quality = scalar<int>(entry.second, key, "an integer");
      if (out.jpeg_quality < 1 || out.jpeg_quality > 100) {
        throw Error::invalid_input(key + ": " + std::to_string(out.jpeg_quality) +
                                   " is out of range; expected 1 to 100");
      }
    } else if (name == "mp4_crf") {
      out.mp4.crf = scalar<int>(entry.second, key, "an integer");
      if (out.mp4.crf < 0 || out.mp4.crf > 51) {
        throw Error::invalid_input(key + ": " + std::to_string(out.mp4.crf) +
                                   " is out of range; expected 0 to 51");
      }
    } else if (name == "mp4_preset") {
      out.mp4.preset = scalar<std::string>(entry.second, key, "an x264 preset name");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
  out.render.validate();
}

}  // namespace

ConfigFile load_config_file(const std::filesystem::path& path) {
  const std::string where = "config '" + path.string() + "'";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error::not_found(where + ": no such file");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw Error::invalid_input(where + ": not valid YAML: " + e.what());
  }
  ConfigFile config;
  if (root.IsNull()) return config;
  try {
    if (!root.IsMap()) throw Error::invalid_input("expected a mapping of sections");
    for (const auto& entry : root) {
      const std::string section = entry.first.as<std::string>();
      if (section == "audio") {
        read_audio(entry.second, config.audio);
      } else if (section == "infer") {
        read_infer(entry.second, config.infer);
      } else if (section == "avatar") {
        read_avatar(entry.second, config.avatar);
      } else if (section == "render") {
        read_render(entry.second, config);
      } else {
        throw Error::invalid_input("unknown key '" + section + "'");
      }
    }
  } catch (const Error& e) {
    throw e.with_context(where);
  }
  return config;
}

}  // namespace lipsync::cli
