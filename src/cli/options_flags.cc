#include "cli/options_flags.h"

#include <cctype>

#include "core/error.h"
#include "core/thread_budget.h"

namespace lipsync::cli {
namespace {

// `doc` without its mention of `flag`: "(--batch)" goes, "(--grpc; port 0 picks one)" keeps
// what follows the flag.
std::string without_flag(std::string doc, const std::string& flag) {
  const std::string alone = " (" + flag + ")";
  if (const auto at = doc.find(alone); at != std::string::npos) return doc.erase(at, alone.size());
  const std::string first = "(" + flag + "; ";
  if (const auto at = doc.find(first); at != std::string::npos)
    return doc.erase(at + 1, first.size() - 1);
  return doc;
}

}  // namespace

std::string key_flag_help(const std::string& flag, const core::ConfigKeyInfo& info,
                          const std::string& note) {
  std::string help = without_flag(info.doc, flag);
  // A sentence starts with a capital, but "gRPC" stays as it is.
  const auto is = [&](std::size_t i, int (*test)(int)) {
    return i < help.size() && test(static_cast<unsigned char>(help[i])) != 0;
  };
  if (is(0, std::islower) && !is(1, std::isupper))
    help[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(help[0])));
  if (!note.empty()) help += "; " + note;
  const std::string shown = info.default_text.empty() ? "\"\"" : info.default_text;
  return help + " [" + info.key + ", " + info.values + ", default " + shown + "]";
}

void CommandFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--config", config_path_,
                 "YAML config file (its keys: lipsync config, docs/config-keys.md)");
  if (kind_ != kAudio) add_key_flag(cmd, "--threads", threads_, "cpu.threads");
  if (kind_ == kServe) return;
  add_key_flag(cmd, "--parallel-mel-extraction", parallel_mel_extraction_,
               "audio.parallel_mel_extraction");
  if (kind_ != kInfer) return;
  add_key_flag(cmd, "--providers", providers_, "infer.execution_providers");
  add_key_flag(cmd, "--device", device_id_, "infer.device_id");
  add_key_flag(cmd, "--encoder-batch", encoder_batch_, "infer.encoder_batch");
  add_key_flag(cmd, "--parallel-runs", parallel_runs_, "infer.parallel_runs");
}

const ConfigFile& CommandFlags::config() const {
  if (config_) return *config_;
  ConfigFile c = config_path_.empty() ? ConfigFile{} : load_config_file(config_path_);
  if (threads_) c.cpu.threads = *threads_;
  if (parallel_mel_extraction_) c.audio.parallel_mel_extraction = *parallel_mel_extraction_;
  if (!providers_.empty()) c.infer.execution_providers = providers_;
  if (device_id_) c.infer.device_id = *device_id_;
  if (encoder_batch_) c.infer.encoder_batch = *encoder_batch_;
  if (parallel_runs_) c.infer.parallel_runs = *parallel_runs_;
  c.audio.validate();
  c.infer.validate();
  c.cpu.validate();
  core::set_thread_budget(c.cpu.threads);
  config_ = std::move(c);
  return *config_;
}

}  // namespace lipsync::cli
