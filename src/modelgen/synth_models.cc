#include "modelgen/synth_models.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"
#include "infer/model_family.h"
#include "infer/model_manifest.h"
#include "infer/models.h"
#include "modelgen/onnx_builder.h"

namespace lipsync::modelgen {
namespace {

constexpr int kOpset = 13;
constexpr double kBatchNormEpsilon = 1e-5;  // PyTorch's BatchNorm2d default

// SplitMix64: a tiny, portable generator, so the same seed gives the same weights everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Approximately Normal(0, sd): the Irwin-Hall sum of 12 uniforms, with no transcendental
  // functions (so no libm differences between machines).
  double normal(double sd) {
    double sum = 0;
    for (int i = 0; i < 12; ++i) sum += uniform();
    return (sum - 6.0) * sd;
  }

 private:
  std::uint64_t state_;
};

// Writes layers into an OnnxBuilder with random weights and counts PyTorch-style parameters.
class NetWriter {
 public:
  NetWriter(OnnxBuilder& builder, std::uint64_t seed) : b_(builder), rng_(seed) {}

  struct Conv {
    int cin, cout, kernel;
    int stride_h = 1, stride_w = 1, pad = 0, groups = 1;
    bool torch_bias = false;  // the PyTorch layer has its own bias
    bool batch_norm = true;   // followed by BatchNorm2d (folded here)
  };

  std::string conv(const std::string& x, const Conv& c) {
    const int per_group = c.cin / c.groups;
    const std::size_t fan_in = static_cast<std::size_t>(per_group) * c.kernel * c.kernel;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));  // kaiming_uniform(a=√5)
    std::vector<double> w(static_cast<std::size_t>(c.cout) * fan_in);
    for (double& v : w) v = rng_.uniform(-bound, bound);
    std::vector<double> bias(c.cout, 0.0);
    if (c.torch_bias) {
      for (double& v : bias) v = rng_.uniform(-bound, bound);
    }
    parameters_ += static_cast<std::int64_t>(w.size()) + (c.torch_bias ? c.cout : 0);
    if (c.batch_norm) {
      // The reference models' BatchNorm statistics (testdata/reference/README.md): mean ~ N(0,
      // 0.1), var ~ U(0.5, 1.5), gamma ~ U(1.5, 2.5), beta ~ N(0, 0.1). Folded:
      // w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta.
      for (int o = 0; o < c.cout; ++o) {
        const double mean = rng_.normal(0.1);
        const double var = rng_.uniform(0.5, 1.5);
        const double gamma = rng_.uniform(1.5, 2.5);
        const double beta = rng_.normal(0.1);
        const double scale = gamma / std::sqrt(var + kBatchNormEpsilon);
        for (std::size_t i = 0; i < fan_in; ++i) w[o * fan_in + i] *= scale;
        bias[o] = (bias[o] - mean) * scale + beta;
      }
      parameters_ += 2 * c.cout;
    }
    const std::vector<float> wf(w.begin(), w.end());
    const std::vector<float> bf(bias.begin(), bias.end());
    const auto w_name = b_.add_float("w", {c.cout, per_group, c.kernel, c.kernel}, wf);
    const auto b_name = b_.add_float("b", {c.cout}, bf);
    const std::int64_t p = c.pad;
    return b_.add_node("Conv", {x, w_name, b_name},
                       {{"dilations", std::vector<std::int64_t>{1, 1}},
                        {"group", c.groups},
                        {"kernel_shape", std::vector<std::int64_t>{c.kernel, c.kernel}},
                        {"pads", std::vector<std::int64_t>{p, p, p, p}},
                        {"strides", std::vector<std::int64_t>{c.stride_h, c.stride_w}}});
  }
  std::string relu(const std::string& x) { return b_.add_node("Relu", {x}); }
  std::string add(const std::string& a, const std::string& c) { return b_.add_node("Add", {a, c}); }

  std::int64_t parameters() const { return parameters_; }
  OnnxBuilder& builder() { return b_; }

 private:
  OnnxBuilder& b_;
  Rng rng_;
  std::int64_t parameters_ = 0;
};

