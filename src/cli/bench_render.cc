// `lipsync bench render`: the generator alone against the whole renderer on the same clip, the
// per-frame costs of the work around the networks on one core, and the border step of each way
// of compositing.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "audio/audio_file.h"
#include "audio/mel_constants.h"
#include "audio/video_frames.h"
#include "avatar/avatar.h"
#include "avatar/template_walk.h"
#include "cli/commands.h"
#include "cli/demo_assets.h"
#include "cli/options_flags.h"
#include "contract/model_family.h"
#include "core/json_text.h"
#include "core/stopwatch.h"
#include "core/thread_budget.h"
#include "infer/models.h"
#include "pipeline/feature_track.h"
#include "pipeline/frame_sinks.h"
#include "pipeline/offline_renderer.h"
#include "render/compositor.h"
#include "render/image_encoder.h"
#include "render/jpeg_splice.h"
#include "render/seams.h"

namespace lipsync::cli {
namespace {

namespace fs = std::filesystem;

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

// The compositing without the ring correction: the feather alone.
const render::BlendOptions kFeatherOnly{true, false, 0, 5};

// 1. The work other than the networks, per frame on one core with a warm ROI cache (medians of
// 50): ROI packing, compositing (as the renderer does it, feather + ring: here each frame's own
// correction, which costs what the averaged one does; then paste and feather alone), JPEG q75,
// and compositing with JPEG when the frame is spliced into its template frame's last one (every
// visit after a template frame's first, render/jpeg_splice.h).
nlohmann::json one_core_costs(const std::shared_ptr<const avatar::Avatar>& avatar) {
  std::vector<float> image(contract::kImageInputSize);
  const std::vector<float> fake_output(contract::kOutputSize, 0.5f);
  cv::Mat frame;
  const int templates = std::min(avatar->frame_count(), 25);
  for (int t = 0; t < templates; ++t) avatar->pack_generator_input(t, image);
  std::vector<double> pack_ms, composite_ms, paste_ms, feather_ms, encode_ms;
  for (int i = 0; i < 50; ++i) {
    const int t = i % templates;
    core::Stopwatch a;
    avatar->pack_generator_input(t, image);
    pack_ms.push_back(a.elapsed_ms());
    core::Stopwatch b;
    render::composite(*avatar, t, fake_output, render::BlendOptions{}, frame);
    composite_ms.push_back(b.elapsed_ms());
    b.reset();
    render::composite(*avatar, t, fake_output, render::BlendOptions::reference(), frame);
    paste_ms.push_back(b.elapsed_ms());
    b.reset();
    render::composite(*avatar, t, fake_output, kFeatherOnly, frame);
    feather_ms.push_back(b.elapsed_ms());
    core::Stopwatch c;
    (void)render::encode_jpeg(frame, render::OutputOptions{}.jpeg_quality);
    encode_ms.push_back(c.elapsed_ms());
  }
  std::vector<double> spliced_ms;
  if (avatar->jpeg_cache_bytes() > 0) {
    render::JpegSpliceCache splices(avatar, avatar->jpeg_cache_bytes());
    const int quality = render::OutputOptions{}.jpeg_quality;
    for (int t = 0; t < templates; ++t) (void)splices.composite_and_encode(t, fake_output, quality);
    for (int i = 0; i < 50; ++i) {
      core::Stopwatch a;
      (void)splices.composite_and_encode(i % templates, fake_output, quality);
      spliced_ms.push_back(a.elapsed_ms());
    }
  }
  return {{"roi_pack", median(pack_ms)},
          {"composite", median(composite_ms)},
          {"composite_paste", median(paste_ms)},
          {"composite_feather", median(feather_ms)},
          {"jpeg_q75", median(encode_ms)},
          {"total", median(pack_ms) + median(composite_ms) + median(encode_ms)},
          {"composite_and_jpeg_q75_spliced", median(spliced_ms)}};
}

// The generator's inputs for a batch of frames, packed beforehand (about 10 MB per batch of 4).
struct PackedBatch {
  std::vector<float> images;
  std::vector<float> audios;
};

// The very inputs the renderer makes for the clip `samples` (its ROIs on the template walk, its
// audio features), in whole batches of `batch`.
std::vector<PackedBatch> pack_clip(const avatar::Avatar& avatar, const infer::Models& models,
                                   const std::vector<float>& samples, int batch) {
  pipeline::FeatureTrack track = pipeline::FeatureTrack::from_features(
      pipeline::encode_clip_features(samples, models.encoder(), audio::AudioOptions{}));
  const int frames = audio::clip_frames_for_samples(samples.size());
  const auto n = static_cast<std::size_t>(batch);
  std::vector<PackedBatch> batches;
  for (int first = 0; first + batch <= frames; first += batch) {
    PackedBatch& b =
        batches.emplace_back(PackedBatch{std::vector<float>(n * contract::kImageInputSize),
                                         std::vector<float>(n * contract::kAudioInputSize)});
    for (std::size_t i = 0; i < n; ++i) {
      const int index = first + static_cast<int>(i);
      avatar.pack_generator_input(avatar::template_frame_for(index, avatar.frame_count(), 0),
                                  std::span<float>(b.images).subspan(i * contract::kImageInputSize,
                                                                     contract::kImageInputSize));
      track.frame_audio(index, std::span<float>(b.audios).subspan(i * contract::kAudioInputSize,
                                                                  contract::kAudioInputSize));
    }
  }
  return batches;
}

// 2. The generator alone: frames per second over `batches`, only the runs timed, from
// `parallel_runs` threads at once as the scheduler's runners run them.
double generator_fps(const infer::Models& models, const std::vector<PackedBatch>& batches,
                     int batch, int parallel_runs) {
  std::atomic<std::size_t> next{0};
  auto run_batches = [&] {
    std::vector<float> output(static_cast<std::size_t>(batch) * contract::kOutputSize);
    for (std::size_t b = next++; b < batches.size(); b = next++) {
      models.generator().run(batch, batches[b].images, batches[b].audios, output);
    }
  };
  core::Stopwatch sw;
  std::vector<std::thread> others;
  for (int r = 1; r < parallel_runs; ++r) others.emplace_back(run_batches);
  run_batches();
  for (auto& t : others) t.join();
  return static_cast<double>(batches.size()) * batch / (sw.elapsed_ms() / 1000.0);
}

// The mean seam_step (render/seams.h) of the frames written, each against its template frame.
class SeamSink : public pipeline::FrameSink {
 public:
  explicit SeamSink(const avatar::Avatar& avatar) : avatar_(avatar) {}
  void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> /*encoded*/) override {
    const int t = avatar::template_frame_for(index, avatar_.frame_count(), 0);
    const auto tmpl = avatar_.frame(t);
    sum_ += render::seam_step(frame, *tmpl, avatar::as_cv_rect(avatar_.crop_rect(t)));
    ++frames_;
  }
  void finish() override {}
  double mean() const { return frames_ > 0 ? sum_ / frames_ : 0.0; }

