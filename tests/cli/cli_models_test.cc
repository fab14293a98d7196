// The real `lipsync` binary: models synth/demo, features, bench generator/encoder, infer config.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/system_info.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using testing::diff;
using testing::read_f32;
using testing::run_lipsync;
using testing::TempDir;
using testing::testdata;

// A path as one shell word, for run_lipsync's command lines.
constexpr auto q = &testing::shell_quote;

TEST(CliModels, SynthWritesTwoModelsAndAManifest) {
  TempDir dir;
  const auto r = run_lipsync("models synth -o " + q(dir / "m") + " --width 0.125 --seed 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kind"], "synthetic");
  EXPECT_EQ(j["seed"], 4);
  EXPECT_GT(j["generator_parameters"].get<int>(), 100000);
  for (const char* f : {"audio_encoder.onnx", "generator.onnx", "model.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / "m" / f)) << f;
  }
  // Same seed, same bytes (through the CLI too).
  ASSERT_EQ(run_lipsync("models synth -o " + q(dir / "n") + " --width 0.125 --seed 4").exit_code,
            0);
  EXPECT_EQ(testing::read_text(dir / "m" / "generator.onnx"),
            testing::read_text(dir / "n" / "generator.onnx"));
}

TEST(CliModels, ImportFailuresExitWithTheMessageAndWriteNothing) {
  TempDir dir;
  const std::string encoder = q(testdata("checkpoints/audio_encoder.pth"));
  auto import = [&](const std::string& unet) {
    return run_lipsync("models import --unet " + unet + " --audio-encoder " + encoder + " -o " +
                       q(dir / "out"));
  };
  auto r = import(q(dir / "missing.pth"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("missing.pth: no such file"), std::string::npos) << r.err;

  r = import(q(testdata("checkpoints/unet_legacy.pth")));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("legacy PyTorch checkpoint"), std::string::npos) << r.err;

  std::ofstream(dir / "notes.pth") << "not a checkpoint";
  r = import(q(dir / "notes.pth"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("notes.pth: not a PyTorch checkpoint"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));

  r = run_lipsync("models import --unet " + encoder + " -o " + q(dir / "out"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--audio-encoder"), std::string::npos) << r.err;
}

TEST(CliModels, QuantizeWritesAnInt8FolderThatEveryModelsCommandRuns) {
  TempDir dir;
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir / "avatar") +
                        " --frames 4 --width 320 "
                        "--height 240")
                .exit_code,
            0);
  const std::string models = q(testing::synth_models());
  const std::string common = " --avatar " + q(dir / "avatar") + " --frames 4 -o ";
  auto r = run_lipsync("models quantize --models " + models + common + q(dir / "q"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["precision"], "int8");
  EXPECT_EQ(j["weight_bits"], 7);
  EXPECT_EQ(j["calibration"], "minmax");
  EXPECT_EQ(j["calibration_frames"], 4);
  EXPECT_EQ(j["calibration_audio"], nlohmann::json::array({"demo_speech.wav"}));
  EXPECT_EQ(j["sources"][0]["role"], "fp32_generator");
  EXPECT_EQ(j["sources"][0]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["sources"][1]["role"], "audio_encoder");
  // The encoder is copied as it was; the same inputs give the same int8 bytes.
  EXPECT_EQ(testing::read_text(dir / "q" / "audio_encoder.onnx"),
            testing::read_text(testing::synth_models() / "audio_encoder.onnx"));
  ASSERT_EQ(run_lipsync("models quantize --models " + models + common + q(dir / "q2")).exit_code,
            0);
  EXPECT_EQ(testing::read_text(dir / "q" / "generator.onnx"),
            testing::read_text(dir / "q2" / "generator.onnx"));
  // Any --models command runs it.
  r = run_lipsync("render --models " + q(dir / "q") + " --avatar " + q(dir / "avatar") + " -o " +
                  q(dir / "out.mp4") + " --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_lipsync("models quantize --models " + models + " --calibration percentile" + common +
                  q(dir / "p"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["calibration"], "percentile");
  EXPECT_EQ(j["concat_scales"], "shared");
  r = run_lipsync("models quantize --models " + models + " --concat-scales per-input" + common +
                  q(dir / "e"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["concat_scales"], "per-input");
  EXPECT_NE(testing::read_text(dir / "e" / "generator.onnx"),
            testing::read_text(dir / "q" / "generator.onnx"));

  // 8-bit weights: recorded, and run only where the CPU computes them correctly.
  r = run_lipsync("models quantize --models " + models + " --weights full" + common + q(dir / "f"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["weight_bits"], 8);
  r = run_lipsync("render --models " + q(dir / "f") + " --avatar " + q(dir / "avatar") + " -o " +
                  q(dir / "full.mp4") + " --quiet");
  if (core::int8_pairs_saturate()) {
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("8-bit weights, which overflow"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "full.mp4"));
  } else {
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  r = run_lipsync("models quantize --models " + models + " --weights half" + common + q(dir / "h"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--weights half: unknown choice; expected reduced or full"),
            std::string::npos)
      << r.err;

  // Bad inputs: each a clear error, nothing written.
  r = run_lipsync("models quantize --models " + q(dir / "q") + common + q(dir / "x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("already int8"), std::string::npos) << r.err;
  r = run_lipsync("models quantize --models " + models + " --avatar " + q(dir / "none") + " -o " +
                  q(dir / "x"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("avatar"), std::string::npos) << r.err;
  r = run_lipsync("models quantize --models " + models + " --calibration entropy" + common +
                  q(dir / "x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("expected minmax or percentile"), std::string::npos) << r.err;
  r = run_lipsync("models quantize --models " + models + " --concat-scales exact" + common +
                  q(dir / "x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--concat-scales exact: unknown choice; expected shared or per-input"),
            std::string::npos)
      << r.err;
  r = run_lipsync("models quantize --models " + models + " --audio " + q(dir / "none.wav") +
                  common + q(dir / "x"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  r = run_lipsync("models quantize --models " + models + " --avatar " + q(dir / "avatar") +
                  " --frames 0 -o " + q(dir / "x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_lipsync("models quantize --models " + models + common + q(dir / "q"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

// The int8 reference generator through the whole pipeline: calibrated on the reference avatar
// and speech, its rendered frames against the Python pipeline's composited frames (pasted as the
// reference pastes).
TEST(CliModels, Int8RenderOfTheReferenceStaysAboveThePsnrFloor) {
  TempDir dir;
  const std::string avatar = q(dir / "avatar");
  ASSERT_EQ(
      run_lipsync("avatar import --frames " + q(testdata("reference/frames")) + " --crop-rects " +
                  q(testdata("reference/crop_rects.json")) + " -o " + avatar)
          .exit_code,
      0);
  const std::string speech = q(testdata("reference/speech_a_en.wav"));
  auto r =
      run_lipsync("models quantize --models " + q(testdata("reference/models")) + " --avatar " +
                  avatar + " --audio " + speech + " --frames 8 -o " + q(dir / "int8"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_lipsync("render --models " + q(dir / "int8") + " --avatar " + avatar + " --audio " +
                  speech + " -o " + q(dir / "frames") + " --quiet --blend paste --color-match off");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  double worst = 1e9, sum = 0;
  for (int i = 0; i < 118; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%05d.png", i);
    const cv::Mat a = cv::imread((dir / "frames" / name).string());
    const cv::Mat b = cv::imread(testdata(std::string("reference/composited/") + name).string());
    ASSERT_FALSE(a.empty() || b.empty()) << name;
    const double db = cv::PSNR(a, b);
    worst = std::min(worst, db);
    sum += db;
  }
  std::printf("int8 composited frames vs Python: mean %.2f dB, worst %.2f dB\n", sum / 118, worst);
  EXPECT_GE(worst, 38.0);
}

// models compare: a folder against itself is identical (no PSNR: null) at about the same speed;
// the drifting generator against the demo one it drifts from is a finite PSNR inside the crop,
// its worst frame no better than its mean; bad arguments are errors.
TEST(CliModels, CompareReportsThePsnrInsideTheCropAndTheSpeedup) {
  TempDir dir;
  ASSERT_EQ(run_lipsync("models demo -o " + q(dir / "demo")).exit_code, 0);
  ASSERT_EQ(run_lipsync("models demo --drift -o " + q(dir / "drift")).exit_code, 0);
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir / "av") + " --frames 6 --width 640 --height 360")
                .exit_code,
            0);
  const std::string common = " --avatar " + q(dir / "av") + " --frames 12 --threads 1";
  auto r = run_lipsync("models compare --models " + q(dir / "demo") + " --baseline " +
                       q(dir / "demo") + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["frames"], 12);
  EXPECT_TRUE(j["crop_psnr_db"]["worst"].is_null()) << r.out;
  EXPECT_TRUE(j["crop_psnr_db"]["mean"].is_null()) << r.out;
  EXPECT_GT(j["speedup"].get<double>(), 0.0);

  r = run_lipsync("models compare --models " + q(dir / "drift") + " --baseline " + q(dir / "demo") +
                  common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  const double worst = j["crop_psnr_db"]["worst"];
  const double mean = j["crop_psnr_db"]["mean"];
  std::printf("drifting vs demo inside the crop: worst %.2f dB, mean %.2f dB\n", worst, mean);
  EXPECT_GT(worst, 10.0);
  EXPECT_LT(worst, 40.0);  // a drift of 3 % and a blur are visible
  EXPECT_LE(worst, mean);
  EXPECT_GE(j["crop_psnr_db"]["worst_frame"].get<int>(), 0);

  r = run_lipsync("models compare --models " + q(dir / "drift") + common);
  EXPECT_EQ(r.exit_code, 2) << r.err;  // --baseline is required
  r = run_lipsync("models compare --models " + q(dir / "none") + " --baseline " + q(dir / "demo") +
                  common);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("none"), std::string::npos) << r.err;
  r = run_lipsync("models compare --models " + q(dir / "demo") + " --baseline " + q(dir / "demo") +
                  common + " --start-frame 6");
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST(CliModels, BadWidthIsAnErrorAndWritesNothing) {
  TempDir dir;
  const auto r = run_lipsync("models synth -o " + q(dir / "m") + " --width 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("width"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "m" / "generator.onnx"));
}

TEST(CliFeatures, ReferenceModelsGivePythonFeatures) {
  TempDir dir;
  const auto r = run_lipsync("features " + q(testdata("reference/speech_a_en.wav")) + " --models " +
                             q(testdata("reference/models/generator.onnx").parent_path()) + " -o " +
                             q(dir / "f.f32") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"windows", 116}, {"frames", 118}}));
  const auto features = read_f32(dir / "f.f32");
  const auto expected = read_f32(testdata("reference/features.f32"));
  ASSERT_EQ(features.size(), expected.size());
  EXPECT_LE(diff(features, expected).max_abs, 5e-4);
}

TEST(CliFeatures, MissingModelsFolderIsNotFoundAndWritesNothing) {
  TempDir dir;
  const auto r = run_lipsync("features " + q(testdata("reference/speech_a_en.wav")) + " --models " +
                             q(dir / "none") + " -o " + q(dir / "f.f32"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("none"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "f.f32"));
}

TEST(CliFeatures, NotAModelIsInvalidInput) {
  TempDir dir;
  std::filesystem::create_directories(dir / "m");
  std::ofstream(dir / "m" / "audio_encoder.onnx") << "not a model";
  const auto r = run_lipsync("features " + q(testdata("reference/speech_a_en.wav")) + " --models " +
                             q(dir / "m") + " -o " + q(dir / "f.f32"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("audio_encoder.onnx"), std::string::npos) << r.err;
}

TEST(CliModels, AnOutputNameThatIsNotUtf8IsWrittenAndReportedWithAReplacementCharacter) {
  // Linux file names are bytes; the JSON report must not fail after the work is done.
  TempDir dir;
  const auto out = dir / "demo-\xff\xfe";
  const auto r = run_lipsync("models demo -o " + q(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(out / "model.json"));
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NE(j.at("output").get<std::string>().find("demo-\xef\xbf\xbd\xef\xbf\xbd"),
            std::string::npos)
      << r.out;
}

TEST(CliConfig, InferKeysAreReadAndCheckedByName) {
  TempDir dir;
  ASSERT_EQ(run_lipsync("models demo -o " + q(dir / "demo")).exit_code, 0);
  std::ofstream(dir / "bad.yaml") << "infer:\n  encoder_batch: 0\n";
  auto r =
      run_lipsync("features " + q(testdata("reference/speech_a_en.wav")) + " --models " +
                  q(dir / "demo") + " -o " + q(dir / "f.f32") + " --config " + q(dir / "bad.yaml"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("infer.encoder_batch"), std::string::npos) << r.err;
  std::ofstream(dir / "unknown.yaml") << "infer:\n  turbo: true\n";
  r = run_lipsync("features " + q(testdata("reference/speech_a_en.wav")) + " --models " +
                  q(dir / "demo") + " -o " + q(dir / "f.f32") + " --config " +
                  q(dir / "unknown.yaml"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("infer.turbo"), std::string::npos) << r.err;
  std::ofstream(dir / "good.yaml") << "infer:\n  intra_op_threads: 1\n  graph_optimization: basic\n"
                                      "  execution_providers: [cpu]\n  encoder_batch: 8\n";
  r = run_lipsync("features " + q(testdata("reference/speech_a_en.wav")) + " --models " +
                  q(dir / "demo") + " -o " + q(dir / "f.f32") + " --config " +
                  q(dir / "good.yaml"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_f32(dir / "f.f32").size(), 116u * 512u);
}

TEST(CliBench, GeneratorAndEncoderPrintTimings) {
  TempDir dir;
  ASSERT_EQ(run_lipsync("models demo -o " + q(dir / "demo")).exit_code, 0);
  auto r = run_lipsync("bench generator --models " + q(dir / "demo") +
                       " --batch 2 --threads 1 --repeat 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batch"], 2);
  EXPECT_GT(j["ms_per_batch"]["median"].get<double>(), 0.0);
  EXPECT_GT(j["bare_onnxruntime_ms_per_batch"]["median"].get<double>(), 0.0);
  EXPECT_NEAR(j["ms_per_frame"].get<double>(), j["ms_per_batch"]["median"].get<double>() / 2, 1e-9);
  EXPECT_FALSE(j.contains("speedup"));
  // --baseline: a second folder timed in rounds of 5 beside the first (here the same models).
  r = run_lipsync("bench generator --models " + q(dir / "demo") + " --baseline " + q(dir / "demo") +
                  " --batch 1 --threads 1 --repeat 12");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["baseline"]["ms_per_frame"].get<double>(), 0.0);
  EXPECT_EQ(j["speedup"]["rounds"], 3);  // 5 + 5 + 2
  EXPECT_NEAR(j["speedup"]["of_medians"].get<double>(),
              j["baseline"]["ms_per_frame"].get<double>() / j["ms_per_frame"].get<double>(), 1e-9);
  EXPECT_GT(j["speedup"]["median_of_rounds"].get<double>(), 0.0);
  r = run_lipsync("bench generator --models " + q(dir / "demo") + " --baseline " + q(dir / "none") +
                  " --repeat 1");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("none"), std::string::npos) << r.err;
  r = run_lipsync("bench encoder --models " + q(dir / "demo") + " --windows 25 --repeat 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["windows"], 25);
  EXPECT_GT(j["ms_per_window"].get<double>(), 0.0);
}

}  // namespace
}  // namespace lipsync
