#include "modelgen/quantize.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <type_traits>
#include <unordered_map>

#include "contract/model_family.h"
#include "core/check.h"
#include "core/error.h"
#include "core/file_util.h"
#include "infer/models.h"
#include "infer/session.h"
#include "modelgen/synctalk_import.h"

namespace lipsync::modelgen {
namespace {

constexpr int kQdqOpset = 13;              // per-axis DequantizeLinear (QUANTIZATION.md)
constexpr int kDepthwiseMultiple = 16;     // the int8 depthwise kernels' channel multiple
constexpr std::size_t kSampleStride = 61;  // percentile: every 61st value is kept

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(std::numeric_limits<int>::max());
  if (!m.ParseFromCodedStream(&coded)) throw Error::invalid_input("not an ONNX model");
  return m;
}

std::string serialize(const onnx::ModelProto& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!m.SerializeToCodedStream(&coded)) throw Error::internal("ONNX serialisation failed");
  }
  return bytes;
}

std::vector<float> floats_of(const onnx::TensorProto& t) {
  if (t.data_type() != onnx::TensorProto::FLOAT) {
    throw Error::invalid_input("initializer " + t.name() + " is not float32");
  }
  if (!t.raw_data().empty()) {
    std::vector<float> v(t.raw_data().size() / sizeof(float));
    std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
    return v;
  }
  return {t.float_data().begin(), t.float_data().end()};
}

template <class T>
void set_raw(onnx::TensorProto& t, std::string name, int type,
             const std::vector<std::int64_t>& dims, const std::vector<T>& values) {
  t.Clear();  // (name is a copy: it may be t's own)
  t.set_name(name);
  t.set_data_type(type);
  for (auto d : dims) t.add_dims(d);
  t.set_raw_data(values.data(), values.size() * sizeof(T));
}

int attr_int(const onnx::NodeProto& n, const std::string& name, int fallback) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return static_cast<int>(a.i());
  }
  return fallback;
}

