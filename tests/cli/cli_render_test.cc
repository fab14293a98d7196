// The real `lipsync` binary: render (the demo defaults, MP4 and frame folders), avatar import and
// demo, bench render, and their errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "avatar/avatar.h"
#include "avatar/template_walk.h"
#include "render/color_track.h"
#include "render/seams.h"
#include "support/media_probe.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using testing::run_lipsync;
using testing::TempDir;
using testing::testdata;

// A path as one shell word, for run_lipsync's command lines.
constexpr auto q = &testing::shell_quote;

// Each test gets its own cache folder for the generated demo assets.
class CliRender : public ::testing::Test {
 protected:
  void SetUp() override { setenv("LIPSYNC_CACHE_DIR", (dir_ / "cache").c_str(), 1); }
  void TearDown() override { unsetenv("LIPSYNC_CACHE_DIR"); }
  // The seam tests' inputs: the demo avatar at 640 x 360 (dir_/av), the drifting generator
  // (dir_/drift) and a second of the bundled speech; returns the speech file.
  fs::path make_drifting_inputs() {
    EXPECT_EQ(
        run_lipsync("avatar demo -o " + q(dir_ / "av") + " --frames 6 --width 640 --height 360")
            .exit_code,
        0);
    const auto m = run_lipsync("models demo --drift -o " + q(dir_ / "drift"));
    EXPECT_EQ(m.exit_code, 0) << m.err;
    EXPECT_EQ(nlohmann::json::parse(m.out)["name"], "drifting");
    const fs::path speech = dir_ / "speech.wav";
    EXPECT_EQ(std::system(("sox " + q(fs::path(LIPSYNC_SOURCE_DIR) / "assets/demo_speech.wav") +
                           " " + q(speech) + " trim 0.5 1.0")
                              .c_str()),
              0);
    return speech;
  }
  TempDir dir_;
};

TEST_F(CliRender, NoArgumentsRendersTheDemoToMp4) {
  const auto r = run_lipsync("render -o " + q(dir_ / "demo.mp4"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["frames"], 188);  // 7.58 s of speech: L = 186 windows
  EXPECT_EQ(j["output"], (dir_ / "demo.mp4").string());
  // Not a terminal: no progress bar (stderr may hold sanitizer summaries in those builds).
  EXPECT_EQ(r.err.find("fps"), std::string::npos) << r.err;
  const auto p = testing::probe_media(dir_ / "demo.mp4");
  EXPECT_EQ(p.video_frames, 188);
  EXPECT_EQ(p.audio_codec, "aac");
  EXPECT_EQ(p.width, 1280);
  // The demo assets were made once, in the cache.
  EXPECT_TRUE(fs::exists(dir_ / "cache" / "demo-avatar-v2" / "avatar.json"));
}

// Issue 24: ONNX Runtime's telemetry was on: each process left a device id and an event
// database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and an empty
// /tmp/mat-debug-<pid>.log.
TEST_F(CliRender, Issue24_OnnxRuntimeKeepsNoTelemetryAndLeavesNothingInTmp) {
  fs::create_directories(dir_ / "home");
  // The shell writes its pid, then becomes lipsync (the same process).
  const std::string launcher = "env -u ORT_DISABLE_TELEMETRY HOME=" + q(dir_ / "home") +
                               " sh -c 'echo $$ >\"" + (dir_ / "pid").string() +
                               "\"; exec \"$0\" \"$@\"'";
  const auto r = run_lipsync("render -o " + q(dir_ / "demo.mp4") + " --quiet", launcher);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream pid_file(dir_ / "pid");
  int pid = 0;
  ASSERT_TRUE(pid_file >> pid);
  EXPECT_FALSE(fs::exists(dir_ / "home" / ".cache" / "Microsoft"));
  EXPECT_FALSE(fs::exists("/tmp/mat-debug-" + std::to_string(pid) + ".log"));
}

TEST_F(CliRender, FramesFolderWithJpegAndExplicitInputs) {
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir_ / "av") + " --frames 6 --width 320 --height 240")
                .exit_code,
            0);
  ASSERT_EQ(run_lipsync("models demo -o " + q(dir_ / "m")).exit_code, 0);
  const auto r = run_lipsync("render --avatar " + q(dir_ / "av") + " --models " + q(dir_ / "m") +
                             " --audio " + q(testdata("reference/speech_a_en.wav")) + " -o " +
                             q(dir_ / "frames") + " --format jpeg --batch 5 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["frames"], 118);
  EXPECT_TRUE(fs::exists(dir_ / "frames" / "00000.jpg"));
  EXPECT_TRUE(fs::exists(dir_ / "frames" / "00117.jpg"));
  EXPECT_FALSE(fs::exists(dir_ / "frames" / "00118.jpg"));
  EXPECT_FALSE(fs::exists(dir_ / "frames" / ".lipsync-partial"));
}

