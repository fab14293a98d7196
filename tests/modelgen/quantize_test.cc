// The int8 quantiser: the padding rewrite keeps the float function, the QDQ graph has the
// intended structure (every Conv int8 per channel, Resize left float between DQ and Q, zero point
// 0 after Relu, a Concat's inputs on its output's scale by default and on their own with
// per-input), the same inputs give the same bytes, bad inputs are clear errors; and on the
// reference models the int8 outputs stay within the PSNR floor in both Concat modes (and with
// 8-bit weights where the CPU computes them correctly).
#include "modelgen/quantize.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include "core/system_info.h"
#include "infer/generator.h"
#include "infer/models.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using modelgen::CalibrationFrame;
using testing::read_f32;
using testing::TempDir;
using testing::testdata;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<CalibrationFrame> random_frames(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::normal_distribution<float> g(0, 1);
  std::vector<CalibrationFrame> frames(n);
  for (auto& f : frames) {
    f.image.resize(contract::kImageInputSize);
    f.audio.resize(contract::kAudioInputSize);
    for (float& v : f.image) v = u(rng);
    for (float& v : f.audio) v = std::clamp(g(rng), -4.0f, 4.0f);
  }
  return frames;
}

// Runs a generator file on frames; returns the outputs one after another.
std::vector<float> run_generator(const fs::path& model, const std::vector<CalibrationFrame>& in) {
  const infer::Generator generator(model, testing::two_threads());
  infer::GeneratorBatch batch = generator.make_batch(static_cast<int>(in.size()));
  for (std::size_t i = 0; i < in.size(); ++i) {
    std::copy(in[i].image.begin(), in[i].image.end(), batch.image(static_cast<int>(i)).begin());
    std::copy(in[i].audio.begin(), in[i].audio.end(), batch.audio(static_cast<int>(i)).begin());
  }
  generator.run(batch);
  return {batch.outputs().begin(), batch.outputs().end()};
}

double psnr(std::span<const float> a, std::span<const float> b) {
  double se = 0;
  for (std::size_t i = 0; i < a.size(); ++i) se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return 10 * std::log10(1.0 / (se / static_cast<double>(a.size())));
}

