// `lipsync features` (audio file -> encoder features) and `lipsync models synth|demo|import` (the
// model tool: writes synthetic or demo SyncTalk_2D models, or imports trained checkpoints).
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "audio/audio_file.h"
#include "avatar/avatar.h"
#include "avatar/template_walk.h"
#include "cli/commands.h"
#include "cli/demo_assets.h"
#include "cli/options_flags.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json_text.h"
#include "infer/audio_encoder.h"
#include "infer/execution_providers.h"
#include "infer/models.h"
#include "infer/session.h"
#include "modelgen/demo_models.h"
#include "modelgen/quantize.h"
#include "modelgen/synctalk_import.h"
#include "modelgen/synth_models.h"
#include "pipeline/feature_track.h"

namespace lipsync::cli {
namespace {

struct FeaturesArgs {
  std::string input;
  std::string models;
  std::string output;
  CommandFlags flags{CommandFlags::kInfer};
};

void run_features(const FeaturesArgs& args) {
  const audio::AudioOptions audio_options = args.flags.audio_options();
  const infer::InferOptions infer_options = args.flags.infer_options();
  // Only the encoder is needed; check the folder the same way a full load would.
  const std::filesystem::path dir(args.models);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw Error::not_found("models " + dir.string() + ": no such folder");
  }
  const infer::AudioEncoder encoder(dir / infer::kEncoderFileName, infer_options);
  const std::vector<float> samples = audio::load_audio_file(args.input);
  const pipeline::ClipFeatures features =
      pipeline::encode_clip_features(samples, encoder, audio_options);
  core::write_file_atomically(args.output, std::as_bytes(std::span(features.values)));
  std::cout << core::json_text({{"windows", features.windows}, {"frames", features.windows + 2}})
            << "\n";
}

struct ImportArgs {
  std::string unet;
  std::string audio_encoder;
  std::string output;
  std::string name;
};

void run_import(const ImportArgs& args) {
  const modelgen::ImportedModels imported =
      modelgen::import_synctalk_models(args.unet, args.audio_encoder, args.output, args.name);
  nlohmann::json out = imported.manifest.to_json();
  out["output"] = args.output;
  if (!imported.notes.empty()) out["notes"] = imported.notes;
  std::cout << core::json_text(out) << "\n";
}

struct QuantizeArgs {
  std::string models;
  std::string avatar;
  std::vector<std::string> audio;
  std::string calibration = "minmax";
  std::string concat_scales = "shared";
  std::string weights = "reduced";
  int frames = 32;
  int float_convs = 0;
  bool float_audio = false;
  std::string output;
  CommandFlags flags{CommandFlags::kInfer};
};

// The calibration inputs: `frames` frames spread evenly over the speech (the given files one
// after another), each on the template frame the walk gives it, packed as the renderer does.
std::vector<modelgen::CalibrationFrame> calibration_frames(const QuantizeArgs& a,
                                                           const infer::InferOptions& options,
                                                           std::vector<std::string>& names) {
  const std::filesystem::path models(a.models);
  const infer::AudioEncoder encoder(models / infer::kEncoderFileName, options);
  const auto avatar = avatar::Avatar::open(a.avatar, avatar::AvatarOptions{});
  std::vector<pipeline::FeatureTrack> tracks;
  std::vector<std::pair<int, int>> all;  // (track, frame)
  const std::vector<std::string> files =
      a.audio.empty() ? std::vector<std::string>{demo_speech_path().string()} : a.audio;
  for (const std::string& f : files) {
    const std::vector<float> samples = audio::load_audio_file(f);
    tracks.push_back(pipeline::FeatureTrack::from_features(
        pipeline::encode_clip_features(samples, encoder, a.flags.audio_options())));
    for (int i = 0; i < tracks.back().total_frames(); ++i) {
      all.emplace_back(static_cast<int>(tracks.size()) - 1, i);
    }
    names.push_back(std::filesystem::path(f).filename().string());
  }
  const int n = std::min<int>(a.frames, static_cast<int>(all.size()));
  std::vector<modelgen::CalibrationFrame> out(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) {
    const auto [track, frame] = all[static_cast<std::size_t>(k) * all.size() / n];
    auto& f = out[static_cast<std::size_t>(k)];
    f.image.resize(contract::kImageInputSize);
    f.audio.resize(contract::kAudioInputSize);
    avatar->pack_generator_input(avatar::template_frame_for(frame, avatar->frame_count(), 0),
                                 f.image);
    tracks[static_cast<std::size_t>(track)].frame_audio(frame, f.audio);
  }
  return out;
}

void run_quantize(const QuantizeArgs& a) {
  if (a.frames < 1 || a.frames > 10000) {
    throw Error::invalid_input("--frames " + std::to_string(a.frames) + ": expected 1..10000");
  }
  modelgen::QuantizeOptions options;
  options.calibration = modelgen::parse_calibration(a.calibration);
  options.concat_scales = modelgen::parse_concat_scales(a.concat_scales);
  options.weight_range = modelgen::parse_weight_range(a.weights);
  options.float_convs = a.float_convs;
  options.float_audio = a.float_audio;
  const infer::InferOptions infer_options = a.flags.infer_options();
  std::error_code ec;
  if (!std::filesystem::is_directory(a.models, ec)) {
    throw Error::not_found("models " + a.models + ": no such folder");
  }
  if (!std::filesystem::is_directory(a.avatar, ec)) {
    throw Error::not_found("avatar " + a.avatar + ": no such folder");
  }
  std::vector<std::string> names;
  const auto frames = calibration_frames(a, infer_options, names);
  const infer::ModelManifest m =
      modelgen::write_quantized_models(a.models, frames, names, options, infer_options, a.output);
  nlohmann::json out = m.to_json();
  out["output"] = a.output;
  std::cout << core::json_text(out) << "\n";
}

struct SynthArgs {
  std::string output;
  double width = 1.0;
  std::uint64_t seed = 1;
};

struct ProvidersArgs {
  CommandFlags flags{CommandFlags::kInfer};
  std::string library_dir;
  std::string require;
};

// `lipsync providers`: one JSON line per execution provider: its library, whether a session can
// use it with these options, why not, and its devices. With --require NAME, a provider that
// cannot be used is the command's error.
void run_providers(const ProvidersArgs& args) {
  infer::InferOptions options = args.flags.infer_options();
  if (!args.library_dir.empty()) options.provider_library_dir = args.library_dir;
  const auto reports = infer::check_execution_providers(options);
  std::vector<std::string> dirs;
  for (const auto& d : infer::provider_library_dirs(options)) dirs.push_back(d.string());
  std::cout << core::json_text(
                   {{"onnxruntime", infer::onnxruntime_version()}, {"library_dirs", dirs}})
            << "\n";
  bool found = args.require.empty();
  for (const auto& r : reports) {
    nlohmann::json line{{"provider", r.name}, {"usable", r.usable}, {"devices", r.devices}};
    if (!r.library.empty()) line["library"] = r.library;
    if (!r.error.empty()) line["error"] = r.error;
    std::cout << core::json_text(line) << "\n";
    if (r.name == args.require) {
      found = true;
      if (!r.usable) throw Error::invalid_input(r.error);
    }
  }
  if (!found) throw Error::invalid_input("--require " + args.require + ": unknown provider");
}

// Declares `lipsync providers`: its flags and what it runs.
void add_providers_command(CLI::App& app) {
  auto args = std::make_shared<ProvidersArgs>();
  CLI::App* cmd = app.add_subcommand(
      "providers",
      "List the execution providers (cpu, cuda, tensorrt): library, usable, devices, or why not");
  add_key_flag(*cmd, "--provider-dir", args->library_dir, "infer.provider_library_dir");
  cmd->add_option("--require", args->require,
                  "Fail (exit 2, with the reason) unless this provider is usable");
  args->flags.add_to(*cmd);
  cmd->callback([args] { run_providers(*args); });
}

// Declares `lipsync models synth`: its flags and what it runs.
void add_synth_command(CLI::App& models) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = models.add_subcommand(
      "synth", "Seeded random weights, the real architecture (width 1.0: the real cost)");
  cmd->add_option("-o,--output", args->output, "Output folder")->required();
  cmd->add_option("--width", args->width, "Channel-width factor (0 < W <= 4)")->default_val(1.0);
  cmd->add_option("--seed", args->seed, "Weight seed")->default_val(1);
  cmd->callback([args] {
    modelgen::write_synth_models(args->output, args->width, args->seed);
    const auto manifest =
        infer::ModelManifest::load(std::filesystem::path(args->output) / "model.json");
    nlohmann::json out = manifest.to_json();
    out["output"] = args->output;
    std::cout << core::json_text(out) << "\n";
  });
}

