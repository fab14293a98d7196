// `lipsync config`: every configuration key with its default, values and meaning, as the
// table of docs/config-keys.md (markdown), JSON, or a commented starter config (YAML). All
// come from the layers' config tables.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "core/error.h"
#include "core/json_text.h"

namespace lipsync::cli {
namespace {

std::string cell(const std::string& text) {
  return text.empty() ? "`\"\"`" : "`" + text + "`";
}

// A config file to start from: every key at its default, commented out under its section, with
// its meaning and values above it; then how to name the models to serve. Uncommenting a key (and
// nothing else) gives a valid config.
std::string starter_config(const std::vector<core::ConfigKeyInfo>& keys) {
  std::string out =
      "# lipsync serve --config FILE: every key at its default, commented out. Uncomment and\n"
      "# change what you need; `lipsync config` explains every key.\n";
  std::string section = "\0";
  for (const auto& k : keys) {
    const auto dot = k.key.find('.');
    const std::string this_section = dot == std::string::npos ? "" : k.key.substr(0, dot);
    const std::string name = dot == std::string::npos ? k.key : k.key.substr(dot + 1);
    if (this_section != section) {
      section = this_section;
      out += "\n";
      if (!section.empty()) out += section + ":\n";
    }
    const std::string indent = section.empty() ? "" : "  ";
    out += indent + "# " + k.doc + " (" + k.values + ")\n";
    out += indent + "# " + name + ": " + (k.default_text.empty() ? "\"\"" : k.default_text) + "\n";
  }
  out +=
      "\n# The models to serve (none: the built-in demo). Paths are relative to this file.\n"
      "# avatars:\n"
      "#   may:\n"
      "#     avatar: avatars/may     # lipsync avatar import\n"
      "#     models: models/may      # lipsync models import\n"
      "#     preload: true           # load at start, not on the first request\n";
  return out;
}

void run_config(const std::string& format) {
  const auto keys = all_config_keys();
  if (format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& k : keys) {
      out.push_back(
          {{"key", k.key}, {"default", k.default_text}, {"values", k.values}, {"doc", k.doc}});
    }
    std::cout << core::json_text(out, 2) << "\n";
    return;
  }
  if (format == "yaml") {
    std::cout << starter_config(keys);
    return;
  }
  if (format != "markdown") {
    throw Error::invalid_input("--format " + format + ": expected markdown, json or yaml");
  }
  std::cout << "| key | default | values | meaning |\n|---|---|---|---|\n";
  for (const auto& k : keys) {
    std::cout << "| `" << k.key << "` | " << cell(k.default_text) << " | " << k.values << " | "
              << k.doc << " |\n";
  }
}

}  // namespace

void add_config_command(CLI::App& app) {
  auto format = std::make_shared<std::string>("markdown");
  CLI::App* cmd = app.add_subcommand(
      "config", "Print every configuration key with its default, values and meaning");
  cmd->add_option(
         "--format", *format,
         "markdown (the table in docs/config-keys.md), json, or yaml (a commented starter config)")
      ->capture_default_str();
  cmd->callback([format] { run_config(*format); });
}

}  // namespace lipsync::cli