void check_width(double width) {
  if (!(width > 0.0 && width <= 4.0)) {
    std::ostringstream s;
    s << "model width " << width << " is out of range; expected 0 < width <= 4";
    throw Error::invalid_input(s.str());
  }
}

// Channel count of a layer that has n channels in the real model.
int scaled(int n, double width) {
  return std::max(2, static_cast<int>(std::lround(n * width)));
}

// IR(a->b, stride, residual) of REFERENCE.md §8.
std::string inverted_residual(NetWriter& net, const std::string& x, int a, int b, int stride,
                              bool residual) {
  const int e = 2 * a;
  std::string h = net.relu(net.conv(x, {.cin = a, .cout = e, .kernel = 1}));
  h = net.relu(net.conv(h, {.cin = e,
                            .cout = e,
                            .kernel = 3,
                            .stride_h = stride,
                            .stride_w = stride,
                            .pad = 1,
                            .groups = e}));
  h = net.conv(h, {.cin = e, .cout = b, .kernel = 1});
  return residual ? net.add(x, h) : h;
}

// DW(a->b, stride) = IR(a->b, stride) then IR(b->b, 1, residual).
std::string down_block(NetWriter& net, const std::string& x, int a, int b, int stride) {
  return inverted_residual(net, inverted_residual(net, x, a, b, stride, false), b, b, 1, true);
}

}  // namespace

GeneratedModel synth_generator(double width, std::uint64_t seed) {
  check_width(width);
  using namespace infer;
  OnnxBuilder builder("synctalk_2d_generator", kOpset);
  NetWriter net(builder, seed);
  auto c = [&](int n) { return scaled(n, width); };
  const std::string image(kGeneratorImageName);
  const std::string audio(kGeneratorAudioName);
  builder.add_input(image, {-1, kImageChannels, kRoiSize, kRoiSize});
  builder.add_input(audio, {-1, kAudioChannels, kAudioGrid, kAudioGrid});

  // Image encoder: five downsamplings, each output kept as a skip.
  const std::string x0 = inverted_residual(net, image, kImageChannels, c(32), 1, false);  // @320
  const std::string s1 = down_block(net, x0, c(32), c(32), 2);                            // @160
  const std::string s2 = down_block(net, s1, c(32), c(64), 2);                            // @80
  const std::string s3 = down_block(net, s2, c(64), c(128), 2);                           // @40
  const std::string s4 = down_block(net, s3, c(128), c(256), 2);                          // @20
  const std::string s5 = down_block(net, s4, c(256), c(512), 2);                          // @10

  // Audio branch: [B,32,16,16] -> [B,512,10,10].
  std::string a = inverted_residual(net, audio, kAudioChannels, c(64), 1, false);
  a = inverted_residual(net, a, c(64), c(128), 1, false);
  a = net.relu(
      net.conv(a, {.cin = c(128), .cout = c(256), .kernel = 3, .pad = 1, .torch_bias = true}));
  a = inverted_residual(net, a, c(256), c(256), 1, true);
  a = net.relu(net.conv(a, {.cin = c(256),
                            .cout = c(512),
                            .kernel = 3,
                            .stride_h = 2,
                            .stride_w = 2,
                            .pad = 3,
                            .torch_bias = true}));
  a = inverted_residual(net, a, c(512), c(512), 1, true);
  a = inverted_residual(net, a, c(512), c(512), 1, true);

  // Fusion.
  std::string f = builder.add_node("Concat", {s5, a}, {{"axis", 1}});
  f = down_block(net, f, 2 * c(512), c(512), 1);
  f = down_block(net, f, c(512), c(256), 1);

  // Decoder: bilinear x2 (align corners), concat with the skip, DW.
  const std::vector<float> scales{1.0f, 1.0f, 2.0f, 2.0f};
  const std::string scales_name = builder.add_float("scales", {4}, scales);
  auto up = [&](const std::string& x, int x_channels, const std::string& skip, int skip_channels,
                int out) {
    const std::string u =
        builder.add_node("Resize", {x, "", scales_name},
                         {{"coordinate_transformation_mode", "align_corners"}, {"mode", "linear"}});
    const std::string cat = builder.add_node("Concat", {u, skip}, {{"axis", 1}});
    return down_block(net, cat, x_channels + skip_channels, out, 1);
  };
  f = up(f, c(256), s4, c(256), c(128));  // @20
  f = up(f, c(128), s3, c(128), c(64));   // @40
  f = up(f, c(64), s2, c(64), c(32));     // @80
  f = up(f, c(32), s1, c(32), c(32));     // @160
  f = up(f, c(32), x0, c(32), c(16));     // @320
  f = net.conv(f, {.cin = c(16),
                   .cout = kOutputChannels,
                   .kernel = 1,
                   .torch_bias = true,
                   .batch_norm = false});
  builder.add_node("Sigmoid", {f}, {}, std::string(kGeneratorOutputName));
  builder.add_output(std::string(kGeneratorOutputName), {-1, kOutputChannels, kRoiSize, kRoiSize});
  return {builder.serialize(), net.parameters(), builder.initializer_values()};
}