TEST_F(CliRender, BadInputsFailCleanly) {
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir_ / "av") + " --frames 4 --width 320 --height 240")
                .exit_code,
            0);
  // A missing avatar: exit 3, no output.
  auto r = run_lipsync("render --avatar " + q(dir_ / "nope") + " -o " + q(dir_ / "a.mp4"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "a.mp4"));
  // Too short audio: exit 2, no output.
  std::ofstream(dir_ / "short.f32", std::ios::binary) << std::string(2999 * 4, '\0');
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " --audio " + q(dir_ / "short.f32") +
                  " -o " + q(dir_ / "b.mp4"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("too short"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "b.mp4"));
  // A start frame past the avatar's end.
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " --start-frame 4 -o " + q(dir_ / "c"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("start frame 4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "c"));
  // A middle start frame renders, with a warning about the reference's frozen walk.
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " --start-frame 2 -o " + q(dir_ / "d"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  // An unknown extension is refused, not turned into a folder of PNGs named x.avi.
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " -o " + q(dir_ / "x.avi"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown extension '.avi'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "x.avi"));
  // Audio longer than audio.max_seconds is refused before it is read: a sparse 1 GB .f32 file
  // (4.7 hours) fails at once, without the memory it would take.
  {
    std::ofstream huge(dir_ / "huge.f32", std::ios::binary);
    huge.seekp((1LL << 30) - 4);
    huge.write("\0\0\0\0", 4);
  }
  std::ofstream(dir_ / "cap.yaml") << "audio: {max_seconds: 3600}\n";
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " --audio " + q(dir_ / "huge.f32") +
                  " --config " + q(dir_ / "cap.yaml") + " -o " + q(dir_ / "e.mp4"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("audio.max_seconds (3600 s)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "e.mp4"));
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " --audio " + q(dir_ / "huge.f32") +
                  " -o " + q(dir_ / "e.mp4"));  // the default cap, 4 hours, too
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("audio.max_seconds (14400 s)"), std::string::npos) << r.err;
}

// A GPU provider this machine cannot use: alone it fails before anything is written; listed
// before cpu it is skipped with a warning on stderr and the render is the CPU's.
TEST_F(CliRender, AGpuProviderThatCannotRunFailsCleanlyOrFallsBackWhenListed) {
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir_ / "av") + " --frames 4 --width 320 --height 240")
                .exit_code,
            0);
  ASSERT_EQ(run_lipsync("models demo -o " + q(dir_ / "m")).exit_code, 0);
  const std::string base = "render --avatar " + q(dir_ / "av") + " --models " + q(dir_ / "m") +
                           " --audio " + q(testdata("reference/speech_a_en.wav")) + " --quiet";
  auto r = run_lipsync(base + " --providers cuda -o " + q(dir_ / "gpu.mp4"));
  if (r.exit_code == 0) GTEST_SKIP() << "this machine runs the CUDA provider";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("lipsync: error: model "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("execution provider 'cuda': "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("list cpu after it"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "gpu.mp4"));

  r = run_lipsync(base + " --providers cuda,cpu -o " + q(dir_ / "cpu.mp4"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[warning]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("using 'cpu', the next in infer.execution_providers"), std::string::npos)
      << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["frames"], 118);  // stdout is the JSON line alone
}

