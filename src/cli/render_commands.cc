// `lipsync render`: audio file in, lip-synced video or frames out.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "audio/audio_file.h"
#include "audio/video_frames.h"
#include "avatar/avatar.h"
#include "avatar/template_walk.h"
#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/demo_assets.h"
#include "cli/options_flags.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/stopwatch.h"
#include "core/text.h"
#include "infer/models.h"
#include "pipeline/frame_sinks.h"
#include "pipeline/offline_renderer.h"

namespace lipsync::cli {
namespace {

namespace fs = std::filesystem;

struct RenderArgs {
  std::string avatar;
  std::string models;
  std::string audio;
  std::string output;
  std::optional<int> start_frame;
  std::optional<int> batch;
  std::optional<std::string> blend;
  std::optional<std::string> color_match;
  std::string format = "png";
  bool quiet = false;
  CommandFlags flags{CommandFlags::kInfer};
};

// Everything a render needs, opened and checked before any output exists.
struct Loaded {
  std::unique_ptr<audio::AudioFileReader> audio;
  std::shared_ptr<const avatar::Avatar> avatar;
  std::unique_ptr<infer::Models> models;
  ConfigFile config;
  fs::path avatar_dir, models_dir, audio_path;
};

Loaded load_inputs(const std::string& avatar_dir, const std::string& models_dir,
                   const std::string& audio_path, ConfigFile config) {
  Loaded l;
  l.config = std::move(config);
  // Rendering is throughput work: automatic parallel runs resolve to one run per core on the CPU.
  l.config.infer.parallel_runs = l.config.infer.resolved_parallel_runs(/*throughput=*/true);
  l.audio_path = audio_path.empty() ? demo_speech_path() : fs::path(audio_path);
  l.audio = std::make_unique<audio::AudioFileReader>(l.audio_path, l.config.audio.max_seconds);
  const auto expected = l.audio->expected_samples();
  if (expected) {  // too short: fail before anything else
    try {
      (void)audio::clip_frames_for_samples(static_cast<std::size_t>(*expected));
    } catch (const Error& e) {
      throw e.with_context("'" + l.audio_path.string() + "'");
    }
  }
  l.avatar_dir = avatar_dir.empty() ? demo_avatar_dir() : fs::path(avatar_dir);
  l.avatar = avatar::Avatar::open(l.avatar_dir, l.config.avatar);
  l.models_dir = models_dir.empty() ? demo_models_dir() : fs::path(models_dir);
  l.models = std::make_unique<infer::Models>(l.models_dir, l.config.infer);
  return l;
}

std::string lower_extension(const std::string& path) {
  return core::to_lower_ascii(fs::path(path).extension().string());
}

// The sink -o names: OUT.mp4 is a video; a name without an extension (or an existing folder) a
// folder of frames; anything else is refused rather than guessed.
std::unique_ptr<pipeline::FrameSink> make_sink(const std::string& output, const std::string& format,
                                               const Loaded& in) {
  if (format != "png" && format != "jpeg") {
    throw Error::invalid_input("--format " + format + ": expected png or jpeg");
  }
  const std::string ext = lower_extension(output);
  if (ext == ".mp4") {
    return std::make_unique<pipeline::Mp4Sink>(output, in.avatar->width(), in.avatar->height(),
                                               in.config.output);
  }
  std::error_code ec;
  if (!ext.empty() && !fs::is_directory(output, ec)) {
    throw Error::invalid_input("-o " + output + ": unknown extension '" + ext +
                               "'; expected OUT.mp4 (a video) or a folder name (frames)");
  }
  return std::make_unique<pipeline::ImageFolderSink>(
      output, format == "jpeg" ? render::ImageFormat::kJpeg : render::ImageFormat::kPng,
      in.config.output.jpeg_quality);
}

// A one-line progress bar on stderr: frames done / total, frames per second, time left.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void update(int done, int total) {
    if (!enabled_) return;
    const double s = clock_.elapsed_ms() / 1000.0;
    const double fps = s > 0 ? done / s : 0;
    const int width = 30;
    const int filled = total > 0 ? width * std::min(done, total) / total : width;
    const double left = fps > 0 ? std::max(0, total - done) / fps : 0;
    std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
              << done << "/" << total << " frames  " << std::fixed;
    std::cerr.precision(1);
    std::cerr << fps << " fps  " << std::lround(left) << " s left   " << std::flush;
    if (done == total) std::cerr << "\n";
  }

