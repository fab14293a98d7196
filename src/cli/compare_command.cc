// `lipsync models compare`: how close a models folder's frames are to a baseline's (an int8
// generator against the fp32 one it came from) on an avatar and speech, and how much faster
// its generator is. Each frame's generator inputs are made once and run through both
// generators at batch 1; both outputs are composited as the reference pastes them, and compared
// inside the frame's crop rect (where the generated face goes), 8-bit, as PSNR.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "audio/audio_file.h"
#include "avatar/avatar.h"
#include "avatar/template_walk.h"
#include "cli/commands.h"
#include "cli/demo_assets.h"
#include "cli/options_flags.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "core/json_text.h"
#include "core/stopwatch.h"
#include "infer/models.h"
#include "pipeline/feature_track.h"
#include "render/compositor.h"

namespace lipsync::cli {
namespace {

struct CompareArgs {
  std::string models;
  std::string baseline;
  std::string avatar;
  std::string audio;
  int frames = 0;
  int start_frame = 0;
  CommandFlags flags{CommandFlags::kInfer};
};

// PSNR of two 8-bit images; identical images give +inf (reported as null; cv::PSNR would say
// 361).
double psnr(const cv::Mat& a, const cv::Mat& b) {
  const double mse =
      cv::norm(a, b, cv::NORM_L2SQR) / (static_cast<double>(a.total()) * a.channels());
  return mse == 0 ? std::numeric_limits<double>::infinity()
                  : 10.0 * std::log10(255.0 * 255.0 / mse);
}

nlohmann::json db(double v) {
  return std::isfinite(v) ? nlohmann::json(std::round(v * 100) / 100) : nlohmann::json(nullptr);
}

void run_compare(const CompareArgs& args) {
  const infer::InferOptions options = args.flags.infer_options();
  const infer::Models models(args.models, options);
  const infer::Models baseline(args.baseline, options);
  const auto avatar = avatar::Avatar::open(
      args.avatar.empty() ? demo_avatar_dir() : std::filesystem::path(args.avatar), {});
  if (args.start_frame < 0 || args.start_frame >= avatar->frame_count()) {
    throw Error::invalid_input("--start-frame " + std::to_string(args.start_frame) +
                               ": expected 0.." + std::to_string(avatar->frame_count() - 1));
  }
  const std::vector<float> samples =
      audio::load_audio_file(args.audio.empty() ? demo_speech_path().string() : args.audio);
  // The baseline's encoder makes the features both generators read: only the generators differ.
  const pipeline::FeatureTrack track = pipeline::FeatureTrack::from_features(
      pipeline::encode_clip_features(samples, baseline.encoder(), audio::AudioOptions{}));
  const int total = track.total_frames();
  const int frames = args.frames > 0 ? std::min(args.frames, total) : total;

  std::vector<float> image(contract::kImageInputSize), audio_in(contract::kAudioInputSize);
  std::vector<float> out_a(contract::kOutputSize), out_b(contract::kOutputSize);
  models.generator().warm_up(1);
  baseline.generator().warm_up(1);
  std::vector<double> ms_models, ms_baseline;
  cv::Mat frame_a, frame_b;
  const render::BlendOptions paste = render::BlendOptions::reference();
  double worst = std::numeric_limits<double>::infinity();
  int worst_frame = -1;
  double sum_db = 0;
  int finite = 0;
  for (int i = 0; i < frames; ++i) {
    const int t = avatar::template_frame_for(i, avatar->frame_count(), args.start_frame);
    avatar->pack_generator_input(t, image);
    track.frame_audio(i, audio_in);
    // Alternated, so drift in machine speed hits both alike.
    core::Stopwatch sw;
    baseline.generator().run(1, image, audio_in, out_b);
    ms_baseline.push_back(sw.elapsed_ms());
    sw.reset();
    models.generator().run(1, image, audio_in, out_a);
    ms_models.push_back(sw.elapsed_ms());
    render::composite(*avatar, t, out_a, paste, frame_a);
    render::composite(*avatar, t, out_b, paste, frame_b);
    const cv::Rect rect = avatar::as_cv_rect(avatar->crop_rect(t));
    const double p = psnr(frame_a(rect), frame_b(rect));
    if (p < worst) {
      worst = p;
      worst_frame = i;
    }
    if (std::isfinite(p)) {
      sum_db += p;
      ++finite;
    }
  }
  const double mean = finite > 0 ? sum_db / finite : std::numeric_limits<double>::infinity();
  nlohmann::json j{
      {"models", args.models},
      {"baseline", args.baseline},
      {"avatar", avatar->dir().string()},
      {"frames", frames},
      {"crop_psnr_db", {{"worst", db(worst)}, {"mean", db(mean)}, {"worst_frame", worst_frame}}},
      {"generator_ms_batch_1", {{"models", median(ms_models)}, {"baseline", median(ms_baseline)}}},
      {"speedup", median(ms_baseline) / std::max(1e-9, median(ms_models))}};
  j.update(machine_json(options.resolved_intra_op_threads()));
  std::cout << core::json_text(j) << "\n";
}

}  // namespace

void add_models_compare_command(CLI::App& models) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = models.add_subcommand(
      "compare",
      "How close a models folder's frames are to a baseline's (int8 against its fp32 source): "
      "PSNR inside the crop rect, worst and mean, and the generator speedup at batch 1");
  cmd->add_option("--models", args->models, "The models folder to judge (an int8 one)")->required();
  cmd->add_option("--baseline", args->baseline, "The models folder it is compared with (fp32)")
      ->required();
  cmd->add_option("--avatar", args->avatar, "Avatar folder (default: the demo avatar)");
  cmd->add_option("--audio", args->audio, "Speech file (default: the bundled demo clip)");
  cmd->add_option("--frames", args->frames, "At most this many frames (0: the whole clip)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--start-frame", args->start_frame, "Template frame the walk starts from");
  args->flags.add_to(*cmd);
  cmd->callback([args] { run_compare(*args); });
}

}  // namespace lipsync::cli