void set_attr_int(onnx::NodeProto& n, const std::string& name, int value) {
  for (auto& a : *n.mutable_attribute()) {
    if (a.name() == name) {
      a.set_i(value);
      return;
    }
  }
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

// Who produces and who consumes each tensor of a graph.
struct GraphIndex {
  explicit GraphIndex(onnx::GraphProto& g) {
    for (int i = 0; i < g.node_size(); ++i) {
      onnx::NodeProto* n = g.mutable_node(i);
      for (const auto& out : n->output()) producer[out] = n;
      for (const auto& in : n->input()) {
        if (!in.empty()) consumers[in].push_back(n);
      }
    }
    for (int i = 0; i < g.initializer_size(); ++i) {
      init[g.initializer(i).name()] = g.mutable_initializer(i);
    }
    for (const auto& o : g.output()) graph_outputs.insert(o.name());
  }
  onnx::NodeProto* only_consumer(const std::string& t, const char* op) const {
    const auto it = consumers.find(t);
    if (it == consumers.end() || it->second.size() != 1 || graph_outputs.contains(t)) {
      return nullptr;
    }
    return it->second[0]->op_type() == op ? it->second[0] : nullptr;
  }
  int uses(const std::string& t) const {
    const auto it = consumers.find(t);
    return it == consumers.end() ? 0 : static_cast<int>(it->second.size());
  }
  std::unordered_map<std::string, onnx::NodeProto*> producer;
  std::unordered_map<std::string, std::vector<onnx::NodeProto*>> consumers;
  std::unordered_map<std::string, onnx::TensorProto*> init;
  std::set<std::string> graph_outputs;
};

// Zero-pads dimension `axis` of a float initializer from `from` to `to`.
void pad_axis(onnx::TensorProto& t, int axis, std::int64_t to) {
  const std::vector<float> v = floats_of(t);
  std::vector<std::int64_t> dims(t.dims().begin(), t.dims().end());
  const std::int64_t from = dims[axis];
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= dims[d];
  for (std::size_t d = axis + 1; d < dims.size(); ++d) inner *= dims[d];
  std::vector<float> out(static_cast<std::size_t>(outer * to * inner), 0.0f);
  for (std::int64_t o = 0; o < outer; ++o) {
    std::copy_n(v.begin() + o * from * inner, from * inner, out.begin() + o * to * inner);
  }
  dims[axis] = to;
  set_raw(t, t.name(), onnx::TensorProto::FLOAT, dims, out);
}

bool is_1x1_dense(const GraphIndex& g, const onnx::NodeProto& conv) {
  if (conv.op_type() != "Conv" || attr_int(conv, "group", 1) != 1 || conv.input_size() < 2) {
    return false;
  }
  const auto it = g.init.find(conv.input(1));
  return it != g.init.end() && it->second->dims_size() == 4 && it->second->dims(2) == 1 &&
         it->second->dims(3) == 1 && g.uses(conv.input(1)) == 1;
}

int pad_blocks(onnx::ModelProto& m) {
  onnx::GraphProto& graph = *m.mutable_graph();
  GraphIndex g(graph);
  int padded = 0;
  for (int i = 0; i < graph.node_size(); ++i) {
    onnx::NodeProto& dw = *graph.mutable_node(i);
    if (dw.op_type() != "Conv" || dw.input_size() < 2 || !g.init.contains(dw.input(1))) continue;
    onnx::TensorProto& w = *g.init.at(dw.input(1));
    const int groups = attr_int(dw, "group", 1);
    if (w.dims_size() != 4 || groups <= 1 || w.dims(0) != groups || w.dims(1) != 1 ||
        groups % kDepthwiseMultiple == 0 || g.uses(dw.input(1)) != 1) {
      continue;
    }
    // Conv A (1x1) -> Relu -> depthwise -> Relu -> Conv B (1x1), each link used once.
    const auto pa = g.producer.find(dw.input(0));
    if (pa == g.producer.end() || pa->second->op_type() != "Relu") continue;
    onnx::NodeProto* relu_in = pa->second;
    const auto pb = g.producer.find(relu_in->input(0));
    if (pb == g.producer.end() || !is_1x1_dense(g, *pb->second) ||
        g.only_consumer(relu_in->input(0), "Relu") != relu_in ||
        g.only_consumer(dw.input(0), "Conv") != &dw) {
      continue;
    }
    onnx::NodeProto* a = pb->second;
    onnx::NodeProto* relu_out = g.only_consumer(dw.output(0), "Relu");
    onnx::NodeProto* b = relu_out ? g.only_consumer(relu_out->output(0), "Conv") : nullptr;
    if (b == nullptr || !is_1x1_dense(g, *b)) continue;
    const std::int64_t to =
        (groups + kDepthwiseMultiple - 1) / kDepthwiseMultiple * kDepthwiseMultiple;
    pad_axis(*g.init.at(a->input(1)), 0, to);
    if (a->input_size() > 2) pad_axis(*g.init.at(a->input(2)), 0, to);
    pad_axis(w, 0, to);
    if (dw.input_size() > 2) pad_axis(*g.init.at(dw.input(2)), 0, to);
    set_attr_int(dw, "group", static_cast<int>(to));
    pad_axis(*g.init.at(b->input(1)), 1, to);
    ++padded;
  }
  // Shapes recorded for the widened tensors are stale now; ONNX Runtime infers them again.
  if (padded > 0) graph.clear_value_info();
  return padded;
}

struct Range {
  float lo = std::numeric_limits<float>::max();
  float hi = std::numeric_limits<float>::lowest();
  std::vector<float> sample;  // kPercentile
};

struct QParams {
  float scale = 1;
  std::uint8_t zero_point = 0;
};

QParams uint8_params(float lo, float hi) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  QParams q;
  if (hi - lo < 1e-12f) return q;  // a constant zero tensor
  q.scale = (hi - lo) / 255.0f;
  q.zero_point = static_cast<std::uint8_t>(std::clamp(std::lround(-lo / q.scale), 0L, 255L));
  return q;
}

