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

void read_server(const YAML::Node& section, server::ServerOptions& out) {
  if (!section.IsMap()) throw Error::invalid_input("server: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "server." + name;
    if (name == "grpc") {
      out.grpc_address = scalar<std::string>(entry.second, key, "host:port");
    } else if (name == "http") {
      out.http_address = scalar<std::string>(entry.second, key, "host:port or empty");
    } else if (name == "max_message_mb") {
      out.max_message_mb = scalar<int>(entry.second, key, "an integer");
    } else if (name == "max_request_frames") {
      out.max_request_frames = scalar<int>(entry.second, key, "an integer");
    } else if (name == "max_inflight_requests") {
      out.max_inflight_requests = scalar<int>(entry.second, key, "an integer");
    } else if (name == "workers") {
      out.workers = scalar<int>(entry.second, key, "an integer");
    } else if (name == "arena_threads") {
      out.arena_threads = scalar<int>(entry.second, key, "an integer");
    } else if (name == "shutdown_grace_s") {
      out.shutdown_grace_s = scalar<int>(entry.second, key, "an integer");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
}

void read_scheduler(const YAML::Node& section, pipeline::SchedulerOptions& out) {
  if (!section.IsMap()) throw Error::invalid_input("scheduler: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "scheduler." + name;
    if (name == "max_batch") {
      out.max_batch = scalar<int>(entry.second, key, "an integer");
    } else if (name == "max_batch_wait_ms") {
      out.max_batch_wait_ms = scalar<int>(entry.second, key, "an integer");
    } else if (name == "queue_limit") {
      out.queue_limit = scalar<int>(entry.second, key, "an integer");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
  out.validate();
}

void read_registry(const YAML::Node& section, server::RegistryOptions& out) {
  if (!section.IsMap()) throw Error::invalid_input("registry: expected a mapping");
  for (const auto& entry : section) {
    const std::string name = entry.first.as<std::string>();
    const std::string key = "registry." + name;
    if (name == "max_loaded") {
      out.max_loaded = scalar<int>(entry.second, key, "an integer");
    } else if (name == "memory_budget_mb") {
      out.memory_budget_mb = scalar<std::int64_t>(entry.second, key, "an integer");
    } else if (name == "policy") {
      const auto v = scalar<std::string>(entry.second, key, "lru or lfu");
      if (v != "lru" && v != "lfu") {
        throw Error::invalid_input(key + ": '" + v + "' is unknown; expected lru or lfu");
      }
      out.policy = v == "lru" ? server::EvictionPolicy::kLru : server::EvictionPolicy::kLfu;
    } else if (name == "idle_unload_s") {
      out.idle_unload_s = scalar<int>(entry.second, key, "an integer");
    } else {
      throw Error::invalid_input("unknown key '" + key + "'");
    }
  }
  out.validate();
}

void read_avatars(const YAML::Node& section, const std::filesystem::path& base,
                  std::vector<server::ModelSpec>& out) {
  if (!section.IsMap()) throw Error::invalid_input("avatars: expected a mapping of model ids");
  for (const auto& entry : section) {
    server::ModelSpec spec;
    spec.id = entry.first.as<std::string>();
    const std::string prefix = "avatars." + spec.id;
    if (!entry.second.IsMap()) throw Error::invalid_input(prefix + ": expected a mapping");
    for (const auto& field : entry.second) {
      const std::string name = field.first.as<std::string>();
      const std::string key = prefix + "." + name;
      auto path = [&] {
        const std::filesystem::path p = scalar<std::string>(field.second, key, "a folder");
        return p.is_relative() ? base / p : p;
      };
      if (name == "avatar") {
        spec.avatar = path();
      } else if (name == "models") {
        spec.models = path();
      } else if (name == "preload") {
        spec.preload = scalar<bool>(field.second, key, "true or false");
      } else {
        throw Error::invalid_input("unknown key '" + key + "'");
      }
    }
    if (spec.avatar.empty() || spec.models.empty()) {
      throw Error::invalid_input(prefix + ": needs both 'avatar' and 'models'");
    }
    out.push_back(spec);
  }
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
        config.server.jpeg_quality = config.jpeg_quality;
      } else if (section == "server") {
        read_server(entry.second, config.server);
      } else if (section == "scheduler") {
        read_scheduler(entry.second, config.scheduler);
      } else if (section == "registry") {
        read_registry(entry.second, config.registry);
      } else if (section == "avatars") {
        read_avatars(entry.second, path.parent_path(), config.models);
      } else if (section == "log_level") {
        config.server.log_level = scalar<std::string>(entry.second, "log_level", "a level name");
      } else {
        throw Error::invalid_input("unknown key '" + section + "'");
      }
    }
    config.server.validate();
  } catch (const Error& e) {
    throw e.with_context(where);
  }
  return config;
}

}  // namespace lipsync::cli