// Declares `lipsync models import`: its flags and what it runs.
void add_import_command(CLI::App& models) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = models.add_subcommand(
      "import",
      "A models folder from a trained SyncTalk_2D model's PyTorch checkpoints ('ave' audio "
      "mode; no Python needed)");
  cmd->add_option("--unet", args->unet,
                  "U-Net checkpoint: train_328.py's checkpoint/<name>/<epoch>.pth")
      ->required();
  cmd->add_option("--audio-encoder", args->audio_encoder,
                  "Audio encoder checkpoint: model/checkpoints/audio_visual_encoder.pth")
      ->required();
  cmd->add_option("-o,--output", args->output, "New models folder (must not exist, or be empty)")
      ->required();
  cmd->add_option("--name", args->name, "Model name (default: the folder name)");
  cmd->callback([args] { run_import(*args); });
}

// Declares `lipsync models quantize`: its flags and what it runs.
void add_quantize_command(CLI::App& models) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = models.add_subcommand(
      "quantize",
      "An int8 (static QDQ) generator calibrated on the avatar's ROIs and speech features");
  cmd->add_option("--models", args->models, "Float32 models folder")->required();
  cmd->add_option("--avatar", args->avatar, "Avatar folder whose ROIs calibrate")->required();
  cmd->add_option("--audio", args->audio, "Speech files (default: the bundled clip)");
  cmd->add_option("--calibration", args->calibration, "minmax or percentile")
      ->capture_default_str();
  cmd->add_option("--concat-scales", args->concat_scales,
                  "shared (a Concat's inputs take its output's scale: faster) or per-input "
                  "(each keeps its own range: more exact)")
      ->capture_default_str();
  cmd->add_option("--weights", args->weights,
                  "reduced (7-bit weights: correct on every CPU) or full (8-bit: about 0.5 dB "
                  "better, but only CPUs with VNNI compute it correctly)")
      ->capture_default_str();
  cmd->add_option("--frames", args->frames, "Calibration frames, spread over the speech")
      ->capture_default_str();
  cmd->add_option("--float-convs", args->float_convs,
                  "Convs kept in float at each end of the generator (where it sees the image "
                  "and makes the output: the most sensitive layers); 0: all int8")
      ->capture_default_str()
      ->check(CLI::Range(0, 50));
  cmd->add_flag("--float-audio", args->float_audio,
                "Keep the audio branch in float: it sees the voice, which shifts from speaker "
                "to speaker more than calibration covers, and costs little");
  cmd->add_option("-o,--output", args->output, "New models folder")->required();
  args->flags.add_to(*cmd);
  cmd->callback([args] { run_quantize(*args); });
}