// The activations to quantise: graph inputs and the outputs of the ops ONNX Runtime runs in
// int8, except a Conv output whose only consumer is a Relu (the Relu's output is quantised, with
// zero point 0, so the two fuse).
std::vector<std::string> activation_tensors(const onnx::GraphProto& graph, const GraphIndex& g) {
  static const std::set<std::string> kOps{"Conv", "Relu", "Add", "Concat", "Resize", "Sigmoid"};
  std::vector<std::string> out;
  for (const auto& in : graph.input()) {
    if (!g.init.contains(in.name())) out.push_back(in.name());
  }
  for (const auto& n : graph.node()) {
    if (!kOps.contains(n.op_type())) continue;
    if (n.op_type() == "Conv" && g.only_consumer(n.output(0), "Relu") != nullptr) continue;
    out.push_back(n.output(0));
  }
  return out;
}

void calibrate(const onnx::ModelProto& padded, const std::vector<std::string>& tensors,
               std::span<const CalibrationFrame> frames, const QuantizeOptions& options,
               const infer::InferOptions& infer_options, std::map<std::string, Range>& ranges) {
  onnx::ModelProto probe = padded;
  onnx::GraphProto& graph = *probe.mutable_graph();
  std::set<std::string> outputs;
  for (const auto& o : graph.output()) outputs.insert(o.name());
  for (const std::string& t : tensors) {
    if (outputs.contains(t)) continue;
    auto* info = graph.add_output();
    info->set_name(t);
    info->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  infer::InferOptions o = infer_options;
  o.graph_optimization = infer::GraphOptimization::kBasic;  // keep every probed tensor
  const infer::ProbeSession session(serialize(probe), o);
  const std::vector<std::int64_t> image_shape{1, contract::kImageChannels, contract::kRoiSize,
                                              contract::kRoiSize};
  const std::vector<std::int64_t> audio_shape{1, contract::kAudioChannels, contract::kAudioGrid,
                                              contract::kAudioGrid};
  for (const CalibrationFrame& f : frames) {
    const std::vector<infer::ProbeSession::Input> inputs{
        {std::string(contract::kGeneratorImageName), image_shape, f.image},
        {std::string(contract::kGeneratorAudioName), audio_shape, f.audio}};
    const auto results = session.run(inputs);
    const auto& names = session.output_names();
    for (std::size_t i = 0; i < names.size(); ++i) {
      Range& r = ranges[names[i]];
      const std::vector<float>& v = results[i];
      for (std::size_t k = 0; k < v.size(); ++k) {
        r.lo = std::min(r.lo, v[k]);
        r.hi = std::max(r.hi, v[k]);
        if (options.calibration == Calibration::kPercentile && k % kSampleStride == 0) {
          r.sample.push_back(v[k]);
        }
      }
    }
    // The graph inputs are calibrated too.
    for (const auto& in : inputs) {
      Range& r = ranges[in.name];
      for (std::size_t k = 0; k < in.values.size(); ++k) {
        r.lo = std::min(r.lo, in.values[k]);
        r.hi = std::max(r.hi, in.values[k]);
        if (options.calibration == Calibration::kPercentile && k % kSampleStride == 0) {
          r.sample.push_back(in.values[k]);
        }
      }
    }
  }
  if (options.calibration == Calibration::kPercentile) {
    const double tail = (100.0 - options.percentile) / 100.0;
    for (auto& [name, r] : ranges) {
      if (r.sample.empty()) continue;
      std::sort(r.sample.begin(), r.sample.end());
      const auto n = r.sample.size();
      const auto lo_i = static_cast<std::size_t>(std::floor(tail * static_cast<double>(n - 1)));
      const auto hi_i =
          static_cast<std::size_t>(std::ceil((1.0 - tail) * static_cast<double>(n - 1)));
      r.lo = r.sample[lo_i];
      r.hi = r.sample[hi_i];
      r.sample.clear();
    }
  }
}

}  // namespace

std::string_view to_string(ConcatScales c) {
  return c == ConcatScales::kShared ? "shared" : "per-input";
}

