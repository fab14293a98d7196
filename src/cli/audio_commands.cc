// `lipsync mel` and `lipsync windows`: the audio front end as files.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "audio/audio_file.h"
#include "audio/audio_options.h"
#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "cli/commands.h"
#include "cli/options_flags.h"
#include "core/file_util.h"
#include "core/json_text.h"

namespace lipsync::cli {
namespace {

struct MelArgs {
  std::string input;
  std::string output;
  CommandFlags flags{CommandFlags::kAudio};
};

std::span<const std::byte> as_bytes(const std::vector<float>& v) {
  return std::as_bytes(std::span(v));
}

void run_mel(const MelArgs& args) {
  const audio::AudioOptions& options = args.flags.audio_options();
  const std::vector<float> samples = audio::load_audio_file(args.input);
  const audio::Mel mel = audio::MelSpectrogram().compute(samples, options);
  core::write_file_atomically(args.output, std::as_bytes(mel.data()));
  std::cout << core::json_text({{"frames", mel.frames()}, {"bands", audio::Mel::bands()}}) << "\n";
}

void run_windows(const MelArgs& args) {
  const audio::AudioOptions& options = args.flags.audio_options();
  const std::vector<float> samples = audio::load_audio_file(args.input);
  const audio::Mel mel = audio::MelSpectrogram().compute(samples, options);
  const audio::MelWindows windows(mel, options);
  // Frames-major [L][16][80]: each window is a plain copy of its mel rows.
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(windows.count()) * audio::MelWindows::kPackedWindowSize);
  for (int k = 0; k < windows.count(); ++k) {
    const audio::MelWindow w = windows.window(k);
    out.insert(out.end(), w.rows, w.rows + audio::MelWindows::kPackedWindowSize);
  }
  core::write_file_atomically(args.output, as_bytes(out));
  std::cout << core::json_text({{"windows", windows.count()}, {"starts", windows.starts()}})
            << "\n";
}

void add_mel_like(CLI::App& app, const char* name, const char* help, void (*run)(const MelArgs&)) {
  auto args = std::make_shared<MelArgs>();
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->add_option("input", args->input, "Audio file: WAV/FLAC/OGG, or raw .f32/.s16 (16 kHz mono)")
      ->required();
  cmd->add_option("-o,--output", args->output, "Output file (raw little-endian float32)")
      ->required();
  args->flags.add_to(*cmd);
  cmd->callback([args, run] { run(*args); });
}

}  // namespace

void add_audio_commands(CLI::App& app) {
  add_mel_like(app, "mel", "Write the normalised log-mel [T][80] as float32 and print its shape",
               run_mel);
  add_mel_like(app, "windows",
               "Write every encoder window [L][16][80] as float32 and print the start rows",
               run_windows);
}

}  // namespace lipsync::cli
