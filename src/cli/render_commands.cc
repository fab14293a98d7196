// `lipsync render` (audio file in, lip-synced video or frames out) and `lipsync bench render`.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
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
#include "core/system_info.h"
#include "core/text.h"
#include "core/thread_budget.h"
#include "infer/models.h"
#include "pipeline/frame_sinks.h"
#include "pipeline/offline_renderer.h"
#include "render/compositor.h"
#include "render/image_encoder.h"
#include "render/jpeg_splice.h"
#include "render/seams.h"

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
  InferFlags flags;
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
                   const std::string& audio_path, const InferFlags& flags) {
  Loaded l;
  if (!flags.audio.config_path.empty()) l.config = load_config_file(flags.audio.config_path);
  l.config.audio = flags.to_audio_options();
  l.config.infer = flags.to_infer_options();
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

// Each stage's time per frame, summed over the threads that ran it (they overlap).
nlohmann::json stage_ms_per_frame(const pipeline::RenderStats& s) {
  const double n = std::max(s.frames, 1);
  return {{"features", s.features_ms / n},   {"prepare", s.prepare_ms / n},
          {"generator", s.generator_ms / n}, {"composite", s.composite_ms / n},
          {"encode", s.encode_ms / n},       {"write", s.write_ms / n}};
}

void run_render(const RenderArgs& args) {
  Loaded in = load_inputs(args.avatar, args.models, args.audio, args.flags);
  pipeline::RenderOptions options = in.config.render;
  options.audio = in.config.audio;
  render::OutputOptions output = in.config.output;
  if (args.blend) output.blend = *args.blend;
  if (args.color_match) output.color_match = *args.color_match;
  options.blend = output.blend_options();
  if (args.batch) options.batch = *args.batch;
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

// bench render --------------------------------------------------------------------------------

struct BenchRenderArgs {
  std::string models;
  std::string avatar;
  int frames = 100;
  int batch = 0;  // render.batch's automatic choice
  int threads = 0;
  int intra_op_threads = 0;
  int parallel_runs = 0;  // infer.parallel_runs's automatic choice, as `lipsync render` resolves it
  int repeat = 3;
  bool spinning = false;
};

// Real speech for `frames` frames: the bundled clip, repeated as often as needed.
std::vector<float> speech_for_frames(int frames) {
  const std::vector<float> clip = audio::load_audio_file(demo_speech_path());
  const auto n = static_cast<std::size_t>(audio::samples_for_frames(frames) + audio::kMinSamples);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = clip[i % clip.size()];
  return out;
}

// The mean seam_step (render/seams.h) of the frames written, each against its template frame.
class SeamSink : public pipeline::FrameSink {
 public:
  explicit SeamSink(const avatar::Avatar& avatar) : avatar_(avatar) {}
  void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> /*encoded*/) override {
    const int t = avatar::template_frame_for(index, avatar_.frame_count(), 0);
    sum_ += render::seam_step(frame, *avatar_.frame(t), avatar::as_cv_rect(avatar_.crop_rect(t)));
    ++frames_;
  }
  void finish() override {}
  double mean() const { return frames_ > 0 ? sum_ / frames_ : 0.0; }

 private:
  const avatar::Avatar& avatar_;
  double sum_ = 0;
  int frames_ = 0;
};

void run_bench_render(const BenchRenderArgs& args) {
  infer::InferOptions infer_options;
  infer_options.intra_op_threads = args.intra_op_threads;
  infer_options.allow_spinning = args.spinning;
  infer_options.parallel_runs = args.parallel_runs;
  infer_options.validate();
  if (args.threads > 0) core::set_thread_budget(args.threads);  // the stage pools match
  infer_options.parallel_runs = infer_options.resolved_parallel_runs(/*throughput=*/true);
  const infer::Models models(args.models, infer_options);
  const fs::path avatar_dir = args.avatar.empty() ? demo_avatar_dir() : fs::path(args.avatar);
  const auto avatar = avatar::Avatar::open(avatar_dir, avatar::AvatarOptions{});
  const std::vector<float> samples = speech_for_frames(args.frames);
  const int frames = audio::clip_frames_for_samples(samples.size());
  pipeline::RenderOptions options;
  options.batch = args.batch;
  const pipeline::OfflineRenderer renderer(avatar, models, options);
  const int batch = renderer.batch();

  // 1. Work other than the networks, one core, warm ROI cache: pack + composite + JPEG q75.
  std::vector<float> image(contract::kImageInputSize);
  std::vector<float> fake_output(contract::kOutputSize, 0.5f);
  cv::Mat frame;
  const int n_templates = avatar->frame_count();
  for (int t = 0; t < std::min(n_templates, 25); ++t) avatar->pack_generator_input(t, image);
  std::vector<double> pack_ms, composite_ms, paste_ms, feather_ms, encode_ms;
  const render::BlendOptions feather_only{true, false, 0, 5};
  for (int i = 0; i < 50; ++i) {
    const int t = i % std::min(n_templates, 25);
    core::Stopwatch a;
    avatar->pack_generator_input(t, image);
    pack_ms.push_back(a.elapsed_ms());
    // The compositing the renderer does (the defaults, feather + ring: here each frame's own
    // correction, which costs what the averaged one does), then paste and feather alone.
    core::Stopwatch b;
    render::composite(*avatar, t, fake_output, render::BlendOptions{}, frame);
    composite_ms.push_back(b.elapsed_ms());
    b.reset();
    render::composite(*avatar, t, fake_output, render::BlendOptions::reference(), frame);
    paste_ms.push_back(b.elapsed_ms());
    b.reset();
    render::composite(*avatar, t, fake_output, feather_only, frame);
    feather_ms.push_back(b.elapsed_ms());
    core::Stopwatch c;
    (void)render::encode_jpeg(frame, render::OutputOptions{}.jpeg_quality);
    encode_ms.push_back(c.elapsed_ms());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  // The same composite and JPEG when the frame is spliced into its template frame's last one
  // (every visit after a template frame's first, render/jpeg_splice.h).
  std::vector<double> spliced_ms;
  if (avatar->jpeg_cache_bytes() > 0) {
    render::JpegSpliceCache splices(avatar, avatar->jpeg_cache_bytes());
    const int quality = render::OutputOptions{}.jpeg_quality;
    for (int t = 0; t < std::min(n_templates, 25); ++t) {
      (void)splices.composite_and_encode(t, fake_output, quality);
    }
    for (int i = 0; i < 50; ++i) {
      core::Stopwatch a;
      (void)splices.composite_and_encode(i % std::min(n_templates, 25), fake_output, quality);
      spliced_ms.push_back(a.elapsed_ms());
    }
  }

  // 2 and 3, alternated `repeat` times so drift in machine speed hits both alike: the generator
  // alone on the very inputs the renderer will make (the clip's ROIs on the template walk and its
  // audio features, in batches of `batch`, packed beforehand; only the runs are timed, from
  // parallel_runs threads at once as the scheduler's runners would run them), and the whole
  // renderer on the same clip into a JPEG sink.
  const infer::AudioEncoder& encoder = models.encoder();
  pipeline::FeatureTrack track = pipeline::FeatureTrack::from_features(
      pipeline::encode_clip_features(samples, encoder, audio::AudioOptions{}));
  struct PackedBatch {
    std::vector<float> images, audios;
  };
  std::vector<PackedBatch> batches;  // about 10 MB per batch of 4
  const auto n = static_cast<std::size_t>(batch);
  for (int first = 0; first + batch <= frames; first += batch) {
    PackedBatch& b =
        batches.emplace_back(PackedBatch{std::vector<float>(n * contract::kImageInputSize),
                                         std::vector<float>(n * contract::kAudioInputSize)});
    for (std::size_t i = 0; i < n; ++i) {
      const int index = first + static_cast<int>(i);
      avatar->pack_generator_input(avatar::template_frame_for(index, n_templates, 0),
                                   std::span<float>(b.images).subspan(i * contract::kImageInputSize,
                                                                      contract::kImageInputSize));
      track.frame_audio(index, std::span<float>(b.audios).subspan(i * contract::kAudioInputSize,
                                                                  contract::kAudioInputSize));
    }
  }
  auto generator_pass = [&] {
    std::atomic<std::size_t> next{0};
    auto run_batches = [&] {
      std::vector<float> output(n * contract::kOutputSize);
      for (std::size_t b = next++; b < batches.size(); b = next++) {
        models.generator().run(batch, batches[b].images, batches[b].audios, output);
      }
    };
    core::Stopwatch sw;
    std::vector<std::thread> others;
    for (int r = 1; r < infer_options.parallel_runs; ++r) others.emplace_back(run_batches);
    run_batches();
    for (auto& t : others) t.join();
    return static_cast<double>(batches.size()) * batch / (sw.elapsed_ms() / 1000.0);
  };
  pipeline::RenderStats s;
  auto renderer_pass = [&] {
    pipeline::DiscardingJpegSink sink(render::OutputOptions{}.jpeg_quality);
    s = renderer.render(samples, sink);
    return s.frames / s.seconds;
  };
  models.generator().warm_up(batch);
  std::vector<double> generator_runs, renderer_runs;
  for (int r = 0; r < args.repeat; ++r) {
    generator_runs.push_back(generator_pass());
    renderer_runs.push_back(renderer_pass());
  }
  const double generator_fps = median(generator_runs);
  const double renderer_fps = median(renderer_runs);
  // 4. Seams: the border step (render/seams.h seam_step) of each compositing on the clip's
  // first frames (at most 50), rendered by the whole renderer.
  const std::vector<float> seam_samples = speech_for_frames(std::min(frames, 50));
  nlohmann::json seams;
  for (const auto& [name, blend] :
       {std::pair{"paste", render::BlendOptions::reference()}, std::pair{"feather", feather_only},
        std::pair{"feather_ring", render::BlendOptions{}}}) {
    pipeline::RenderOptions seam_options = options;
    seam_options.blend = blend;
    SeamSink sink(*avatar);
    pipeline::OfflineRenderer(avatar, models, seam_options).render(seam_samples, sink);
    seams[name] = sink.mean();
  }
  nlohmann::json j{
      {"bench", "render"},
      {"models", args.models},
      {"avatar", avatar_dir.string()},
      {"frame_size", std::to_string(avatar->width()) + "x" + std::to_string(avatar->height())},
      {"frames", frames},
      {"batch", batch},
      {"generator_only_fps", generator_fps},
      {"renderer_fps", renderer_fps},
      {"generator_only_fps_runs", generator_runs},
      {"renderer_fps_runs", renderer_runs},
      {"spinning", infer_options.allow_spinning},
      {"renderer_vs_generator", renderer_fps / generator_fps},
      {"one_core_ms_per_frame",
       {{"roi_pack", median(pack_ms)},
        {"composite", median(composite_ms)},
        {"composite_paste", median(paste_ms)},
        {"composite_feather", median(feather_ms)},
        {"jpeg_q75", median(encode_ms)},
        {"total", median(pack_ms) + median(composite_ms) + median(encode_ms)},
        {"composite_and_jpeg_q75_spliced", spliced_ms.empty() ? 0.0 : median(spliced_ms)}}},
      {"renderer_ms_per_frame", stage_ms_per_frame(s)},
      {"border_step_levels", seams},
      {"intra_op_threads", infer_options.resolved_intra_op_threads()},
      {"parallel_runs", infer_options.parallel_runs}};
  j.update(machine_json(infer_options.resolved_intra_op_threads()));
  std::cout << core::json_text(j) << "\n";
}

}  // namespace

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
  cmd->add_option("--batch", args->batch,
                  "Generator frames per run (render.batch; default 0: 1 with parallel runs, "
                  "else 4)");
  cmd->add_option("--blend", args->blend,
                  "render.blend: feather (default) or paste, the reference's hard paste")
      ->check(CLI::IsMember({"paste", "feather"}));
  cmd->add_option("--color-match", args->color_match,
                  "render.color_match: ring (default) or off; paste with off is the reference "
                  "pipeline byte for byte")
      ->check(CLI::IsMember({"off", "ring"}));
  cmd->add_option("--format", args->format, "Frames in a folder: png (lossless) or jpeg")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  args->flags.add_to(*cmd);
  cmd->callback([args] { run_render(*args); });
}