ConcatScales parse_concat_scales(std::string_view text) {
  if (text == "shared") return ConcatScales::kShared;
  if (text == "per-input") return ConcatScales::kPerInput;
  throw Error::invalid_input("--concat-scales " + std::string(text) +
                             ": unknown choice; expected shared or per-input");
}

std::string_view to_string(WeightRange r) {
  return r == WeightRange::kReduced ? "reduced" : "full";
}

WeightRange parse_weight_range(std::string_view text) {
  if (text == "reduced") return WeightRange::kReduced;
  if (text == "full") return WeightRange::kFull;
  throw Error::invalid_input("--weights " + std::string(text) +
                             ": unknown choice; expected reduced or full");
}

int weight_bits(WeightRange r) {
  return r == WeightRange::kReduced ? 7 : 8;
}

ChannelWeights quantize_per_channel(std::span<const float> weights, std::size_t channels,
                                    int bits) {
  LIPSYNC_CHECK(channels > 0 && weights.size() % channels == 0);
  LIPSYNC_CHECK(bits >= 2 && bits <= 8);
  const std::size_t per = weights.size() / channels;
  const long max = (1L << (bits - 1)) - 1;
  ChannelWeights out{std::vector<float>(channels), std::vector<std::int8_t>(weights.size())};
  for (std::size_t c = 0; c < channels; ++c) {
    float amax = 0;
    for (std::size_t k = 0; k < per; ++k) amax = std::max(amax, std::abs(weights[c * per + k]));
    out.scales[c] = amax > 0 ? amax / static_cast<float>(max) : 1.0f;
    for (std::size_t k = 0; k < per; ++k) {
      out.values[c * per + k] = static_cast<std::int8_t>(
          std::clamp(std::lround(weights[c * per + k] / out.scales[c]), -max, max));
    }
  }
  return out;
}

std::string_view to_string(Calibration c) {
  return c == Calibration::kMinMax ? "minmax" : "percentile";
}

Calibration parse_calibration(std::string_view text) {
  if (text == "minmax") return Calibration::kMinMax;
  if (text == "percentile") return Calibration::kPercentile;
  throw Error::invalid_input("--calibration " + std::string(text) +
                             ": unknown method; expected minmax or percentile");
}

namespace {
bool holds_qdq(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear" ||
        n.op_type().starts_with("QLinear")) {
      return true;
    }
  }
  return false;
}
}  // namespace

bool is_quantized(const std::string& onnx) {
  return holds_qdq(parse(onnx));
}

std::string pad_depthwise_blocks(const std::string& onnx, int* padded) {
  onnx::ModelProto m = parse(onnx);
  const int n = pad_blocks(m);
  if (padded != nullptr) *padded = n;
  return serialize(m);
}

