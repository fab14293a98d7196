// Command-line flags for configuration keys. A flag that sets a key takes its help, its default
// and its check from the key's ConfigTable declaration, so the two cannot drift. A flag given on
// the command line wins over the config file, which wins over the key's default.
// Thread contract: used from main's thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/config_file.h"

namespace lipsync::cli {

// The help of the flag `flag` that sets the key `info` describes (config_key(...).info): the
// key's doc (without a mention of the flag itself), then "[key, values, default D]". `note`
// comes before the bracket, for what the flag means beyond the key.
std::string key_flag_help(const std::string& flag, const core::ConfigKeyInfo& info,
                          const std::string& note = "");

// `--flag` setting config key `key`: help from key_flag_help; a value the key refuses is
// refused as the command line is parsed, in the key's own words. `target` is a std::optional
// (unset: the flag was not given) or, for a list key, a vector (split at commas).
template <class T>
CLI::Option* add_key_flag(CLI::App& cmd, const std::string& flag, T& target, std::string_view key,
                          const std::string& note = "") {
  const ConfigKey k = config_key(key);
  CLI::Option* option = cmd.add_option(flag, target, key_flag_help(flag, k.info, note));
  if (k.info.is_list) option->delimiter(',');
  if (k.info.values != core::kConfigBoolValues) {  // CLI11 reads a boolean's spellings itself
    // No description: the help's bracket names the values already.
    option->check(CLI::Validator([check = k.check](std::string& text) { return check(text); }, ""));
  }
  return option;
}

// The flags every command that reads a config file shares: --config FILE, read once, and flags
// over some of its keys. kServe adds --threads (cpu.threads); kAudio
// --parallel-mel-extraction; kInfer both, and --providers (infer.execution_providers), --device
// (infer.device_id), --encoder-batch (infer.encoder_batch), --parallel-runs
// (infer.parallel_runs).
class CommandFlags {
 public:
  enum Kind { kServe, kAudio, kInfer };
  explicit CommandFlags(Kind kind) : kind_(kind) {}

  void add_to(CLI::App& cmd);
  // The config file (defaults without --config) with the flags over it, validated; read and
  // checked on the first call only. The first call also sets the process's thread budget
  // (core::set_thread_budget) from --threads or cpu.threads, so make it before any pool.
  const ConfigFile& config() const;
  const audio::AudioOptions& audio_options() const { return config().audio; }
  const infer::InferOptions& infer_options() const { return config().infer; }

 private:
  Kind kind_;
  std::string config_path_;
  std::optional<bool> parallel_mel_extraction_;
  std::optional<int> threads_;
  std::vector<std::string> providers_;
  std::optional<int> device_id_;
  std::optional<int> encoder_batch_;
  std::optional<int> parallel_runs_;
  mutable std::optional<ConfigFile> config_;
};

}  // namespace lipsync::cli
