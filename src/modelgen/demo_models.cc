#include "modelgen/demo_models.h"

#include <vector>

#include "audio/mel_constants.h"
#include "core/error.h"
#include "core/file_util.h"
#include "infer/model_family.h"
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
  using namespace infer;
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

// The demo generator's picture: the ROI with the mouth ellipse; returns its tensor's name, or
// writes it as `output` when given.
std::string add_demo_picture(OnnxBuilder& b, const std::string& output = "") {
  using namespace infer;
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
  return b.add_node("Mul", {roi, shade}, {}, output);
}

}  // namespace

GeneratedModel demo_generator() {
  using namespace infer;
  OnnxBuilder b("lipsync_demo_generator", kOpset);
  add_demo_picture(b, std::string(kGeneratorOutputName));
  b.add_output(std::string(kGeneratorOutputName), {-1, kOutputChannels, kRoiSize, kRoiSize});
  return {b.serialize(), 0, b.initializer_values()};
}

GeneratedModel drifting_generator(const Drift& drift) {
  using namespace infer;
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
