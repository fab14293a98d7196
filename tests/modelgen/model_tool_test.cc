// The model tool: synthetic models with the reference architecture, and the demo models.
#include <gtest/gtest.h>

#include <algorithm>

#include "audio/mel_windows.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "infer/models.h"
#include "modelgen/demo_models.h"
#include "modelgen/synth_models.h"
#include "pipeline/feature_track.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using testing::two_threads;

TEST(SynthModels, FullWidthHasTheReferenceParameterCounts) {
  const auto generator = modelgen::synth_generator(1.0, 1);
  // PyTorch count of the upstream Model(6, 'ave') (testdata/reference/README.md): 12,186,935;
  // the figure is 12.19 M within 1 %.
  EXPECT_EQ(generator.parameters, 12186935);
  EXPECT_NEAR(double(generator.parameters), 12.19e6, 0.01 * 12.19e6);
  // After BatchNorm folding, the reference export stores exactly this many values.
  EXPECT_EQ(generator.onnx_values, 12153887 + 4);  // + our 4 Resize scales
  const auto encoder = modelgen::synth_audio_encoder(1.0, 1);
  EXPECT_EQ(encoder.parameters, 2812672);
  EXPECT_EQ(encoder.onnx_values, 2808256);
}

TEST(SynthModels, SameSeedSameBytesOtherSeedOtherBytes) {
  const auto a = modelgen::synth_generator(0.125, 5);
  const auto b = modelgen::synth_generator(0.125, 5);
  const auto c = modelgen::synth_generator(0.125, 6);
  EXPECT_EQ(a.onnx, b.onnx);
  EXPECT_NE(a.onnx, c.onnx);
  EXPECT_LT(a.parameters, 12186935 / 20);
}

TEST(SynthModels, BadWidthIsRejected) {
  testing::TempDir dir;
  for (double w : {0.0, -1.0, 5.0}) {
    EXPECT_THROW(modelgen::write_synth_models(dir / "m", w, 1), Error) << w;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "m" / "generator.onnx"));
}

TEST(SynthModels, NarrowModelsRunAndListenToTheAudio) {
  const infer::Models models(testing::synth_models(), two_threads());
  const auto& manifest = *models.manifest();
  EXPECT_EQ(manifest.width, 0.0625);
  std::vector<float> image(2 * contract::kImageInputSize);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = float((i * 7919) % 256) / 255.0f;
  std::vector<float> audio_in(2 * contract::kAudioInputSize, 0.0f);
  // Frame 1 gets different audio from frame 0, same image.
  std::copy_n(image.begin(), contract::kImageInputSize, image.begin() + contract::kImageInputSize);
  std::fill(audio_in.begin() + contract::kAudioInputSize, audio_in.end(), 2.0f);
  std::vector<float> out(2 * contract::kOutputSize);
  models.generator().run(2, image, audio_in, out);
  const auto [lo, hi] = std::minmax_element(out.begin(), out.end());
  EXPECT_GT(*lo, 0.0f);
  EXPECT_LT(*hi, 1.0f);
  const auto d = testing::diff(std::span(out).first(contract::kOutputSize),
                               std::span(out).last(contract::kOutputSize));
  // Narrow random networks pass the audio on weakly; what matters is that it arrives.
  EXPECT_GT(d.max_abs, 1e-5) << "the audio input does not reach the output";
}

// Demo models: the mouth opens with loudness and stays shut in silence.

// Dark pixels of the demo generator's output for a uniform grey ROI (or `roi_in`, one 320 x 320
// BGR ROI) and constant mel windows: red below 0.3, which the smile (red 150 / 255) is not.
int dark_pixels_for_mel_level(const infer::Models& models, float mel_level,
                              std::vector<float>* roi_out = nullptr,
                              const std::vector<float>* roi_in = nullptr) {
  const int L = 30;
  std::vector<float> packed(L * audio::MelWindows::kPackedWindowSize, mel_level);
  pipeline::ClipFeatures f{L, std::vector<float>(L * contract::kFeatureSize)};
  models.encoder().encode_packed(packed, L, f.values);
  const auto track = pipeline::FeatureTrack::from_features(std::move(f));
  auto batch = models.generator().make_batch(1);
  std::fill(batch.images().begin(), batch.images().end(), 0.6f);
  if (roi_in) std::copy(roi_in->begin(), roi_in->end(), batch.images().begin());
  track.frame_audio(15, batch.audio(0));
  models.generator().run(batch);
  const auto out = batch.output(0);
  if (roi_out) roi_out->assign(out.begin(), out.end());
  constexpr int kRed = 2 * contract::kRoiSize * contract::kRoiSize;
  int dark = 0;
  for (int y = 0; y < contract::kRoiSize; ++y) {
    for (int x = 0; x < contract::kRoiSize; ++x) {
      if (out[kRed + y * contract::kRoiSize + x] < 0.6f * 0.5f) ++dark;
    }
  }
  return dark;
}