// Declares `lipsync models demo`: its flags and what it runs.
void add_demo_command(CLI::App& models) {
  auto output = std::make_shared<std::string>();
  CLI::App* cmd = models.add_subcommand(
      "demo", "Analytic demo models: a mouth that opens with the loudness of the audio");
  cmd->add_option("-o,--output", *output, "Output folder")->required();
  auto drift = std::make_shared<bool>(false);
  cmd->add_flag("--drift", *drift,
                "A generator with a trained model's colour faults (a colour and brightness "
                "drift and a slight blur), for measuring seams around the face");
  cmd->callback([output, drift] {
    if (*drift) {
      modelgen::write_drifting_models(*output);
    } else {
      modelgen::write_demo_models(*output);
    }
    const std::string name = *drift ? "drifting" : "demo";
    std::cout << core::json_text({{"name", name}, {"kind", "demo"}, {"output", *output}}) << "\n";
  });
}

// Declares `lipsync features`: its flags and what it runs.
void add_features_command(CLI::App& app) {
  auto args = std::make_shared<FeaturesArgs>();
  CLI::App* cmd = app.add_subcommand(
      "features", "Audio-encoder features [L][512] float32 of an audio file; prints the counts");
  cmd->add_option("input", args->input, "Audio file: WAV/FLAC/OGG, or raw .f32/.s16")->required();
  cmd->add_option("--models", args->models, "Model folder (audio_encoder.onnx, generator.onnx)")
      ->required();
  cmd->add_option("-o,--output", args->output, "Output file (raw little-endian float32)")
      ->required();
  args->flags.add_to(*cmd);
  cmd->callback([args] { run_features(*args); });
}

}  // namespace

void add_model_commands(CLI::App& app) {
  add_providers_command(app);
  CLI::App* models = app.add_subcommand(
      "models", "Write SyncTalk_2D model folders (imported from checkpoints, synthetic or demo)");
  models->require_subcommand(1);
  add_synth_command(*models);
  add_import_command(*models);
  add_quantize_command(*models);
  add_demo_command(*models);
  add_models_compare_command(*models);
  // Last: it is a pipeline stage's tool, listed with those in the help.
  add_features_command(app);
}

}  // namespace lipsync::cli