onnx::ModelProto load(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// Per-channel weights: each channel's scale is its own largest magnitude over 2^(bits-1) - 1, so
// that magnitude maps to the end of the range; values round to nearest; an all-zero channel gets
// scale 1; 8 bits reach +-127 and 7 bits +-63.
TEST(Quantize, PerChannelWeightsUseEachChannelsOwnRange) {
  const std::vector<float> w{0.6f, -1.0f, 0.25f, 0.126f,  // channel 0: max |w| 1
                             0.0f, 0.0f,  0.0f,  0.0f,    // channel 1: all zero
                             3.0f, 1.6f,  -0.7f, 0.02f};  // channel 2: max |w| 3
  const modelgen::ChannelWeights q7 = modelgen::quantize_per_channel(w, 3, 7);
  ASSERT_EQ(q7.scales.size(), 3u);
  ASSERT_EQ(q7.values.size(), w.size());
  EXPECT_FLOAT_EQ(q7.scales[0], 1.0f / 63);
  EXPECT_FLOAT_EQ(q7.scales[1], 1.0f);
  EXPECT_FLOAT_EQ(q7.scales[2], 3.0f / 63);
  // 0.6 * 63 = 37.8 -> 38; 0.126 * 63 = 7.94 -> 8; 1.6 * 21 = 33.6 -> 34; 0.02 * 21 = 0.42 -> 0.
  EXPECT_EQ(std::vector<int>(q7.values.begin(), q7.values.end()),
            (std::vector<int>{38, -63, 16, 8, 0, 0, 0, 0, 63, 34, -15, 0}));
  const modelgen::ChannelWeights q8 = modelgen::quantize_per_channel(w, 3, 8);
  EXPECT_FLOAT_EQ(q8.scales[0], 1.0f / 127);
  EXPECT_EQ(q8.values[1], -127);
  EXPECT_EQ(q8.values[8], 127);
  // Dequantised, every weight is within half a step of its channel's scale.
  for (std::size_t i = 0; i < w.size(); ++i) {
    const float scale = q8.scales[i / 4];
    EXPECT_LE(std::abs(q8.values[i] * scale - w[i]), 0.5f * scale + 1e-7f) << i;
  }
}

TEST(Quantize, PaddingTheDepthwiseBlocksKeepsTheFloatFunction) {
  TempDir dir;
  const std::string fp32 = read_bytes(testing::reference_models() / "generator.onnx");
  int padded = 0;
  const std::string wide = modelgen::pad_depthwise_blocks(fp32, &padded);
  EXPECT_EQ(padded, 1);  // the first block's 12-wide hidden layer; every other is a multiple
  const onnx::ModelProto m = load(wide);
  int widened = 0;
  for (const auto& n : m.graph().node()) {
    for (const auto& a : n.attribute()) {
      if (a.name() == "group" && a.i() == 16) ++widened;
      EXPECT_FALSE(a.name() == "group" && a.i() == 12) << n.name();
    }
  }
  EXPECT_EQ(widened, 1);
  write(dir / "wide.onnx", wide);
  const auto frames = random_frames(2, 1);
  const auto a = run_generator(testing::reference_models() / "generator.onnx", frames);
  const auto b = run_generator(dir / "wide.onnx", frames);
  EXPECT_LE(testing::diff(a, b).max_abs, 1e-5);
}

// Checks the QDQ graph of `report`; `shared`: the Concat inputs were given the Concat's scale.
void expect_intended_structure(const modelgen::QuantizeReport& report, bool shared,
                               int weight_max = 63) {
  const onnx::ModelProto m = load(report.onnx);
  EXPECT_EQ(m.opset_import(0).version(), 13);
  std::map<std::string, const onnx::NodeProto*> producer;
  std::map<std::string, std::vector<const onnx::NodeProto*>> consumers;
  std::map<std::string, const onnx::TensorProto*> init;
  for (const auto& n : m.graph().node()) {
    for (const auto& o : n.output()) producer[o] = &n;
    for (const auto& i : n.input()) consumers[i].push_back(&n);
  }
  for (const auto& t : m.graph().initializer()) init[t.name()] = &t;
  auto dq_of = [&](const std::string& t) -> const onnx::NodeProto* {
    const auto it = producer.find(t);
    return it != producer.end() && it->second->op_type() == "DequantizeLinear" ? it->second
                                                                               : nullptr;
  };
  auto same_params = [&](const onnx::NodeProto& a, const onnx::NodeProto& b) {
    return init.at(a.input(1))->raw_data() == init.at(b.input(1))->raw_data() &&
           init.at(a.input(2))->raw_data() == init.at(b.input(2))->raw_data();
  };
  int convs = 0, resizes = 0, concats = 0, concats_on_one_scale = 0;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == "Conv") {
      ++convs;
      ASSERT_NE(dq_of(n.input(0)), nullptr) << n.name() << ": float activation";
      const auto* w = dq_of(n.input(1));
      ASSERT_NE(w, nullptr) << n.name() << ": float weight";
      EXPECT_EQ(init.at(w->input(0))->data_type(), onnx::TensorProto::INT8);
      EXPECT_EQ(init.at(w->input(1))->dims(0), init.at(w->input(0))->dims(0)) << "per channel";
      // Symmetric in -weight_max..weight_max, and every channel reaches it (zero channels aside).
      const std::string& bytes = init.at(w->input(0))->raw_data();
      int largest = 0;
      for (const char c : bytes) largest = std::max(largest, std::abs(static_cast<int>(c)));
      EXPECT_EQ(largest, weight_max) << n.name();
      const auto* b = dq_of(n.input(2));
      ASSERT_NE(b, nullptr) << n.name() << ": float bias";
      EXPECT_EQ(init.at(b->input(0))->data_type(), onnx::TensorProto::INT32);
      // After a Relu the zero point is 0 (so ORT drops the Relu into QLinearConv).
      const auto& next = consumers[n.output(0)];
      if (next.size() == 1 && next[0]->op_type() == "Relu") {
        const auto& q = consumers[next[0]->output(0)];
        ASSERT_EQ(q.size(), 1u);
        ASSERT_EQ(q[0]->op_type(), "QuantizeLinear");
        EXPECT_EQ(init.at(q[0]->input(2))->raw_data(), std::string(1, '\0'));
      }
    }
    if (n.op_type() == "Resize") {
      ++resizes;
      const auto* in = dq_of(n.input(0));
      ASSERT_NE(in, nullptr) << "Resize input not from a DequantizeLinear";
      const auto& q = consumers[n.output(0)];
      ASSERT_EQ(q.size(), 1u);
      ASSERT_EQ(q[0]->op_type(), "QuantizeLinear");
      // Per input, a Resize output keeps its input's scale (shared: the Concat's, below).
      if (!shared) {
        EXPECT_TRUE(same_params(*q[0], *in)) << "a Resize output changed scale";
      }
    }
    if (n.op_type() == "Concat") {
      ++concats;
      const auto& q = consumers[n.output(0)];
      ASSERT_EQ(q.size(), 1u);
      ASSERT_EQ(q[0]->op_type(), "QuantizeLinear");
      bool one_scale = true;
      for (const auto& input : n.input()) {
        const auto* dq = dq_of(input);
        ASSERT_NE(dq, nullptr) << n.name() << ": float Concat input";
        one_scale = one_scale && same_params(*dq, *q[0]);
      }
      concats_on_one_scale += one_scale ? 1 : 0;
    }
  }
  EXPECT_EQ(convs, report.convs);
  EXPECT_EQ(convs, 93);
  EXPECT_EQ(resizes, 5);
  EXPECT_EQ(concats, 6);
  EXPECT_EQ(report.shared_concats, shared ? 6 : 0);
  // Per input, the ranges differ (random weights), so no Concat is a plain copy by chance.
  EXPECT_EQ(concats_on_one_scale, shared ? 6 : 0);
  // The contract is unchanged: float inputs and output, same names.
  ASSERT_EQ(m.graph().output_size(), 1);
  EXPECT_EQ(m.graph().output(0).name(), "output");
  EXPECT_EQ(producer.at("output")->op_type(), "DequantizeLinear");
  EXPECT_EQ(producer.at(producer.at("output")->input(0))->op_type(), "QuantizeLinear");
}

