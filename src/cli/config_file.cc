#include "cli/config_file.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <set>
#include <string>

#include "core/error.h"
#include "core/text.h"

namespace lipsync::cli {
namespace {

// One options table bound to its field of ConfigFile.
struct Binding {
  std::string section;
  std::function<bool(std::string_view name)> has;
  std::function<void(ConfigFile&, std::string_view name, const core::ConfigValue&)> set;
  std::function<std::vector<core::ConfigKeyInfo>()> keys;
  std::function<core::ConfigKeyInfo(std::string_view name)> key;
};

// `field` points at a member of ConfigFile or of its base, server::ServerConfig.
template <class Options, class Field>
Binding bind(const core::ConfigTable<Options>& table, Field field) {
  return {table.section(), [&table](std::string_view name) { return table.has(name); },
          [&table, field](ConfigFile& f, std::string_view name, const core::ConfigValue& v) {
            table.set(f.*field, name, v);
          },
          [&table] { return table.keys(); },
          [&table](std::string_view name) { return table.key(name); }};
}

// The README's order.
const std::vector<Binding>& bindings() {
  static const std::vector<Binding> all{
      bind(core::CpuOptions::config(), &ConfigFile::cpu),
      bind(audio::AudioOptions::config(), &ConfigFile::audio),
      bind(infer::InferOptions::config(), &ConfigFile::infer),
      bind(avatar::AvatarOptions::config(), &ConfigFile::avatar),
      bind(pipeline::RenderOptions::config(), &ConfigFile::render),
      bind(render::OutputOptions::config(), &ConfigFile::output),
      bind(pipeline::PipelineOptions::config(), &ConfigFile::pipeline),
      bind(server::ServerOptions::config(), &ConfigFile::server),
      bind(pipeline::SchedulerOptions::config(), &ConfigFile::scheduler),
      bind(pipeline::LiveOptions::config(), &ConfigFile::live),
      bind(webrtc::WebRtcOptions::config(), &ConfigFile::webrtc),
      bind(server::RegistryOptions::config(), &ConfigFile::registry),
      bind(server::ServerOptions::top_level_config(), &ConfigFile::server),
  };
  return all;
}

std::string key_of(const YAML::Node& node, const std::string& where) {
  if (!node.IsScalar()) throw Error::invalid_input(where + ": a key is not a plain name");
  return node.Scalar();
}

// The value of `key` as the tables take it: a scalar's text or a list of scalars.
core::ConfigValue value_of(const YAML::Node& node, const std::string& key) {
  if (node.IsScalar()) return core::ConfigValue::scalar(node.Scalar());
  if (node.IsSequence()) {
    std::vector<std::string> items;
    for (const auto& item : node) {
      if (!item.IsScalar()) throw Error::invalid_input(key + ": expected a list of plain values");
      items.push_back(item.Scalar());
    }
    return core::ConfigValue::list(std::move(items));
  }
  throw Error::invalid_input(key +
                             (node.IsNull() ? ": no value" : ": expected a value, not a mapping"));
}

// Throws for a key seen twice in one mapping (yaml-cpp keeps both silently).
void check_unique(std::set<std::string>& seen, const std::string& name, const std::string& key) {
  if (!seen.insert(name).second) throw Error::invalid_input(key + ": the key is given twice");
}

void read_section(const std::string& section, const YAML::Node& node, ConfigFile& out) {
  if (node.IsNull()) return;  // `server:` with every key under it commented out
  if (!node.IsMap()) throw Error::invalid_input(section + ": expected a mapping of keys");
  std::set<std::string> seen;
  for (const auto& entry : node) {
    const std::string name = key_of(entry.first, section);
    const std::string key = section + "." + name;
    check_unique(seen, name, key);
    const Binding* owner = nullptr;
    for (const Binding& b : bindings()) {
      if (b.section == section && b.has(name)) owner = &b;
    }
    if (owner == nullptr) throw Error::invalid_input("unknown key " + core::quote(key));
    owner->set(out, name, value_of(entry.second, key));
  }
}

void read_avatars(const YAML::Node& section, const std::filesystem::path& base,
                  std::vector<server::ModelSpec>& out) {
  if (!section.IsMap()) throw Error::invalid_input("avatars: expected a mapping of model ids");
  std::set<std::string> ids;
  for (const auto& entry : section) {
    server::ModelSpec spec;
    spec.id = key_of(entry.first, "avatars");
    const std::string prefix = "avatars." + spec.id;
    check_unique(ids, spec.id, prefix);
    if (!entry.second.IsMap()) throw Error::invalid_input(prefix + ": expected a mapping");
    std::set<std::string> seen;
    for (const auto& field : entry.second) {
      const std::string name = key_of(field.first, prefix);
      const std::string key = prefix + "." + name;
      check_unique(seen, name, key);
      const core::ConfigValue v = value_of(field.second, key);
      if (v.is_list) throw Error::invalid_input(key + ": expected a single value");
      auto path = [&] {
        const std::filesystem::path p = v.items[0];
        return p.is_relative() ? base / p : p;
      };
      if (name == "avatar") {
        spec.avatar = path();
      } else if (name == "models") {
        spec.models = path();
      } else if (name == "preload") {
        spec.preload = core::parse_config_bool(v.items[0], key);
      } else {
        throw Error::invalid_input("unknown key " + core::quote(key));
      }
    }
    if (spec.avatar.empty() || spec.models.empty()) {
      throw Error::invalid_input(prefix + ": needs both 'avatar' and 'models'");
    }
    out.push_back(spec);
  }
}

void read_root(const YAML::Node& root, const std::filesystem::path& base, ConfigFile& config) {
  if (!root.IsMap()) throw Error::invalid_input("expected a mapping of sections");
  std::set<std::string> seen;
  for (const auto& entry : root) {
    const std::string name = key_of(entry.first, "config");
    check_unique(seen, name, name);
    if (name == "avatars") {
      read_avatars(entry.second, base, config.models);
      continue;
    }
    bool top_level = false;
    bool section = false;
    for (const Binding& b : bindings()) {
      top_level |= b.section.empty() && b.has(name);
      section |= b.section == name;
    }
    if (top_level) {
      for (const Binding& b : bindings()) {
        if (b.section.empty() && b.has(name)) b.set(config, name, value_of(entry.second, name));
      }
    } else if (section) {
      read_section(name, entry.second, config);
    } else {
      throw Error::invalid_input("unknown key " + core::quote(name));
    }
  }
}

}  // namespace

pipeline::RenderOptions ConfigFile::render_options() const {
  pipeline::RenderOptions options = render;
  options.window_frames = pipeline.window_frames;
  options.audio = audio;
  options.blend = output.blend_options();
  return options;
}

ConfigKey config_key(std::string_view key) {
  const std::size_t dot = key.find('.');
  const std::string section(dot == std::string_view::npos ? "" : key.substr(0, dot));
  const std::string_view name = dot == std::string_view::npos ? key : key.substr(dot + 1);
  for (const Binding& b : bindings()) {
    if (b.section != section || !b.has(name)) continue;
    ConfigKey out{b.key(name), {}};
    out.check = [&b, name = std::string(name), list = out.info.is_list](const std::string& text) {
      ConfigFile scratch;
      try {
        b.set(scratch, name,
              list ? core::ConfigValue::list({text}) : core::ConfigValue::scalar(text));
      } catch (const Error& e) {
        return std::string(e.what());
      }
      return std::string();
    };
    return out;
  }
  throw Error::invalid_input("unknown key " + core::quote(std::string(key)));
}

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
    read_root(root, path.parent_path(), config);
  } catch (const Error& e) {
    throw e.with_context(where);
  }
  return config;
}

std::vector<core::ConfigKeyInfo> all_config_keys() {
  std::vector<core::ConfigKeyInfo> keys;
  for (const Binding& b : bindings()) {
    for (auto& k : b.keys()) keys.push_back(std::move(k));
  }
  return keys;
}

}  // namespace lipsync::cli
