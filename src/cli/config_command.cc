// `lipsync config`: every configuration key with its default, values and meaning, as the
// README's table (markdown) or JSON. Both come from the layers' config tables.
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
  if (format != "markdown") {
    throw Error::invalid_input("--format " + format + ": expected markdown or json");
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
  cmd->add_option("--format", *format, "markdown (the README's table) or json")
      ->capture_default_str();
  cmd->callback([format] { run_config(*format); });
}

}  // namespace lipsync::cli