// `lipsync providers`: a line per provider; --require fails with the reason.
TEST_F(CliRender, ProvidersListsEachProviderAndWhyItCannotRun) {
  auto r = run_lipsync("providers --provider-dir " + q(dir_.path()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<nlohmann::json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0]["library_dirs"], nlohmann::json::array({dir_.path().string()}));
  EXPECT_EQ(lines[1]["provider"], "cpu");
  EXPECT_EQ(lines[1]["usable"], true);
  EXPECT_EQ(lines[2]["provider"], "cuda");
  EXPECT_EQ(lines[2]["usable"], false);
  EXPECT_NE(lines[2]["error"].get<std::string>().find("libonnxruntime_providers_cuda.so is not in"),
            std::string::npos);
  EXPECT_EQ(lines[3]["provider"], "tensorrt");

  r = run_lipsync("providers --require cuda --provider-dir " + q(dir_.path()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("lipsync: error: execution provider 'cuda': "), std::string::npos) << r.err;
  r = run_lipsync("providers --require gpu");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--require gpu: unknown provider"), std::string::npos) << r.err;
}

// The GPU package (scripts/bootstrap --gpu) with the CUDA toolkit's stub libcuda.so standing in
// for a driver: the provider loads and finds no GPU, which is its own clear error.
TEST_F(CliRender, ProvidersWithADriverLibraryButNoGpuSaysSo) {
  const auto providers = run_lipsync("providers");
  if (providers.out.find("libonnxruntime_providers_cuda.so\"") == std::string::npos) {
    GTEST_SKIP() << "no GPU package (scripts/bootstrap --gpu)";
  }
  fs::path stub;
  for (const char* p : {"/usr/local/cuda/lib64/stubs/libcuda.so",
                        "/usr/local/cuda/targets/x86_64-linux/lib/stubs/libcuda.so"}) {
    if (fs::exists(p)) stub = p;
  }
  if (stub.empty()) GTEST_SKIP() << "no CUDA toolkit stub libcuda.so";
  if (providers.out.find("libcuda.so.1 is not on this machine") == std::string::npos) {
    GTEST_SKIP() << "this machine has a libcuda.so.1";
  }
  fs::create_directories(dir_ / "stub");
  fs::create_symlink(stub, dir_ / "stub" / "libcuda.so.1");
  const auto r = run_lipsync("providers --require cuda", "env LD_LIBRARY_PATH=" + q(dir_ / "stub"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("execution provider 'cuda': ONNX Runtime loaded "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("lists no NVIDIA GPU"), std::string::npos) << r.err;
}

TEST_F(CliRender, AvatarImportFromFramesAndErrors) {
  const auto r = run_lipsync(
      "avatar import --frames " + q(testdata("reference/frames/00000.png").parent_path()) +
      " --crop-rects " + q(testdata("reference/crop_rects.json")) + " -o " + q(dir_ / "ref"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["frames"], 60);
  const auto again = run_lipsync(
      "avatar import --frames " + q(testdata("reference/frames/00000.png").parent_path()) +
      " --crop-rects " + q(testdata("reference/crop_rects.json")) + " -o " + q(dir_ / "ref"));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  const auto neither = run_lipsync("avatar import -o " + q(dir_ / "x"));
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_NE(neither.err.find("--synctalk"), std::string::npos) << neither.err;
}

// One config file per command, read once: render.batch and infer.parallel_runs come from it,
// a flag wins over it, and a bad key in it fails before anything is written.
TEST_F(CliRender, TheConfigFileSetsTheRenderAndItsFlagsWin) {
  const fs::path speech = make_drifting_inputs();
  std::ofstream(dir_ / "c.yaml") << "render: {batch: 3}\ninfer: {parallel_runs: 1}\n";
  const std::string base = "render --avatar " + q(dir_ / "av") + " --models " + q(dir_ / "drift") +
                           " --audio " + q(speech) + " --quiet --config " + q(dir_ / "c.yaml");
  auto r = run_lipsync(base + " -o " + q(dir_ / "a"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batch"], 3);
  EXPECT_EQ(j["parallel_runs"], 1);
  r = run_lipsync(base + " --batch 2 --parallel-runs 2 -o " + q(dir_ / "b"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batch"], 2);
  EXPECT_EQ(j["parallel_runs"], 2);
  std::ofstream(dir_ / "bad.yaml") << "render: {batch: 257}\n";
  r = run_lipsync("render --avatar " + q(dir_ / "av") + " --config " + q(dir_ / "bad.yaml") +
                  " -o " + q(dir_ / "c.mp4"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("render.batch: 257 is out of range"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "c.mp4"));
}

TEST_F(CliRender, BenchRenderPrintsBothRates) {
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir_ / "av") + " --frames 6 --width 640 --height 360")
                .exit_code,
            0);
  const auto r = run_lipsync("bench render --models " + q(testing::demo_models()) + " --avatar " +
                             q(dir_ / "av") + " --frames 20 --batch 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["generator_only_fps"].get<double>(), 0.0);
  EXPECT_GT(j["renderer_fps"].get<double>(), 0.0);
  EXPECT_GT(j["one_core_ms_per_frame"]["total"].get<double>(), 0.0);
  EXPECT_EQ(j["frame_size"], "640x360");
}

// One budget: the CPUs the process may run on size every pool unless --threads says otherwise,
// and infer.intra_op_threads at 0 follows it.
TEST_F(CliRender, TheThreadBudgetFollowsTheAffinityMaskAndTheFlags) {
  ASSERT_EQ(run_lipsync("avatar demo -o " + q(dir_ / "av") + " --frames 6 --width 640 --height 360")
                .exit_code,
            0);
  const std::string bench = "bench render --models " + q(testing::demo_models()) + " --avatar " +
                            q(dir_ / "av") + " --frames 10 --repeat 1";
  auto r = run_lipsync(bench, "taskset -c 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["thread_budget"], 1);
  EXPECT_EQ(j["intra_op_threads"], 1);
  EXPECT_EQ(j["available_cpus"], 1);
  r = run_lipsync(bench + " --threads 3 --intra-op-threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["thread_budget"], 3);
  EXPECT_EQ(j["intra_op_threads"], 2);
}

// The drifting test generator (models demo --drift: a colour and brightness drift and a slight
// blur, as a trained model's output has) pasted as the reference pastes shows a box: its border
// step is several levels. Matching the band just inside the crop border to the template's and
// feathering the crop (render/seams.h), applied to the same generated crops, cut that step by far
// more than 4 times (issue 27's bar for the defaults).
TEST_F(CliRender, TheDriftingGeneratorShowsTheBoxThatMatchingAndFeatheringHide) {
  const fs::path speech = make_drifting_inputs();
  ASSERT_FALSE(HasFailure());
  const auto r = run_lipsync("render --avatar " + q(dir_ / "av") + " --models " +
                             q(dir_ / "drift") + " --audio " + q(speech) + " -o " +
                             q(dir_ / "frames") + " --quiet --blend paste --color-match off");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int frames = nlohmann::json::parse(r.out)["frames"];
  ASSERT_GT(frames, 20);

  const auto avatar = avatar::Avatar::open(dir_ / "av", avatar::AvatarOptions{});
  double paste = 0;
  double hidden = 0;
  // Flicker: the mean change, frame to frame, of the correction at mid-grey (levels), of each
  // frame's own correction and of the one averaged over 5 frames (render::ColorTrack).
  render::ColorTrack track(5);
  std::vector<render::ColorCorrection> own, smoothed;
  const auto flicker = [](const std::vector<render::ColorCorrection>& ks) {
    double sum = 0;
    for (std::size_t i = 1; i < ks.size(); ++i) {
      for (int c = 0; c < 3; ++c) {
        sum +=
            std::abs((ks[i].gain[c] - ks[i - 1].gain[c]) * 128 + ks[i].bias[c] - ks[i - 1].bias[c]);
      }
    }
    return ks.size() > 1 ? sum / (3.0 * double(ks.size() - 1)) : 0.0;
  };
  for (int i = 0; i < frames; ++i) {
    const int t = avatar::template_frame_for(i, avatar->frame_count(), 0);
    const auto held = avatar->frame(t);
    const cv::Mat& tmpl = *held;
    char name[32];
    std::snprintf(name, sizeof name, "%05d.png", i);
    const cv::Mat pasted = cv::imread((dir_ / "frames" / name).string(), cv::IMREAD_COLOR);
    ASSERT_EQ(pasted.size(), tmpl.size());
    const cv::Rect rect = avatar::as_cv_rect(avatar->crop_rect(t));
    // The seam of a paste is where the generated pixels begin, a few pixels inside the crop.
    paste += render::seam_step(pasted, tmpl, rect);
    // The same generated crop, matched and feathered.
    const cv::Mat face = pasted(rect).clone();
    const render::Band band = render::ring_band(rect.width);
    const render::BandStats face_band = render::band_stats(face, band.inset, band.width);
    const render::BandStats tmpl_band =
        render::band_stats(tmpl(rect).clone(), band.inset, band.width);
    const render::ColorCorrection k = render::match_colors(face_band, tmpl_band);
    own.push_back(k);
    for (const auto& ready : track.add(i, face_band, tmpl_band))
      smoothed.push_back(ready.correction);
    cv::Mat blended = tmpl.clone();
    render::blend_face(face,
                       render::feather_mask(rect.size(), render::default_feather_px(rect.width)),
                       &k, blended(rect));
    hidden += render::seam_step(blended, tmpl, rect);
  }
  paste /= frames;
  hidden /= frames;
  std::cout << "border step over " << frames << " frames: paste " << paste
            << " levels, matched and feathered " << hidden
            << "; flicker of the correction: " << flicker(own) << " levels a frame alone, "
            << flicker(smoothed) << " averaged over 5 frames\n";
  ASSERT_EQ(smoothed.size(), own.size());
  EXPECT_LE(flicker(smoothed), flicker(own));
  EXPECT_GT(paste, 3.0);
  EXPECT_LT(hidden * 4, paste);
}

// The defaults, render.blend: feather and render.color_match: ring, on the drifting generator:
// the box is gone (the border step, at the seam a paste leaves and at the crop border, a quarter
// of paste's at most), and the pictures do not depend on how the frames were batched (frame i's
// correction is the mean of its window's statistics, whatever order the frames were composited
// in) nor on whether the settings came from the defaults or a config file.
TEST_F(CliRender, FeatherAndRingHideTheDriftingGeneratorsBoxWhateverTheBatching) {
  const fs::path speech = make_drifting_inputs();
  ASSERT_FALSE(HasFailure());
  std::ofstream(dir_ / "blend.yaml") << "render:\n  blend: feather\n  color_match: ring\n";
  const auto render = [&](const std::string& out, const std::string& extra) {
    const auto r =
        run_lipsync("render --avatar " + q(dir_ / "av") + " --models " + q(dir_ / "drift") +
                    " --audio " + q(speech) + " -o " + q(dir_ / out) + " --quiet " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out)["frames"].get<int>() : 0;
  };
  const int frames = render("paste", "--blend paste --color-match off");
  ASSERT_GT(frames, 20);
  ASSERT_EQ(render("ring1", "--batch 1"), frames);
  ASSERT_EQ(render("ring8", "--batch 8 --config " + q(dir_ / "blend.yaml")), frames);

  const auto avatar = avatar::Avatar::open(dir_ / "av", avatar::AvatarOptions{});
  double paste = 0;
  double ring = 0;
  for (int i = 0; i < frames; ++i) {
    const int t = avatar::template_frame_for(i, avatar->frame_count(), 0);
    const auto held = avatar->frame(t);
    const cv::Mat& tmpl = *held;
    char name[32];
    std::snprintf(name, sizeof name, "%05d.png", i);
    const cv::Mat pasted = cv::imread((dir_ / "paste" / name).string(), cv::IMREAD_COLOR);
    const cv::Mat one = cv::imread((dir_ / "ring1" / name).string(), cv::IMREAD_COLOR);
    const cv::Mat eight = cv::imread((dir_ / "ring8" / name).string(), cv::IMREAD_COLOR);
    ASSERT_EQ(cv::norm(one, eight, cv::NORM_INF), 0.0) << "frame " << i << " differs by batch";
    const cv::Rect rect = avatar::as_cv_rect(avatar->crop_rect(t));
    paste += render::seam_step(pasted, tmpl, rect);
    ring += render::seam_step(one, tmpl, rect);
    // Outside the crop rect, the template untouched.
    cv::Mat outside = one.clone();
    tmpl(rect).copyTo(outside(rect));
    EXPECT_EQ(cv::norm(outside, tmpl, cv::NORM_INF), 0.0) << i;
  }
  paste /= frames;
  ring /= frames;
  std::cout << "border step over " << frames << " frames: paste " << paste
            << " levels, feather + ring " << ring << "\n";
  EXPECT_GT(paste, 3.0);
  EXPECT_LT(ring * 4, paste);
}

}  // namespace
}  // namespace lipsync
