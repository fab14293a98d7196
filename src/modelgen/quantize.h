// `lipsync models quantize`: a float SyncTalk_2D generator rewritten as a static QDQ int8 graph
// for ONNX Runtime's CPU kernels (../shared/QUANTIZATION.md): uint8 asymmetric activations
// (zero point 0 after every Relu, so Conv+Relu fuses), int8 per-channel symmetric weights,
// int32 biases, opset 13. Linear Resize stays float between a DequantizeLinear and a
// QuantizeLinear. By default a Concat's inputs share its output's scale and zero point, so that
// ONNX Runtime copies them instead of requantising each byte. Before calibration, depthwise blocks
// whose width is not a multiple of 16 (the first block's 12) are padded with zero filters, which
// does not change the function but lets the fast int8 depthwise kernels run.
// Thread contract: stateless functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/infer_options.h"
#include "infer/model_manifest.h"

namespace lipsync::modelgen {

enum class Calibration { kMinMax, kPercentile };
std::string_view to_string(Calibration c);
// "minmax" or "percentile"; throws Error::Code::kInvalidInput naming the value otherwise.
Calibration parse_calibration(std::string_view text);

// How a Concat's inputs are quantised. kShared: every input gets the scale and zero point of the
// range that covers them all (the Concat's own), which makes QLinearConcat a memcpy (8 % of the
// reference generator's time at 2 threads) at the cost of coarser steps on the inputs with the
// smaller ranges (0.7 dB on the reference models). kPerInput: each input keeps its own range
// (QLinearConcat maps each byte through a lookup table).
enum class ConcatScales { kShared, kPerInput };
std::string_view to_string(ConcatScales c);
// "shared" or "per-input"; throws Error::Code::kInvalidInput naming the value otherwise.
ConcatScales parse_concat_scales(std::string_view text);

// The range of the int8 weights. kReduced: 7 bits (-63..63), so that no pair of uint8 x int8
// products overflows the 16-bit sums of the AVX2 kernels ONNX Runtime uses on x86 CPUs without
// VNNI (with full-range weights the reference generator falls from 38 to 19 dB there). kFull:
// -127..127, about 0.5 dB closer to float32, correct only on CPUs with VNNI (and on ARM); the
// loader refuses such a generator on an x86 CPU without VNNI (infer::check_int8_weights).
enum class WeightRange { kReduced, kFull };
std::string_view to_string(WeightRange r);
// "reduced" or "full"; throws Error::Code::kInvalidInput naming the value otherwise.
WeightRange parse_weight_range(std::string_view text);
// The weights' bits recorded in model.json (weight_bits): 7 or 8.
int weight_bits(WeightRange r);

// A Conv's weights [channels][...] quantised symmetrically per output channel to `bits` bits:
// each channel's scale is its largest magnitude / (2^(bits-1) - 1) (1 for an all-zero channel),
// its values round(w / scale) clamped to +-(2^(bits-1) - 1), zero point 0. `bits` is 2..8.
struct ChannelWeights {
  std::vector<float> scales;        // one per channel
  std::vector<std::int8_t> values;  // laid out as the weights are
};
ChannelWeights quantize_per_channel(std::span<const float> weights, std::size_t channels, int bits);

struct QuantizeOptions {
  Calibration calibration = Calibration::kMinMax;
  ConcatScales concat_scales = ConcatScales::kShared;
  WeightRange weight_range = WeightRange::kReduced;
  // kPercentile: each activation's range keeps this share of its calibration values per tail
  // (the rest clip).
  double percentile = 99.999;
  // The first and the last `float_convs` Convs of the graph keep float weights and a float
  // input (the layers that see the image and make the output are the most sensitive).
  int float_convs = 0;
  // The audio branch (every node computed from the audio input alone) stays float: it sees the
  // voice, whose features shift from speaker to speaker more than calibration covers, and it is
  // a small share of the work (16 x 16 grids).
  bool float_audio = false;
};

// One calibration input of the generator: image [6][320][320], audio [32][16][16].
struct CalibrationFrame {
  std::vector<float> image;
  std::vector<float> audio;
};

struct QuantizeReport {
  std::string onnx;        // the int8 model, serialised
  int convs = 0;           // Conv nodes with int8 weights
  int activations = 0;     // tensors given a QuantizeLinear/DequantizeLinear pair
  int padded_blocks = 0;   // depthwise blocks widened to a multiple of 16
  int shared_concats = 0;  // Concats whose inputs were given the output's scale (kShared)
  int float_convs = 0;     // Convs left in float (QuantizeOptions::float_convs at each end)
};

// True when the model already holds QuantizeLinear or DequantizeLinear nodes.
bool is_quantized(const std::string& onnx);

// The padding rewrite alone (float in, float out, same function). `padded` receives the number
// of blocks widened.
std::string pad_depthwise_blocks(const std::string& onnx, int* padded = nullptr);

// Pads, calibrates on `frames` with ONNX Runtime (batch 1 each; `infer` sets the threads) and
// writes the QDQ model. Throws Error::Code::kInvalidInput for a model that is not a float
// generator (or already quantised) and for no calibration frames. Deterministic: the same model
// and frames give the same bytes.
QuantizeReport quantize_generator(const std::string& fp32_onnx,
                                  std::span<const CalibrationFrame> frames,
                                  const QuantizeOptions& options, const infer::InferOptions& infer);

// `lipsync models quantize`: OUT gets the int8 generator, the float encoder as it was and a
// model.json (precision, calibration, frames, the speech files' names, the fp32 sources'
// checksums). Written through a staging folder; OUT must not exist or be empty.
infer::ModelManifest write_quantized_models(const std::filesystem::path& models,
                                            std::span<const CalibrationFrame> frames,
                                            const std::vector<std::string>& audio_names,
                                            const QuantizeOptions& options,
                                            const infer::InferOptions& infer,
                                            const std::filesystem::path& out);

}  // namespace lipsync::modelgen
