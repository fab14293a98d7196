// The two SyncTalk_2D networks of REFERENCE.md §8 written as ONNX graphs, with their weights
// from a WeightSource: seeded random ones (synth_models) or a trained checkpoint's
// (synctalk_import). Every BatchNorm is folded into the convolution before it, here, for both.
// Each layer asks the source by its PyTorch module path
// (`down1.maxpool_conv.0.double_conv.0.conv.3` for upstream's unet_328.py `Model(6, 'ave')`,
// `3.conv_block.0` for utils.py's encoder), in forward order. Thread contract: stateless functions;
// a WeightSource is used by one build at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lipsync::modelgen {

constexpr double kBatchNormEpsilon = 1e-5;  // PyTorch's BatchNorm2d default, used upstream

// One Conv2d as the network declares it.
struct ConvSpec {
  int cin = 0, cout = 0, kernel = 1;
  int stride_h = 1, stride_w = 1, pad = 0, groups = 1;
  bool torch_bias = false;  // the PyTorch layer has its own bias
  bool batch_norm = true;   // followed by BatchNorm2d (folded)
};

// A BatchNorm2d's eval-mode parameters, one value per channel each.
struct BatchNormParams {
  std::vector<double> mean, var, gamma, beta;
};

// Where the weights come from.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The weight of the conv at `module` ([cout, cin/groups, k, k], C order) and its bias (cout
  // values; zeros when spec.torch_bias is false).
  virtual void conv(const std::string& module, const ConvSpec& spec, std::vector<double>& weight,
                    std::vector<double>& bias) = 0;
  // The BatchNorm2d at `module`, with `channels` channels.
  virtual BatchNormParams batch_norm(const std::string& module, int channels) = 0;
};

// One generated network.
struct GeneratedModel {
  std::string onnx;              // serialised ModelProto
  std::int64_t parameters = 0;   // PyTorch-convention count (before BatchNorm folding)
  std::int64_t onnx_values = 0;  // values stored in the ONNX initializers (after folding)
};

// width scales every internal channel count as upstream's `ch` list does (1.0: ch = [32, 64,
// 128, 256, 512]; 0.5: the mobile [16, ..., 256]); the tensor contract never changes.
// Requires: 0 < width <= 4 (throws Error::Code::kInvalidInput otherwise).
GeneratedModel build_generator(WeightSource& weights, double width);
GeneratedModel build_audio_encoder(WeightSource& weights, double width);

// Channel count of a layer that has n channels at width 1.
int scaled_channels(int n, double width);

}  // namespace lipsync::modelgen