 private:
  const avatar::Avatar& avatar_;
  double sum_ = 0;
  int frames_ = 0;
};

// 4. Seams: the border step of each way of compositing, on the clip's first frames (at most 50)
// rendered by the whole renderer.
nlohmann::json seam_steps(const std::shared_ptr<const avatar::Avatar>& avatar,
                          const infer::Models& models, const pipeline::RenderOptions& options,
                          int frames) {
  const std::vector<float> samples = speech_for_frames(std::min(frames, 50));
  nlohmann::json seams;
  for (const auto& [name, blend] :
       {std::pair{"paste", render::BlendOptions::reference()}, std::pair{"feather", kFeatherOnly},
        std::pair{"feather_ring", render::BlendOptions{}}}) {
    pipeline::RenderOptions seam_options = options;
    seam_options.blend = blend;
    SeamSink sink(*avatar);
    pipeline::OfflineRenderer(avatar, models, seam_options).render(samples, sink);
    seams[name] = sink.mean();
  }
  return seams;
}

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
  const nlohmann::json one_core = one_core_costs(avatar);

  // 2 and 3, alternated `repeat` times so that drift in the machine's speed hits both alike: the
  // generator alone on the renderer's inputs, and the whole renderer on the same clip into a
  // JPEG sink.
  const std::vector<PackedBatch> batches = pack_clip(*avatar, models, samples, batch);
  models.generator().warm_up(batch);
  std::vector<double> generator_runs, renderer_runs;
  pipeline::RenderStats s;
  for (int r = 0; r < args.repeat; ++r) {
    generator_runs.push_back(generator_fps(models, batches, batch, infer_options.parallel_runs));
    pipeline::DiscardingJpegSink sink(render::OutputOptions{}.jpeg_quality);
    s = renderer.render(samples, sink);
    renderer_runs.push_back(s.frames / s.seconds);
  }
  const double generator = median(generator_runs);
  const double whole = median(renderer_runs);
  nlohmann::json j{
      {"bench", "render"},
      {"models", args.models},
      {"avatar", avatar_dir.string()},
      {"frame_size", std::to_string(avatar->width()) + "x" + std::to_string(avatar->height())},
      {"frames", frames},
      {"batch", batch},
      {"generator_only_fps", generator},
      {"renderer_fps", whole},
      {"generator_only_fps_runs", generator_runs},
      {"renderer_fps_runs", renderer_runs},
      {"spinning", infer_options.allow_spinning},
      {"renderer_vs_generator", whole / generator},
      {"one_core_ms_per_frame", one_core},
      {"renderer_ms_per_frame", stage_ms_per_frame(s)},
      {"border_step_levels", seam_steps(avatar, models, options, frames)},
      {"intra_op_threads", infer_options.resolved_intra_op_threads()},
      {"parallel_runs", infer_options.parallel_runs}};
  j.update(machine_json(infer_options.resolved_intra_op_threads()));
  std::cout << core::json_text(j) << "\n";
}

}  // namespace

void add_bench_render_command(CLI::App& bench) {
  auto bargs = std::make_shared<BenchRenderArgs>();
  CLI::App* bcmd = bench.add_subcommand(
      "render", "Generator-only vs whole-renderer frames per second, and per-stage costs");
  bcmd->add_option("--models", bargs->models, "Model folder")->required();
  bcmd->add_option("--avatar", bargs->avatar, "Avatar folder (default: the 1280x720 demo avatar)");
  bcmd->add_option("--frames", bargs->frames, "Frames to render")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000));
  add_key_flag(*bcmd, "--batch", bargs->batch, "render.batch");
  add_key_flag(*bcmd, "--threads", bargs->threads, "cpu.threads");
  add_key_flag(*bcmd, "--intra-op-threads", bargs->intra_op_threads, "infer.intra_op_threads");
  bcmd->add_option("--repeat", bargs->repeat, "Generator and renderer passes, alternated")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  add_key_flag(*bcmd, "--parallel-runs", bargs->parallel_runs, "infer.parallel_runs");
  bcmd->add_flag("--spinning", bargs->spinning,
                 key_flag_help("--spinning", config_key("infer.allow_spinning").info,
                               "the flag sets it true"));
  bcmd->callback([bargs] { run_bench_render(*bargs); });
}

}  // namespace lipsync::cli
