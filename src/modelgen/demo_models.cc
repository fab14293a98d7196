#include "modelgen/demo_models.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "audio/mel_constants.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "core/file_util.h"
#include "infer/model_manifest.h"
#include "infer/models.h"
#include "modelgen/onnx_builder.h"

namespace lipsync::modelgen {
namespace {

constexpr int kOpset = 13;
// The window's mel rows that lie on its frame's own 40 ms (see the header).
constexpr int kOwnRowsBegin = 3;
constexpr int kOwnRowsEnd = 7;
// Audio-tensor channel holding the first half of the frame's own feature row (row 8 of 16).
constexpr int kOwnRowChannel = 16;
// Edge softness: the mask ramps from 0 to 1 over the outer 1 / (2 kEdgeGain) of the ellipse's
// radius (about 2.5 px of a fully open mouth).
constexpr float kEdgeGain = 8.0f;
constexpr float kOpeningFloor = 1e-3f;

std::string scalar(OnnxBuilder& b, float value) {
  const std::vector<float> v{value};
  return b.add_float("c", {1}, v);
}

}  // namespace

GeneratedModel demo_audio_encoder() {
  using namespace contract;
  OnnxBuilder b("lipsync_demo_audio_encoder", kOpset);
  const std::string input(kEncoderInputName);
  b.add_input(input, {-1, 1, audio::kMelBands, audio::kWindowFrames});
  // [B,1,80,16] -> time slice [B,1,80,4] -> mean [B,1,1,1] -> (m + 4) / 8 -> [B,1] -> [B,512].
  const std::string rows =
      b.add_node("Slice", {input, b.add_int64("starts", {kOwnRowsBegin}),
                           b.add_int64("ends", {kOwnRowsEnd}), b.add_int64("axes", {3})});
  const std::string mean = b.add_node(
      "ReduceMean", {rows}, {{"axes", std::vector<std::int64_t>{1, 2, 3}}, {"keepdims", 1}});
  const std::string shifted = b.add_node("Add", {mean, scalar(b, audio::kMaxAbsValue)});
  const std::string loud = b.add_node("Mul", {shifted, scalar(b, 0.5f / audio::kMaxAbsValue)});
  const std::string flat = b.add_node("Flatten", {loud}, {{"axis", 1}});
  const std::vector<float> ones(kFeatureSize, 1.0f);
  b.add_node("Mul", {flat, b.add_float("ones", {1, kFeatureSize}, ones)}, {},
             std::string(kEncoderOutputName));
  b.add_output(std::string(kEncoderOutputName), {-1, kFeatureSize});
  return {b.serialize(), 0, b.initializer_values()};
}

namespace {

// The constant planes of the demo generator's closed mouth, [1, 1, 320, 320] each (see
// add_closed_mouth).
struct ClosedMouthPlanes {
  std::vector<float> region;  // 1 where the mouth is repainted, a soft edge, then 0
  std::vector<float> ring;    // 1 on the band just outside the region whose mean is the skin
  std::vector<float> lips;    // the smile's coverage, 0..1
  double ring_area = 0;
};

ClosedMouthPlanes closed_mouth_planes() {
  using namespace contract;
  ClosedMouthPlanes p;
  const std::size_t n = std::size_t(kRoiSize) * kRoiSize;
  p.region.assign(n, 0.0f);
  p.ring.assign(n, 0.0f);
  p.lips.assign(n, 0.0f);
  const double cx = kDemoMouth.centre_x, cy = kDemoMouth.centre_y;
  const double rx = kDemoMouth.half_width + kDemoMouthRegionMargin;
  const double ry = kDemoMouth.half_height_open + kDemoMouthRegionMargin;
  // The region's edge falls to 0 over about 4 px; the ring lies 12 % to 24 % beyond it.
  constexpr double kEdge = 12.0, kRingIn = 1.12, kRingOut = 1.24;
  for (int y = 0; y < kRoiSize; ++y) {
    for (int x = 0; x < kRoiSize; ++x) {
      const double r = std::hypot((x - cx) / rx, (y - cy) / ry);
      p.region[y * kRoiSize + x] = static_cast<float>(std::clamp((1.0 - r) * kEdge, 0.0, 1.0));
      if (r >= kRingIn && r < kRingOut) {
        p.ring[y * kRoiSize + x] = 1.0f;
        p.ring_area += 1.0;
      }
    }
  }
  // The smile: the lower half of an ellipse, stroked; a pixel's coverage falls off with its
  // distance to the nearest of many points along the curve (round ends, a 1 px soft edge).
  const double a = kDemoLips.half_width * kDemoRoiPerUnit;
  const double b = kDemoLips.half_height * kDemoRoiPerUnit;
  const double half_stroke = kDemoLips.stroke * kDemoRoiPerUnit / 2;
  constexpr int kSteps = 2000;
  std::vector<std::pair<double, double>> curve(kSteps + 1);
  for (int i = 0; i <= kSteps; ++i) {
    const double t = M_PI * i / kSteps;
    curve[i] = {cx + a * std::cos(t), cy + b * std::sin(t)};
  }
  const double reach = half_stroke + 1.0;
  for (int y = int(cy - reach); y <= int(cy + b + reach) + 1; ++y) {
    for (int x = int(cx - a - reach); x <= int(cx + a + reach) + 1; ++x) {
      double d2 = 1e9;
      for (const auto& [px, py] : curve)
        d2 = std::min(d2, (x - px) * (x - px) + (y - py) * (y - py));
      const double cover = std::clamp(half_stroke + 0.5 - std::sqrt(d2), 0.0, 1.0);
      p.lips[y * kRoiSize + x] = static_cast<float>(cover);
    }
  }
  return p;
}

// The ROI with its mouth region repainted as a closed mouth: the region filled with the mean
// colour of the ring around it (the skin), the smile drawn on it. A talking template's open mouth
// is gone; a closed one is drawn anew in the same place.
std::string add_closed_mouth(OnnxBuilder& b, const std::string& roi) {
  using namespace contract;
  const ClosedMouthPlanes p = closed_mouth_planes();
  const std::vector<std::int64_t> plane{1, 1, kRoiSize, kRoiSize};
  // ReduceMean over the whole plane, rescaled to the ring's area: the ring's mean, [B, 3, 1, 1].
  const std::string ring_mean =
      b.add_node("ReduceMean", {b.add_node("Mul", {roi, b.add_float("ring", plane, p.ring)})},
                 {{"axes", std::vector<std::int64_t>{2, 3}}, {"keepdims", 1}});
  const std::string skin = b.add_node(
      "Mul", {ring_mean, scalar(b, static_cast<float>(double(kRoiSize) * kRoiSize / p.ring_area))});
  std::vector<float> keep(p.region.size());
  for (std::size_t i = 0; i < keep.size(); ++i) keep[i] = 1.0f - p.region[i];
  const std::string filled =
      b.add_node("Add", {b.add_node("Mul", {roi, b.add_float("keep", plane, keep)}),
                         b.add_node("Mul", {skin, b.add_float("region", plane, p.region)})});
  // The smile: filled * (1 - lips) + lips * colour.
  std::vector<float> bare(p.lips.size());
  std::vector<float> colour;
  for (std::size_t i = 0; i < bare.size(); ++i) bare[i] = 1.0f - p.lips[i];
  for (double c : {kDemoLips.blue, kDemoLips.green, kDemoLips.red}) {
    for (float cover : p.lips) colour.push_back(static_cast<float>(cover * c / 255.0));
  }
  return b.add_node("Add", {b.add_node("Mul", {filled, b.add_float("bare", plane, bare)}),
                            b.add_float("lips", {1, kOutputChannels, kRoiSize, kRoiSize}, colour)});
}

// The demo generator's picture: the ROI with its mouth closed, then the open-mouth ellipse
// painted by the audio; returns its tensor's name, or writes it as `output` when given.
std::string add_demo_picture(OnnxBuilder& b, const std::string& output = "") {
  using namespace contract;
  const std::string image(kGeneratorImageName);
  const std::string audio_in(kGeneratorAudioName);
  b.add_input(image, {-1, kImageChannels, kRoiSize, kRoiSize});
  b.add_input(audio_in, {-1, kAudioChannels, kAudioGrid, kAudioGrid});

  // Opening o in [0, 1] from the loudness of the frame's own feature row.
  const std::string own =
      b.add_node("Slice", {audio_in, b.add_int64("starts", {kOwnRowChannel}),
                           b.add_int64("ends", {kOwnRowChannel + 1}), b.add_int64("axes", {1})});
  const std::string loud = b.add_node(
      "ReduceMean", {own}, {{"axes", std::vector<std::int64_t>{1, 2, 3}}, {"keepdims", 1}});
  const std::string above = b.add_node("Sub", {loud, scalar(b, kDemoClosedLoudness)});
  const std::string scaled =
      b.add_node("Mul", {above, scalar(b, 1.0f / (kDemoOpenLoudness - kDemoClosedLoudness))});
  const std::string opening = b.add_node("Clip", {scaled, scalar(b, 0.0f), scalar(b, 1.0f)});

  // Inside the ellipse with half-height o * H when v = o^2 (1 - u^2) - w^2 > 0, where
  // u = (x - cx) / half_width and w = (y - cy) / H. v <= 0 everywhere when o = 0.
  std::vector<float> across(kRoiSize * kRoiSize);
  std::vector<float> down(kRoiSize * kRoiSize);
  for (int y = 0; y < kRoiSize; ++y) {
    for (int x = 0; x < kRoiSize; ++x) {
      const double u = (x - kDemoMouth.centre_x) / kDemoMouth.half_width;
      const double w = (y - kDemoMouth.centre_y) / kDemoMouth.half_height_open;
      across[y * kRoiSize + x] = static_cast<float>(1.0 - u * u);
      down[y * kRoiSize + x] = static_cast<float>(w * w);
    }
  }
  const std::string o2 = b.add_node("Mul", {opening, opening});
  const std::string v = b.add_node(
      "Sub", {b.add_node("Mul", {o2, b.add_float("across", {1, 1, kRoiSize, kRoiSize}, across)}),
              b.add_float("down", {1, 1, kRoiSize, kRoiSize}, down)});
  // v / o^2 is 1 at the centre whatever the opening, so a slightly open mouth is as dark inside
  // as a wide one; the small constant keeps o = 0 finite (v <= 0 there, so the mask stays 0).
  const std::string normalised =
      b.add_node("Div", {v, b.add_node("Add", {o2, scalar(b, kOpeningFloor)})});
  const std::string mask = b.add_node(
      "Clip",
      {b.add_node("Mul", {normalised, scalar(b, kEdgeGain)}), scalar(b, 0.0f), scalar(b, 1.0f)});
  const std::string shade = b.add_node(
      "Sub", {scalar(b, 1.0f), b.add_node("Mul", {mask, scalar(b, kDemoMouthDarkness)})});
  const std::string roi = b.add_node("Slice", {image, b.add_int64("starts", {0}),
                                               b.add_int64("ends", {3}), b.add_int64("axes", {1})});
  return b.add_node("Mul", {add_closed_mouth(b, roi), shade}, {}, output);
}

}  // namespace

GeneratedModel demo_generator() {
  using namespace contract;
  OnnxBuilder b("lipsync_demo_generator", kOpset);
  add_demo_picture(b, std::string(kGeneratorOutputName));
  b.add_output(std::string(kGeneratorOutputName), {-1, kOutputChannels, kRoiSize, kRoiSize});
  return {b.serialize(), 0, b.initializer_values()};
}

GeneratedModel drifting_generator(const Drift& drift) {
  using namespace contract;
  OnnxBuilder b("lipsync_drifting_generator", kOpset);
  const std::string picture = add_demo_picture(b);
  // Per channel: v * gain + offset.
  const std::vector<float> gain(drift.gain.begin(), drift.gain.end());
  const std::vector<float> offset(drift.offset.begin(), drift.offset.end());
  std::string v = b.add_node(
      "Add", {b.add_node("Mul", {picture, b.add_float("gain", {1, kOutputChannels, 1, 1}, gain)}),
              b.add_float("offset", {1, kOutputChannels, 1, 1}, offset)});
  if (drift.blur) {
    // A 3 x 3 binomial blur of each channel on its own: the edges padded by repeating them,
    // then a convolution without padding.
    const std::vector<float> k{1, 2, 1, 2, 4, 2, 1, 2, 1};
    std::vector<float> w;
    for (int c = 0; c < kOutputChannels; ++c) {
      for (float x : k) w.push_back(x / 16.0f);
    }
    const std::string padded =
        b.add_node("Pad", {v, b.add_int64("pads", {0, 0, 1, 1, 0, 0, 1, 1})}, {{"mode", "edge"}});
    v = b.add_node("Conv", {padded, b.add_float("blur", {kOutputChannels, 1, 3, 3}, w)},
                   {{"group", static_cast<std::int64_t>(kOutputChannels)}});
  }
  b.add_node("Clip", {v, scalar(b, 0.0f), scalar(b, 1.0f)}, {}, std::string(kGeneratorOutputName));
  b.add_output(std::string(kGeneratorOutputName), {-1, kOutputChannels, kRoiSize, kRoiSize});
  return {b.serialize(), 0, b.initializer_values()};
}

void write_drifting_models(const std::filesystem::path& dir, const Drift& drift) {
  write_demo_models(dir);
  core::write_file_atomically(dir / infer::kGeneratorFileName, drifting_generator(drift).onnx);
  infer::ModelManifest manifest;
  manifest.name = "drifting";
  manifest.kind = "demo";
  manifest.save(dir / infer::kManifestFileName);
}

void write_demo_models(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error::invalid_input("models " + dir.string() + ": cannot create: " + ec.message());
  core::write_file_atomically(dir / infer::kEncoderFileName, demo_audio_encoder().onnx);
  core::write_file_atomically(dir / infer::kGeneratorFileName, demo_generator().onnx);
  infer::ModelManifest manifest;
  manifest.name = "demo";
  manifest.kind = "demo";
  manifest.save(dir / infer::kManifestFileName);
}

}  // namespace lipsync::modelgen