namespace {

// The activations to quantise: every one of activation_tensors(), less the inputs of the Convs
// kept in float (options.float_convs at each end) and the audio branch (options.float_audio).
std::vector<std::string> choose_activations(const onnx::GraphProto& graph, const GraphIndex& g,
                                            const QuantizeOptions& options,
                                            QuantizeReport& report) {
  std::vector<std::string> tensors = activation_tensors(graph, g);
  if (options.float_convs > 0) {
    // Left out of the quantised activations, these Convs' inputs stay float, and so do their
    // weights (a Conv gets int8 weights only when its input is quantised).
    std::vector<const onnx::NodeProto*> convs;
    for (const auto& n : graph.node()) {
      if (n.op_type() == "Conv") convs.push_back(&n);
    }
    const auto k = static_cast<std::size_t>(options.float_convs);
    std::set<std::string> keep;
    for (std::size_t i = 0; i < convs.size(); ++i) {
      if (i < k || i + k >= convs.size()) {
        keep.insert(convs[i]->input(0));
        ++report.float_convs;
      }
    }
    std::erase_if(tensors, [&](const std::string& t) { return keep.contains(t); });
  }
  if (options.float_audio) {
    std::set<std::string> audio{std::string(contract::kGeneratorAudioName)};
    for (const auto& n : graph.node()) {
      bool from_audio = false, only_audio = true;
      for (const auto& in : n.input()) {
        if (in.empty() || g.init.contains(in)) continue;
        if (audio.contains(in)) {
          from_audio = true;
        } else {
          only_audio = false;
        }
      }
      if (from_audio && only_audio) {
        for (const auto& out : n.output()) audio.insert(out);
      }
    }
    std::erase_if(tensors, [&](const std::string& t) { return audio.contains(t); });
  }
  return tensors;
}

// Each quantised activation's scale and zero point from its calibrated range; a Resize output
// takes its input's, a Sigmoid output [0, 1]; with ConcatScales::kShared a Concat's inputs take
// its output's.
std::map<std::string, QParams> choose_params(const onnx::GraphProto& graph,
                                             const std::vector<std::string>& tensors,
                                             const std::map<std::string, Range>& ranges,
                                             const QuantizeOptions& options,
                                             QuantizeReport& report) {
  std::map<std::string, QParams> params;
  for (const std::string& t : tensors) {
    const auto it = ranges.find(t);
    if (it == ranges.end()) throw Error::internal("quantize: tensor " + t + " was not calibrated");
    params[t] = uint8_params(it->second.lo, it->second.hi);
  }
  for (const auto& n : graph.node()) {
    if (n.op_type() == "Resize" && params.contains(n.input(0))) {
      params[n.output(0)] = params[n.input(0)];
    }
    if (n.op_type() == "Sigmoid") params[n.output(0)] = {1.0f / 255.0f, 0};
  }
  if (options.concat_scales == ConcatScales::kShared) {
    // A Concat whose inputs already have its output's scale and zero point is a memcpy in ONNX
    // Runtime; otherwise each input goes through a byte lookup table (ConcatScales, quantize.h).
    for (const auto& n : graph.node()) {
      if (n.op_type() != "Concat" || !params.contains(n.output(0))) continue;
      Range joined = ranges.at(n.output(0));
      for (const auto& in : n.input()) {
        if (!params.contains(in)) continue;
        joined.lo = std::min(joined.lo, ranges.at(in).lo);
        joined.hi = std::max(joined.hi, ranges.at(in).hi);
      }
      const QParams q = uint8_params(joined.lo, joined.hi);
      params[n.output(0)] = q;
      for (const auto& in : n.input()) {
        if (params.contains(in)) params[in] = q;
      }
      ++report.shared_concats;
    }
  }

  return params;
}

// The QDQ rewrite: a QuantizeLinear/DequantizeLinear pair after each quantised activation, and
// int8 per-channel weights (int32 biases) behind a DequantizeLinear for each Conv whose input is
// quantised.
void rewrite_qdq(onnx::GraphProto& graph, const GraphIndex& g,
                 const std::vector<std::string>& tensors,
                 const std::map<std::string, QParams>& params, const QuantizeOptions& options,
                 QuantizeReport& report) {
  // Rewrite: new node list with Q/DQ pairs after each activation and DQ nodes for weights.
  auto add_init = [&graph](const std::string& name, int type, std::vector<std::int64_t> dims,
                           const auto& values) {
    set_raw(*graph.add_initializer(), name, type, dims, values);
  };
  std::vector<onnx::NodeProto> nodes;
  auto add_node = [&nodes](const std::string& op, std::vector<std::string> in, std::string out,
                           int axis = -1) {
    onnx::NodeProto n;
    n.set_op_type(op);
    n.set_name(out + "_node");
    for (auto& i : in) n.add_input(i);
    n.add_output(out);
    if (axis >= 0) set_attr_int(n, "axis", axis);
    nodes.push_back(std::move(n));
  };
  // Replaces initializer `name` (input `input` of node n) by a DequantizeLinear of per-channel
  // quantised values along axis 0 with zero points 0.
  std::set<std::string> dropped_inits;
  auto dequantize_per_channel = [&](onnx::NodeProto& n, int input, const std::string& name,
                                    int type, std::vector<std::int64_t> dims, const auto& values,
                                    const std::vector<float>& scales) {
    using Value = typename std::decay_t<decltype(values)>::value_type;
    const std::vector<std::int64_t> channels{static_cast<std::int64_t>(scales.size())};
    add_init(name + "_q", type, std::move(dims), values);
    add_init(name + "_scale", onnx::TensorProto::FLOAT, channels, scales);
    add_init(name + "_zp", type, channels, std::vector<Value>(scales.size(), 0));
    add_node("DequantizeLinear", {name + "_q", name + "_scale", name + "_zp"}, name + "_dq", 0);
    n.set_input(input, name + "_dq");
    dropped_inits.insert(name);
  };
  std::map<std::string, std::string> renamed;  // activation -> its DequantizeLinear output
  auto emit_qdq = [&](const std::string& t, const std::string& source) {
    const QParams q = params.at(t);
    add_init(t + "_scale", onnx::TensorProto::FLOAT, {}, std::vector<float>{q.scale});
    add_init(t + "_zp", onnx::TensorProto::UINT8, {}, std::vector<std::uint8_t>{q.zero_point});
    add_node("QuantizeLinear", {source, t + "_scale", t + "_zp"}, t + "_q");
    const std::string out = g.graph_outputs.contains(t) ? t : t + "_dq";
    add_node("DequantizeLinear", {t + "_q", t + "_scale", t + "_zp"}, out);
    renamed[t] = out;
    ++report.activations;
  };
  const std::set<std::string> quantised(tensors.begin(), tensors.end());
  for (const auto& in : graph.input()) {
    if (quantised.contains(in.name())) emit_qdq(in.name(), in.name());
  }
  for (const onnx::NodeProto& original : graph.node()) {
    onnx::NodeProto n = original;
    for (auto& in : *n.mutable_input()) {
      if (const auto it = renamed.find(in); it != renamed.end()) in = it->second;
    }
    if (n.op_type() == "Conv" && g.init.contains(n.input(1)) && g.uses(n.input(1)) == 1 &&
        params.contains(original.input(0))) {
      const onnx::TensorProto& wt = *g.init.at(original.input(1));
      const auto channels = static_cast<std::size_t>(wt.dims(0));
      const ChannelWeights w =
          quantize_per_channel(floats_of(wt), channels, weight_bits(options.weight_range));
      dequantize_per_channel(n, 1, original.input(1), onnx::TensorProto::INT8,
                             {wt.dims().begin(), wt.dims().end()}, w.values, w.scales);
      if (n.input_size() > 2 && g.init.contains(original.input(2)) &&
          g.uses(original.input(2)) == 1) {
        const std::string bn = original.input(2);
        const std::vector<float> b = floats_of(*g.init.at(bn));
        const float x_scale = params.at(original.input(0)).scale;
        std::vector<float> b_scale(channels);
        std::vector<std::int32_t> b_q(channels);
        for (std::size_t c = 0; c < channels; ++c) {
          b_scale[c] = x_scale * w.scales[c];
          b_q[c] = static_cast<std::int32_t>(std::clamp<double>(
              std::round(b[c] / b_scale[c]), std::numeric_limits<std::int32_t>::min(),
              std::numeric_limits<std::int32_t>::max()));
        }
        dequantize_per_channel(n, 2, bn, onnx::TensorProto::INT32,
                               {static_cast<std::int64_t>(channels)}, b_q, b_scale);
      }
      ++report.convs;
    }
    // An activation that is a graph output keeps its name on the DequantizeLinear.
    const std::string out = n.output(0);
    const bool q_out = quantised.contains(out);
    if (q_out && g.graph_outputs.contains(out)) n.set_output(0, out + "_float");
    nodes.push_back(n);
    if (q_out) emit_qdq(out, n.output(0));
  }
  graph.clear_node();
  for (auto& n : nodes) *graph.add_node() = std::move(n);
  // Drop the float weights now held as int8.
  auto* inits = graph.mutable_initializer();
  inits->erase(
      std::remove_if(inits->begin(), inits->end(),
                     [&](const onnx::TensorProto& t) { return dropped_inits.contains(t.name()); }),
      inits->end());
  graph.clear_value_info();
}

}  // namespace