TEST(Quantize, TheQdqGraphHasTheIntendedStructureAndIsDeterministic) {
  const std::string fp32 = read_bytes(testing::synth_models() / "generator.onnx");
  const auto frames = random_frames(3, 2);
  const auto report = modelgen::quantize_generator(fp32, frames, {}, testing::two_threads());
  EXPECT_EQ(report.onnx,
            modelgen::quantize_generator(fp32, frames, {}, testing::two_threads()).onnx);
  expect_intended_structure(report, /*shared=*/true);
  modelgen::QuantizeOptions per_input;
  per_input.concat_scales = modelgen::ConcatScales::kPerInput;
  const auto exact = modelgen::quantize_generator(fp32, frames, per_input, testing::two_threads());
  expect_intended_structure(exact, /*shared=*/false);
  modelgen::QuantizeOptions full;
  full.weight_range = modelgen::WeightRange::kFull;
  const auto wide = modelgen::quantize_generator(fp32, frames, full, testing::two_threads());
  expect_intended_structure(wide, /*shared=*/true, /*weight_max=*/127);
}

// models quantize --float-convs K keeps the first and last K Convs float (weights straight from
// an initializer, no DequantizeLinear), --float-audio the audio branch (nothing quantises the
// audio input or what is computed from it alone); the rest stays int8.
TEST(Quantize, FloatConvsAndTheFloatAudioBranchStayFloat) {
  const std::string fp32 = read_bytes(testing::synth_models() / "generator.onnx");
  const auto frames = random_frames(2, 5);
  const auto weight_is_float = [](const onnx::ModelProto& m, const onnx::NodeProto& conv) {
    for (const auto& i : m.graph().initializer()) {
      if (i.name() == conv.input(1)) return true;
    }
    return false;
  };
  modelgen::QuantizeOptions ends;
  ends.float_convs = 1;
  const auto r1 = modelgen::quantize_generator(fp32, frames, ends, testing::two_threads());
  EXPECT_EQ(r1.float_convs, 2);
  EXPECT_EQ(r1.convs, 91);
  const onnx::ModelProto m1 = load(r1.onnx);
  std::vector<const onnx::NodeProto*> convs;
  for (const auto& n : m1.graph().node()) {
    if (n.op_type() == "Conv") convs.push_back(&n);
  }
  ASSERT_EQ(convs.size(), 93u);
  EXPECT_TRUE(weight_is_float(m1, *convs.front()));
  EXPECT_TRUE(weight_is_float(m1, *convs.back()));
  EXPECT_FALSE(weight_is_float(m1, *convs[1]));
  EXPECT_FALSE(weight_is_float(m1, *convs[convs.size() - 2]));

  modelgen::QuantizeOptions audio;
  audio.float_audio = true;
  const auto ra = modelgen::quantize_generator(fp32, frames, audio, testing::two_threads());
  const onnx::ModelProto ma = load(ra.onnx);
  for (const auto& n : ma.graph().node()) {
    if (n.op_type() == "QuantizeLinear") {
      EXPECT_NE(n.input(0), "audio");
    }
  }
  EXPECT_LT(ra.convs, 93);
  EXPECT_GT(ra.convs, 60);  // the image branch and the decoder stay int8
  // Both still run and give the float model's output shape.
  for (const auto* r : {&r1, &ra}) {
    const fs::path dir = fs::temp_directory_path() / ("lipsync-floatq-" + std::to_string(r->convs));
    fs::create_directories(dir);
    std::ofstream(dir / "generator.onnx", std::ios::binary) << r->onnx;
    const infer::Generator g(dir / "generator.onnx", testing::two_threads());
    std::vector<float> out(contract::kOutputSize);
    g.run(1, frames[0].image, frames[0].audio, out);
    for (float v : out) ASSERT_TRUE(v >= 0.0f && v <= 1.0f);
    fs::remove_all(dir);
  }
}