TEST(DemoModels, MouthOpeningRisesWithLoudnessAndSilenceIsClosed) {
  const infer::Models models(testing::demo_models(), two_threads());
  std::vector<float> silent_out;
  EXPECT_EQ(dark_pixels_for_mel_level(models, -4.0f, &silent_out), 0);
  // Silence gives the closed mouth: the grey ROI with the demo avatar's smile drawn on it, whose
  // lowest point is its colour; every pixel the smile does not cover stays grey.
  const auto& m = modelgen::kDemoMouth;
  const int plane = contract::kRoiSize * contract::kRoiSize;
  const int lowest =
      int(m.centre_y + contract::kDemoLips.half_height * contract::kDemoRoiPerUnit + 0.5) *
          contract::kRoiSize +
      int(m.centre_x);
  EXPECT_NEAR(silent_out[lowest], contract::kDemoLips.blue / 255, 0.01);
  EXPECT_NEAR(silent_out[plane + lowest], contract::kDemoLips.green / 255, 0.01);
  EXPECT_NEAR(silent_out[2 * plane + lowest], contract::kDemoLips.red / 255, 0.01);
  int lips = 0;
  for (int i = 0; i < plane; ++i) {
    if (std::abs(silent_out[i] - 0.6f) > 1e-5f) ++lips;
  }
  // About the smile's area: half an ellipse of half-axes 56 x 10 (its length about 126 px) times
  // a 6.6 px stroke.
  EXPECT_GT(lips, 600);
  EXPECT_LT(lips, 1100);
  int previous = 0;
  for (float level : {-2.0f, -1.5f, -1.0f, -0.5f}) {
    const int dark = dark_pixels_for_mel_level(models, level);
    EXPECT_GT(dark, previous) << "mel level " << level;
    previous = dark;
  }
  // Fully open: about the ellipse's area, pi * 62 * 40 (minus the soft edge).
  const int open = dark_pixels_for_mel_level(models, 1.0f);
  EXPECT_GT(open, 5000);
  EXPECT_LT(open, 7800);
}

TEST(DemoModels, TheMouthIsWhereTheHeaderSays) {
  const infer::Models models(testing::demo_models(), two_threads());
  std::vector<float> out;
  dark_pixels_for_mel_level(models, 1.0f, &out);
  const auto& m = modelgen::kDemoMouth;
  const int cx = int(m.centre_x), cy = int(m.centre_y);
  EXPECT_LT(out[cy * 320 + cx], 0.6f * 0.2f);                                   // centre: dark
  EXPECT_NEAR(out[(cy - int(m.half_height_open) - 3) * 320 + cx], 0.6f, 1e-5);  // above: skin
  EXPECT_NEAR(out[cy * 320 + cx + int(m.half_width) + 3], 0.6f, 1e-5);          // right: skin
}

// A talking template's open mouth: the ROI grey but for the dark ellipse the demo avatar draws
// where the generator paints its own. Silence shuts it: the output is the grey ROI's, the same
// closed mouth, and loud audio opens the generator's mouth over it as over the grey one.
TEST(DemoModels, SilenceShutsATalkingTemplatesMouth) {
  const infer::Models models(testing::demo_models(), two_threads());
  const auto& m = modelgen::kDemoMouth;
  std::vector<float> open(contract::kImageInputSize, 0.6f);
  const int plane = contract::kRoiSize * contract::kRoiSize;
  for (int y = 0; y < contract::kRoiSize; ++y) {
    for (int x = 0; x < contract::kRoiSize; ++x) {
      const double u = (x - m.centre_x) / m.half_width, w = (y - m.centre_y) / m.half_height_open;
      if (u * u + w * w > 1) continue;
      for (int c = 0; c < 3; ++c) open[c * plane + y * contract::kRoiSize + x] = 0.09f;
    }
  }
  std::vector<float> from_open, from_grey;
  EXPECT_EQ(dark_pixels_for_mel_level(models, -4.0f, &from_open, &open), 0);
  dark_pixels_for_mel_level(models, -4.0f, &from_grey);
  ASSERT_EQ(from_open.size(), from_grey.size());
  float worst = 0;
  for (std::size_t i = 0; i < from_open.size(); ++i) {
    worst = std::max(worst, std::abs(from_open[i] - from_grey[i]));
  }
  EXPECT_LT(worst, 1e-5f);
  EXPECT_EQ(dark_pixels_for_mel_level(models, 1.0f, nullptr, &open),
            dark_pixels_for_mel_level(models, 1.0f));
}

}  // namespace
}  // namespace lipsync
