#include "modelgen/synctalk_net.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "audio/mel_constants.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "modelgen/onnx_builder.h"

namespace lipsync::modelgen {
namespace {

constexpr int kOpset = 13;

// Writes layers into an OnnxBuilder, folding each BatchNorm into its conv, and counts
// PyTorch-style parameters.
class NetWriter {
 public:
  NetWriter(OnnxBuilder& builder, WeightSource& weights) : b_(builder), weights_(weights) {}

  // The conv at module `conv_module`, then (spec.batch_norm) the BatchNorm2d at `bn_module`.
  std::string conv(const std::string& x, const ConvSpec& c, const std::string& conv_module,
                   const std::string& bn_module = {}) {
    const int per_group = c.cin / c.groups;
    const std::size_t fan_in = static_cast<std::size_t>(per_group) * c.kernel * c.kernel;
    std::vector<double> w, bias;
    weights_.conv(conv_module, c, w, bias);
    parameters_ += static_cast<std::int64_t>(w.size()) + (c.torch_bias ? c.cout : 0);
    if (c.batch_norm) {
      // w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta.
      const BatchNormParams bn = weights_.batch_norm(bn_module, c.cout);
      for (int o = 0; o < c.cout; ++o) {
        const double scale = bn.gamma[o] / std::sqrt(bn.var[o] + kBatchNormEpsilon);
        for (std::size_t i = 0; i < fan_in; ++i) w[o * fan_in + i] *= scale;
        bias[o] = (bias[o] - bn.mean[o]) * scale + bn.beta[o];
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

 private:
  OnnxBuilder& b_;
  WeightSource& weights_;
  std::int64_t parameters_ = 0;
};

void check_width(double width) {
  if (!(width > 0.0 && width <= 4.0)) {
    std::ostringstream s;
    s << "model width " << width << " is out of range; expected 0 < width <= 4";
    throw Error::invalid_input(s.str());
  }
}

// IR(a->b, stride, residual) of REFERENCE.md §8: upstream's InvertedResidual(expand_ratio=2),
// whose nn.Sequential holds conv 0, BN 1, ReLU 2, conv 3, BN 4, ReLU 5, conv 6, BN 7.
std::string inverted_residual(NetWriter& net, const std::string& module, const std::string& x,
                              int a, int b, int stride, bool residual) {
  const int e = 2 * a;
  const std::string m = module + ".conv.";
  std::string h = net.relu(net.conv(x, {.cin = a, .cout = e, .kernel = 1}, m + "0", m + "1"));
  h = net.relu(net.conv(h,
                        {.cin = e,
                         .cout = e,
                         .kernel = 3,
                         .stride_h = stride,
                         .stride_w = stride,
                         .pad = 1,
                         .groups = e},
                        m + "3", m + "4"));
  h = net.conv(h, {.cin = e, .cout = b, .kernel = 1}, m + "6", m + "7");
  return residual ? net.add(x, h) : h;
}

// DW(a->b, stride) = IR(a->b, stride) then IR(b->b, 1, residual): upstream's DoubleConvDW.
std::string down_block(NetWriter& net, const std::string& module, const std::string& x, int a,
                       int b, int stride) {
  const std::string m = module + ".double_conv.";
  return inverted_residual(net, m + "1", inverted_residual(net, m + "0", x, a, b, stride, false), b,
                           b, 1, true);
}

}  // namespace

int scaled_channels(int n, double width) {
  return std::max(2, static_cast<int>(std::lround(n * width)));
}

GeneratedModel build_generator(WeightSource& weights, double width) {
  check_width(width);
  using namespace contract;
  OnnxBuilder builder("synctalk_2d_generator", kOpset);
  NetWriter net(builder, weights);
  auto c = [&](int n) { return scaled_channels(n, width); };
  const std::string image(kGeneratorImageName);
  const std::string audio(kGeneratorAudioName);
  builder.add_input(image, {-1, kImageChannels, kRoiSize, kRoiSize});
  builder.add_input(audio, {-1, kAudioChannels, kAudioGrid, kAudioGrid});

  // Image encoder: five downsamplings, each output kept as a skip.
  const std::string x0 =
      inverted_residual(net, "inc.inconv.0", image, kImageChannels, c(32), 1, false);  // @320
  auto down = [&](int i, const std::string& x, int a, int b) {
    return down_block(net, "down" + std::to_string(i) + ".maxpool_conv.0", x, a, b, 2);
  };
  const std::string s1 = down(1, x0, c(32), c(32));    // @160
  const std::string s2 = down(2, s1, c(32), c(64));    // @80
  const std::string s3 = down(3, s2, c(64), c(128));   // @40
  const std::string s4 = down(4, s3, c(128), c(256));  // @20
  const std::string s5 = down(5, s4, c(256), c(512));  // @10

  // Audio branch (AudioConvAve): [B,32,16,16] -> [B,512,10,10].
  const std::string am = "audio_model.";
  std::string a = inverted_residual(net, am + "conv1", audio, kAudioChannels, c(64), 1, false);
  a = inverted_residual(net, am + "conv2", a, c(64), c(128), 1, false);
  a = net.relu(net.conv(a,
                        {.cin = c(128), .cout = c(256), .kernel = 3, .pad = 1, .torch_bias = true},
                        am + "conv3", am + "bn3"));
  a = inverted_residual(net, am + "conv4", a, c(256), c(256), 1, true);
  a = net.relu(net.conv(a,
                        {.cin = c(256),
                         .cout = c(512),
                         .kernel = 3,
                         .stride_h = 2,
                         .stride_w = 2,
                         .pad = 3,
                         .torch_bias = true},
                        am + "conv5", am + "bn5"));
  a = inverted_residual(net, am + "conv6", a, c(512), c(512), 1, true);
  a = inverted_residual(net, am + "conv7", a, c(512), c(512), 1, true);

  // Fusion: image features first, then audio (torch.cat([x6, audio_feat])).
  std::string f = builder.add_node("Concat", {s5, a}, {{"axis", 1}});
  f = down_block(net, "fuse_conv.0", f, 2 * c(512), c(512), 1);
  f = down_block(net, "fuse_conv.1", f, c(512), c(256), 1);

  // Decoder: bilinear x2 (align corners), concat [upsampled, skip], DW.
  const std::vector<float> scales{1.0f, 1.0f, 2.0f, 2.0f};
  const std::string scales_name = builder.add_float("scales", {4}, scales);
  auto up = [&](int i, const std::string& x, int x_channels, const std::string& skip,
                int skip_channels, int out) {
    const std::string u =
        builder.add_node("Resize", {x, "", scales_name},
                         {{"coordinate_transformation_mode", "align_corners"}, {"mode", "linear"}});
    const std::string cat = builder.add_node("Concat", {u, skip}, {{"axis", 1}});
    return down_block(net, "up" + std::to_string(i) + ".conv", cat, x_channels + skip_channels, out,
                      1);
  };
  f = up(1, f, c(256), s4, c(256), c(128));  // @20
  f = up(2, f, c(128), s3, c(128), c(64));   // @40
  f = up(3, f, c(64), s2, c(64), c(32));     // @80
  f = up(4, f, c(32), s1, c(32), c(32));     // @160
  f = up(5, f, c(32), x0, c(32), c(16));     // @320
  f = net.conv(
      f,
      {.cin = c(16), .cout = kOutputChannels, .kernel = 1, .torch_bias = true, .batch_norm = false},
      "outc.conv");
  builder.add_node("Sigmoid", {f}, {}, std::string(kGeneratorOutputName));
  builder.add_output(std::string(kGeneratorOutputName), {-1, kOutputChannels, kRoiSize, kRoiSize});
  return {builder.serialize(), net.parameters(), builder.initializer_values()};
}

GeneratedModel build_audio_encoder(WeightSource& weights, double width) {
  check_width(width);
  using namespace contract;
  OnnxBuilder builder("synctalk_2d_audio_encoder", kOpset);
  NetWriter net(builder, weights);
  auto c = [&](int n) { return scaled_channels(n, width); };
  const std::string input(kEncoderInputName);
  builder.add_input(input, {-1, 1, audio::kMelBands, audio::kWindowFrames});

  // Conv2d + BatchNorm (+ the input when residual) + ReLU, as in Wav2Lip's audio encoder; block
  // i is the encoder's nn.Sequential entry i (conv_block.0 the conv, conv_block.1 the BN).
  int index = 0;
  auto block = [&](const std::string& x, int cin, int cout, int kernel, int sh, int sw, int pad,
                   bool residual) {
    const std::string m = std::to_string(index++) + ".conv_block.";
    std::string h = net.conv(x,
                             {.cin = cin,
                              .cout = cout,
                              .kernel = kernel,
                              .stride_h = sh,
                              .stride_w = sw,
                              .pad = pad,
                              .torch_bias = true},
                             m + "0", m + "1");
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

}  // namespace lipsync::modelgen