QuantizeReport quantize_generator(const std::string& fp32_onnx,
                                  std::span<const CalibrationFrame> frames,
                                  const QuantizeOptions& options,
                                  const infer::InferOptions& infer_options) {
  if (frames.empty()) throw Error::invalid_input("quantize: no calibration frames");
  onnx::ModelProto m = parse(fp32_onnx);
  if (holds_qdq(m)) {
    throw Error::invalid_input(
        "the generator is already quantised (it holds QDQ or QLinear "
        "nodes); quantise its float32 source instead");
  }
  QuantizeReport report;
  report.padded_blocks = pad_blocks(m);
  for (auto& op : *m.mutable_opset_import()) {
    if ((op.domain().empty() || op.domain() == "ai.onnx") && op.version() < kQdqOpset) {
      op.set_version(kQdqOpset);
    }
  }
  onnx::GraphProto& graph = *m.mutable_graph();
  GraphIndex g(graph);
  const std::vector<std::string> tensors = choose_activations(graph, g, options, report);
  std::map<std::string, Range> ranges;
  calibrate(m, tensors, frames, options, infer_options, ranges);
  const std::map<std::string, QParams> params =
      choose_params(graph, tensors, ranges, options, report);
  rewrite_qdq(graph, g, tensors, params, options, report);
  report.onnx = serialize(m);
  return report;
}