void add_bench_render_command(CLI::App& bench) {
  auto bargs = std::make_shared<BenchRenderArgs>();
  CLI::App* bcmd = bench.add_subcommand(
      "render", "Generator-only vs whole-renderer frames per second, and per-stage costs");
  bcmd->add_option("--models", bargs->models, "Model folder")->required();
  bcmd->add_option("--avatar", bargs->avatar, "Avatar folder (default: the 1280x720 demo avatar)");
  bcmd->add_option("--frames", bargs->frames, "Frames to render")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000));
  bcmd->add_option("--batch", bargs->batch,
                   "Generator frames per run (0: as render chooses, 1 with parallel runs, else 4)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  bcmd->add_option("--threads", bargs->threads,
                   "Thread budget (cpu.threads; 0: the CPUs this process may run on)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  bcmd->add_option(
          "--intra-op-threads", bargs->intra_op_threads,
          "ONNX Runtime threads per run (infer.intra_op_threads; 0: budget / parallel runs)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  bcmd->add_option("--repeat", bargs->repeat, "Generator and renderer passes, alternated")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  bcmd->add_option("--parallel-runs", bargs->parallel_runs,
                   "Generator batches at once, each on budget / N threads (infer.parallel_runs; "
                   "0: as render chooses, the thread budget on the CPU)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  bcmd->add_flag("--spinning", bargs->spinning,
                 "Let ONNX Runtime's threads spin between runs (infer.allow_spinning)");
  bcmd->callback([bargs] { run_bench_render(*bargs); });
}

}  // namespace lipsync::cli