GeneratedModel synth_audio_encoder(double width, std::uint64_t seed) {
  check_width(width);
  using namespace infer;
  OnnxBuilder builder("synctalk_2d_audio_encoder", kOpset);
  NetWriter net(builder, seed);
  auto c = [&](int n) { return scaled(n, width); };
  const std::string input(kEncoderInputName);
  builder.add_input(input, {-1, 1, audio::kMelBands, audio::kWindowFrames});

  // Conv2d + BatchNorm (+ the input when residual) + ReLU, as in Wav2Lip's audio encoder.
  auto block = [&](const std::string& x, int cin, int cout, int kernel, int sh, int sw, int pad,
                   bool residual) {
    std::string h = net.conv(x, {.cin = cin,
                                 .cout = cout,
                                 .kernel = kernel,
                                 .stride_h = sh,
                                 .stride_w = sw,
                                 .pad = pad,
                                 .torch_bias = true});
    if (residual) h = net.add(h, x);
    return net.relu(h);
  };
  std::string x = block(input, 1, c(32), 3, 1, 1, 1, false);
  x = block(x, c(32), c(32), 3, 1, 1, 1, true);
  x = block(x, c(32), c(32), 3, 1, 1, 1, true);
  x = block(x, c(32), c(64), 3, 3, 1, 1, false);  // 80x16 -> 27x16
  x = block(x, c(64), c(64), 3, 1, 1, 1, true);
  x = block(x, c(64), c(64), 3, 1, 1, 1, true);
  x = block(x, c(64), c(128), 3, 3, 3, 1, false);  // -> 9x6
  x = block(x, c(128), c(128), 3, 1, 1, 1, true);
  x = block(x, c(128), c(128), 3, 1, 1, 1, true);
  x = block(x, c(128), c(256), 3, 3, 2, 1, false);  // -> 3x3
  x = block(x, c(256), c(256), 3, 1, 1, 1, true);
  x = block(x, c(256), c(512), 3, 1, 1, 0, false);  // -> 1x1
  x = block(x, c(512), kFeatureSize, 1, 1, 1, 0, false);
  builder.add_node("Flatten", {x}, {{"axis", 1}}, std::string(kEncoderOutputName));
  builder.add_output(std::string(kEncoderOutputName), {-1, kFeatureSize});
  return {builder.serialize(), net.parameters(), builder.initializer_values()};
}

void write_synth_models(const std::filesystem::path& dir, double width, std::uint64_t seed) {
  check_width(width);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error::invalid_input("models " + dir.string() + ": cannot create: " + ec.message());
  // Different streams for the two networks, both fixed by the one seed.
  const GeneratedModel encoder = synth_audio_encoder(width, seed * 2 + 1);
  const GeneratedModel generator = synth_generator(width, seed * 2 + 2);
  core::write_file_atomically(dir / infer::kEncoderFileName, encoder.onnx);
  core::write_file_atomically(dir / infer::kGeneratorFileName, generator.onnx);
  infer::ModelManifest manifest;
  std::ostringstream name;
  name << "synth-w" << width << "-s" << seed;
  manifest.name = name.str();
  manifest.kind = "synthetic";
  manifest.width = width;
  manifest.seed = seed;
  manifest.generator_parameters = generator.parameters;
  manifest.encoder_parameters = encoder.parameters;
  manifest.save(dir / infer::kManifestFileName);
}

}  // namespace lipsync::modelgen