// The reference generator, calibrated on the reference avatar's ROIs and speech features (its
// stored inputs of frames 0-3), against PyTorch's float32 outputs for those frames.
TEST(Quantize, TheReferenceGeneratorStaysAboveThePsnrFloor) {
  TempDir dir;
  std::vector<CalibrationFrame> frames(4);
  std::vector<float> expected;
  for (int i = 0; i < 4; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "reference/input_%05d.f32", i);
    frames[i].image = read_f32(testdata(name));
    std::snprintf(name, sizeof name, "reference/audio_%05d.f32", i);
    frames[i].audio = read_f32(testdata(name));
    std::snprintf(name, sizeof name, "reference/output_%05d.f32", i);
    const auto out = read_f32(testdata(name));
    expected.insert(expected.end(), out.begin(), out.end());
  }
  const std::string fp32 = read_bytes(testing::reference_models() / "generator.onnx");
  const auto float32 = run_generator(testing::reference_models() / "generator.onnx", frames);
  std::printf("fp32 ONNX Runtime vs PyTorch: %.1f dB\n", psnr(float32, expected));
  // Measured on an AMD EPYC: 7-bit weights 38.09 dB (shared) and 37.88 (per-input) with AVX2
  // alone, the same kernels' exact sums with VNNI; 8-bit weights 38.64 dB with VNNI, 19.06 with
  // AVX2 alone (saturated).
  struct Case {
    modelgen::ConcatScales concat;
    modelgen::WeightRange weights;
    double floor;
  };
  const bool saturates = core::int8_pairs_saturate();
  std::printf("this CPU's int8 instructions: %s\n", core::cpu_int8_instructions().c_str());
  for (const Case c :
       {Case{modelgen::ConcatScales::kShared, modelgen::WeightRange::kReduced, 38.0},
        Case{modelgen::ConcatScales::kPerInput, modelgen::WeightRange::kReduced, 37.5},
        Case{modelgen::ConcatScales::kShared, modelgen::WeightRange::kFull, 38.0}}) {
    modelgen::QuantizeOptions options;
    options.concat_scales = c.concat;
    options.weight_range = c.weights;
    const auto report = modelgen::quantize_generator(fp32, frames, options, testing::two_threads());
    EXPECT_EQ(report.padded_blocks, 1);
    EXPECT_EQ(report.convs, 93);
    write(dir / "int8.onnx", report.onnx);
    const double db = psnr(run_generator(dir / "int8.onnx", frames), expected);
    std::printf("int8 (concat scales %s, weights %s) vs PyTorch: %.2f dB\n",
                std::string(modelgen::to_string(c.concat)).c_str(),
                std::string(modelgen::to_string(c.weights)).c_str(), db);
    EXPECT_LT(db, 60.0) << "suspiciously close: is it still float?";
    if (c.weights == modelgen::WeightRange::kFull && saturates) {
      // Why the loader refuses 8-bit weights here (infer::check_int8_weights): should this ever
      // pass, ONNX Runtime no longer saturates on this CPU and the refusal can go.
      EXPECT_LT(db, 30.0) << "8-bit weights no longer saturate on this CPU";
    } else {
      EXPECT_GE(db, c.floor);
    }
  }
}

TEST(Quantize, BadInputsAreClearErrors) {
  const std::string fp32 = read_bytes(testing::synth_models() / "generator.onnx");
  const auto frames = random_frames(1, 3);
  const auto report = modelgen::quantize_generator(fp32, frames, {}, testing::two_threads());
  auto message = [](auto&& f) { return testing::capture_error(f).message(); };
  EXPECT_NE(message([&] {
              modelgen::quantize_generator(report.onnx, frames, {}, testing::two_threads());
            }).find("already quantised"),
            std::string::npos);
  EXPECT_NE(message([&] {
              modelgen::quantize_generator(fp32, {}, {}, testing::two_threads());
            }).find("no calibration frames"),
            std::string::npos);
  EXPECT_NE(message([] {
              modelgen::parse_calibration("entropy");
            }).find("--calibration entropy: unknown method; expected minmax or percentile"),
            std::string::npos);
  EXPECT_NE(message([] {
              modelgen::parse_concat_scales("exact");
            }).find("--concat-scales exact: unknown choice; expected shared or per-input"),
            std::string::npos);
  EXPECT_NE(message([&] {
              modelgen::quantize_generator("not onnx", frames, {}, testing::two_threads());
            }).find("not an ONNX model"),
            std::string::npos);
}

}  // namespace
}  // namespace lipsync