infer::ModelManifest write_quantized_models(const std::filesystem::path& models,
                                            std::span<const CalibrationFrame> frames,
                                            const std::vector<std::string>& audio_names,
                                            const QuantizeOptions& options,
                                            const infer::InferOptions& infer_options,
                                            const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  const fs::path generator = models / infer::kGeneratorFileName;
  const fs::path encoder = models / infer::kEncoderFileName;
  std::error_code ec;
  for (const fs::path& p : {generator, encoder}) {
    if (!fs::is_regular_file(p, ec))
      throw Error::not_found("models: " + p.string() + " is missing");
  }
  infer::ModelManifest m;
  if (fs::exists(models / infer::kManifestFileName, ec)) {
    m = infer::ModelManifest::load(models / infer::kManifestFileName);
  }
  if (!m.precision.empty() && m.precision != "fp32") {
    throw Error::invalid_input("models " + models.string() + " are already " + m.precision +
                               "; quantise their float32 source instead");
  }
  std::string fp32;
  {
    std::ifstream in(generator, std::ios::binary);
    fp32.assign(std::istreambuf_iterator<char>(in), {});
    if (!in.good() && !in.eof()) throw Error::invalid_input(generator.string() + ": cannot read");
  }
  QuantizeReport report;
  try {
    report = quantize_generator(fp32, frames, options, infer_options);
  } catch (const Error& e) {
    throw Error(e.code(), generator.string() + ": " + e.message());
  }
  if (m.name.empty()) m.name = fs::absolute(models).lexically_normal().filename().string();
  m.name += "-int8";
  m.precision = "int8";
  m.calibration = std::string(to_string(options.calibration));
  m.calibration_frames = static_cast<int>(frames.size());
  m.calibration_audio = audio_names;
  m.concat_scales = std::string(to_string(options.concat_scales));
  m.weight_bits = weight_bits(options.weight_range);
  m.float_convs = options.float_convs;
  std::vector<infer::ModelSource> sources = {model_source("fp32_generator", generator),
                                             model_source("audio_encoder", encoder)};
  for (const auto& s : m.sources) sources.push_back(s);  // what the fp32 model came from
  m.sources = std::move(sources);

  core::StagingFolder staging(out, "models output");
  core::write_file_atomically(staging.dir() / infer::kGeneratorFileName, report.onnx);
  fs::copy_file(encoder, staging.dir() / infer::kEncoderFileName, ec);
  if (ec) throw Error::invalid_input("models output: cannot copy " + encoder.string());
  m.save(staging.dir() / infer::kManifestFileName);
  staging.commit();
  return m;
}

}  // namespace lipsync::modelgen