 private:
  bool enabled_;
  core::Stopwatch clock_;
};

void run_render(const RenderArgs& args) {
  ConfigFile config = args.flags.config();
  if (args.blend) config.output.blend = *args.blend;
  if (args.color_match) config.output.color_match = *args.color_match;
  if (args.batch) config.render.batch = *args.batch;
  Loaded in = load_inputs(args.avatar, args.models, args.audio, std::move(config));
  pipeline::RenderOptions options = in.config.render_options();
  if (args.start_frame) options.start_frame = *args.start_frame;
  const pipeline::OfflineRenderer renderer(in.avatar, *in.models, options);
  if (avatar::walk_is_frozen(in.avatar->frame_count(), options.start_frame)) {
    std::cerr << "lipsync: warning: start frame " << options.start_frame
              << " is neither 0 nor the last frame; as in the reference, every output frame "
                 "then uses that one template frame\n";
  }
  const std::unique_ptr<pipeline::FrameSink> sink = make_sink(args.output, args.format, in);
  ProgressBar bar(!args.quiet && ::isatty(STDERR_FILENO));
  const pipeline::RenderStats stats =
      renderer.render(*in.audio, *sink, [&](int done, int total) { bar.update(done, total); });
  std::cout << core::json_text({{"frames", stats.frames},
                                {"seconds", stats.seconds},
                                {"fps", stats.frames / std::max(stats.seconds, 1e-9)},
                                {"audio_seconds", audio::seconds_for_samples(stats.audio_samples)},
                                {"batch", renderer.batch()},
                                {"parallel_runs", in.models->generator().parallel_runs()},
                                {"ms_per_frame", stage_ms_per_frame(stats)},
                                {"output", args.output}})
            << "\n";
}

}  // namespace

nlohmann::json stage_ms_per_frame(const pipeline::RenderStats& s) {
  const double n = std::max(s.frames, 1);
  return {{"features", s.features_ms / n},   {"prepare", s.prepare_ms / n},
          {"generator", s.generator_ms / n}, {"composite", s.composite_ms / n},
          {"encode", s.encode_ms / n},       {"write", s.write_ms / n}};
}

void add_render_commands(CLI::App& app) {
  auto args = std::make_shared<RenderArgs>();
  CLI::App* cmd = app.add_subcommand(
      "render", "Audio in, lip-synced video out (no --avatar/--models/--audio: the built-in demo)");
  cmd->add_option("--avatar", args->avatar, "Avatar folder (default: the demo avatar)");
  cmd->add_option("--models", args->models, "Model folder (default: the demo models)");
  cmd->add_option("--audio", args->audio, "Speech file (default: the bundled demo clip)");
  cmd->add_option("-o,--output", args->output,
                  "OUT.mp4 (video with the audio) or a folder (frames %05d.png / .jpg)")
      ->required();
  cmd->add_option("--start-frame", args->start_frame, "Template frame the walk starts from");
  add_key_flag(*cmd, "--batch", args->batch, "render.batch");
  add_key_flag(*cmd, "--blend", args->blend, "render.blend");
  add_key_flag(*cmd, "--color-match", args->color_match, "render.color_match",
               "paste with off is the reference pipeline byte for byte");
  cmd->add_option("--format", args->format, "Frames in a folder: png (lossless) or jpeg")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  args->flags.add_to(*cmd);
  cmd->callback([args] { run_render(*args); });
}

}  // namespace lipsync::cli
