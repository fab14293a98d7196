// The ONNX Runtime layer against the Python reference, and its load-time checks.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "audio/audio_file.h"
#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "infer/audio_encoder.h"
#include "infer/generator.h"
#include "infer/model_manifest.h"
#include "infer/models.h"
#include "infer/session.h"
#include "modelgen/onnx_builder.h"
#include "pipeline/feature_track.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using testing::diff;
using testing::read_f32;
using testing::testdata;

using testing::two_threads;

audio::Mel reference_mel() {
  return audio::Mel(384, read_f32(testdata("reference/mel.f32")));
}

TEST(AudioEncoder, MatchesPythonFeaturesFromStoredMel) {
  const infer::AudioEncoder encoder(testing::reference_models() / "audio_encoder.onnx",
                                    two_threads());
  const audio::Mel mel = reference_mel();
  const audio::MelWindows windows(mel, audio::AudioOptions{});
  ASSERT_EQ(windows.count(), 116);
  std::vector<float> features(116 * contract::kFeatureSize);
  encoder.encode(windows, 0, windows.count(), features);
  const auto expected = read_f32(testdata("reference/features.f32"));
  const auto d = diff(features, expected);
  EXPECT_LE(d.max_abs, 5e-4) << "at " << d.max_index;
}

TEST(AudioEncoder, MatchesPythonFeaturesFromTheWavFile) {
  const infer::AudioEncoder encoder(testing::reference_models() / "audio_encoder.onnx",
                                    two_threads());
  const auto samples = audio::load_audio_file(testdata("reference/speech_a_en.wav"));
  const pipeline::ClipFeatures f =
      pipeline::encode_clip_features(samples, encoder, audio::AudioOptions{});
  ASSERT_EQ(f.windows, 116);
  const auto d = diff(f.values, read_f32(testdata("reference/features.f32")));
  EXPECT_LE(d.max_abs, 5e-4) << "at " << d.max_index;
}

// FeatureTrack's streaming equals its whole-clip result only if a window's features do not
// depend on which other windows share its batch. This pins that property of the runtime.
TEST(AudioEncoder, FeaturesDoNotDependOnBatchComposition) {
  const audio::Mel mel = reference_mel();
  const audio::MelWindows windows(mel, audio::AudioOptions{});
  std::vector<std::vector<float>> results;
  for (int batch : {64, 1, 7, 116}) {
    infer::InferOptions o = two_threads();
    o.encoder_batch = batch;
    const infer::AudioEncoder encoder(testing::reference_models() / "audio_encoder.onnx", o);
    EXPECT_EQ(encoder.batch_size(), batch);
    results.emplace_back(116 * contract::kFeatureSize);
    encoder.encode(windows, 0, 116, results.back());
  }
  for (std::size_t i = 1; i < results.size(); ++i) {
    if (testing::testing_on_cpu()) {
      EXPECT_EQ(0, std::memcmp(results[0].data(), results[i].data(), results[0].size() * 4))
          << "batch variant " << i;
    } else {  // a GPU picks its kernels per batch size
      EXPECT_LE(diff(results[0], results[i]).max_abs, 1e-5) << "batch variant " << i;
    }
  }
}

TEST(AudioEncoder, EncodePackedEqualsEncodeFromViews) {
  const infer::AudioEncoder encoder(testing::synth_models() / "audio_encoder.onnx", two_threads());
  const audio::Mel mel = reference_mel();
  const audio::MelWindows windows(mel, audio::AudioOptions{});
  std::vector<float> packed(10 * audio::MelWindows::kPackedWindowSize);
  windows.pack_encoder_batch(50, 10, packed);
  std::vector<float> a(10 * contract::kFeatureSize), b(a.size());
  encoder.encode(windows, 50, 10, a);
  encoder.encode_packed(packed, 10, b);
  EXPECT_EQ(a, b);
}

std::vector<float> stacked(const char* prefix, int count) {
  std::vector<float> out;
  for (int i = 0; i < count; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "reference/%s_%05d.f32", prefix, i);
    const auto v = read_f32(testdata(name));
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

TEST(Generator, MatchesPythonOutputsBatchedAndSingly) {
  const infer::Generator generator(testing::reference_models() / "generator.onnx", two_threads());
  const auto image = stacked("input", 4);
  const auto audio_in = stacked("audio", 4);
  const auto expected = stacked("output", 4);
  ASSERT_EQ(image.size(), 4 * contract::kImageInputSize);
  std::vector<float> out(4 * contract::kOutputSize);
  generator.run(4, image, audio_in, out);
  const auto d = diff(out, expected);
  EXPECT_LE(d.max_abs, 1e-4) << "at " << d.max_index;

  // One frame at a time through pooled batches: bit-identical to the batch of 4.
  for (int i = 0; i < 4; ++i) {
    infer::GeneratorBatch batch = generator.make_batch(1);
    std::copy_n(image.begin() + i * contract::kImageInputSize, contract::kImageInputSize,
                batch.image(0).begin());
    std::copy_n(audio_in.begin() + i * contract::kAudioInputSize, contract::kAudioInputSize,
                batch.audio(0).begin());
    generator.run(batch);
    const std::span<const float> one = batch.output(0);
    if (testing::testing_on_cpu()) {
      EXPECT_EQ(0, std::memcmp(one.data(), out.data() + i * contract::kOutputSize,
                               contract::kOutputSize * 4))
          << "frame " << i;
    } else {  // a GPU picks its kernels per batch size
      const auto from_batch = std::span<const float>(out).subspan(
          static_cast<std::size_t>(i) * contract::kOutputSize, contract::kOutputSize);
      EXPECT_LE(diff(one, from_batch).max_abs, 1e-5) << "frame " << i;
    }
  }
}

// Loading errors ---------------------------------------------------------------------------

template <class F>
Error capture(F&& f) {
  return testing::capture_error(std::forward<F>(f));
}

TEST(Session, MissingFileIsNotFound) {
  testing::TempDir dir;
  const Error e = capture([&] { infer::Generator(dir / "nope.onnx", two_threads()); });
  EXPECT_EQ(e.code(), Error::Code::kNotFound);
  EXPECT_NE(e.message().find("nope.onnx"), std::string::npos);
}

TEST(Session, TextAndImageFilesAreNotOnnx) {
  testing::TempDir dir;
  { std::ofstream(dir / "text.onnx") << "hello, I am not a model\n"; }
  for (const auto& path : {dir / "text.onnx", testdata("reference/frames/00000.png")}) {
    const Error e = capture([&] { infer::AudioEncoder(path, two_threads()); });
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput) << e.message();
    EXPECT_NE(e.message().find(path.filename().string()), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("cannot load"), std::string::npos) << e.message();
  }
}

TEST(Session, WrongInputNameIsRejectedWithTheNames) {
  // The encoder file where the generator is expected.
  const Error e = capture(
      [&] { infer::Generator(testing::synth_models() / "audio_encoder.onnx", two_threads()); });
  EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
  EXPECT_NE(e.message().find("audio_encoder.onnx"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("mel_spectrogram"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("expected"), std::string::npos) << e.message();
}

// A tiny model with the encoder's names: mel_spectrogram [batch_dim,1,80,frames] -> mean
// broadcast to audio_features [batch_dim,512].
void write_tiny_encoder(const std::filesystem::path& path, std::int64_t batch_dim,
                        std::int64_t frames) {
  modelgen::OnnxBuilder b("tiny", 13);
  b.add_input("mel_spectrogram", {batch_dim, 1, 80, frames});
  const auto mean = b.add_node("ReduceMean", {"mel_spectrogram"},
                               {{"axes", std::vector<std::int64_t>{1, 2, 3}}, {"keepdims", 1}});
  const auto flat = b.add_node("Flatten", {mean}, {{"axis", 1}});
  const std::vector<float> ones(512, 1.0f);
  b.add_node("Mul", {flat, b.add_float("ones", {1, 512}, ones)}, {}, "audio_features");
  b.add_output("audio_features", {batch_dim, 512});
  const std::string bytes = b.serialize();
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<long>(bytes.size()));
}

TEST(Session, WrongShapeIsRejectedWithBothShapes) {
  testing::TempDir dir;
  write_tiny_encoder(dir / "enc.onnx", -1, 8);
  const Error e = capture([&] { infer::AudioEncoder(dir / "enc.onnx", two_threads()); });
  EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
  EXPECT_NE(e.message().find("[batch,1,80,8]"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("[batch,1,80,16]"), std::string::npos) << e.message();
}

TEST(Session, FixedBatchModelRunsAnyBatchInChunks) {
  testing::TempDir dir;
  write_tiny_encoder(dir / "enc.onnx", 2, 16);
  infer::InferOptions o = two_threads();
  o.encoder_batch = 5;  // 5 windows per call: chunks of 2, 2 and a padded 1
  const infer::AudioEncoder encoder(dir / "enc.onnx", o);
  EXPECT_EQ(encoder.session().fixed_batch(), 2);
  std::vector<float> packed(5 * 1280);
  for (int w = 0; w < 5; ++w) std::fill_n(packed.begin() + w * 1280, 1280, static_cast<float>(w));
  std::vector<float> out(5 * 512, -1.0f);
  encoder.encode_packed(packed, 5, out);
  for (int w = 0; w < 5; ++w) {
    EXPECT_EQ(out[w * 512], static_cast<float>(w));
    EXPECT_EQ(out[w * 512 + 511], static_cast<float>(w));
  }
}

TEST(InferOptions, ValidateNamesTheKey) {
  infer::InferOptions o;
  o.encoder_batch = 0;
  EXPECT_NE(capture([&] { o.validate(); }).message().find("infer.encoder_batch"),
            std::string::npos);
  o = {};
  o.execution_providers = {"gpu"};
  EXPECT_NE(
      capture([&] { o.validate(); }).message().find("infer.execution_providers: 'gpu' is unknown"),
      std::string::npos);
  o = {};
  o.execution_providers = {"cpu", "cpu"};
  EXPECT_NE(capture([&] { o.validate(); }).message().find("twice"), std::string::npos);
  o = {};
  o.intra_op_threads = -1;
  EXPECT_NE(capture([&] { o.validate(); }).message().find("infer.intra_op_threads"),
            std::string::npos);
  EXPECT_EQ(infer::parse_graph_optimization("basic", "k"), infer::GraphOptimization::kBasic);
  EXPECT_NE(capture([&] { infer::parse_graph_optimization("max", "infer.graph_optimization"); })
                .message()
                .find("infer.graph_optimization"),
            std::string::npos);
}

// Model folders and manifests ---------------------------------------------------------------

TEST(Models, LoadsAFolderWithItsManifest) {
  const infer::Models models(testing::synth_models(), two_threads());
  ASSERT_TRUE(models.manifest().has_value());
  EXPECT_EQ(models.manifest()->kind, "synthetic");
  EXPECT_EQ(models.manifest()->family, "synctalk_2d");
  const infer::Models reference(testing::reference_models(), two_threads());
  EXPECT_FALSE(reference.manifest().has_value());
}

TEST(Models, MissingFolderAndMissingFileAreNotFound) {
  testing::TempDir dir;
  Error e = capture([&] { infer::Models(dir / "absent", two_threads()); });
  EXPECT_EQ(e.code(), Error::Code::kNotFound);
  std::filesystem::copy_file(testing::synth_models() / "audio_encoder.onnx",
                             dir / "audio_encoder.onnx");
  e = capture([&] { infer::Models(dir.path(), two_threads()); });
  EXPECT_EQ(e.code(), Error::Code::kNotFound);
  EXPECT_NE(e.message().find("generator.onnx is missing"), std::string::npos) << e.message();
}

TEST(ModelManifest, BadFilesAreRejectedNamingTheKey) {
  testing::TempDir dir;
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "model.json") << text;
    return capture([&] { infer::ModelManifest::load(dir / "model.json"); });
  };
  EXPECT_NE(write("{not json").message().find("not valid JSON"), std::string::npos);
  EXPECT_NE(write(R"({"name": "x", "colour": 1})").message().find("unknown key 'colour'"),
            std::string::npos);
  EXPECT_NE(write(R"({"family": "wav2lip"})").message().find("family 'wav2lip'"),
            std::string::npos);
  EXPECT_NE(write(R"({"width": "wide"})").message().find("'width'"), std::string::npos);
  EXPECT_NE(write("[1, 2]").message().find("JSON object"), std::string::npos);

  infer::ModelManifest m;
  m.name = "n";
  m.kind = "synthetic";
  m.width = 0.5;
  m.seed = 9;
  m.generator_parameters = 123;
  m.save(dir / "model.json");
  const auto back = infer::ModelManifest::load(dir / "model.json");
  EXPECT_EQ(back.to_json(), m.to_json());

  EXPECT_NE(write(R"({"precision": "int8", "weight_bits": 9})").message().find("expected 7 or 8"),
            std::string::npos);
  m.precision = "int8";
  m.weight_bits = 7;
  m.save(dir / "model.json");
  EXPECT_EQ(infer::ModelManifest::load(dir / "model.json").weight_bits, 7);
}

// 8-bit int8 weights are refused only where they would be computed wrong: the CPU provider on a
// CPU whose int8 kernels saturate (x86 without VNNI).
TEST(Models, EightBitInt8WeightsAreRefusedWhereTheyWouldSaturate) {
  infer::ModelManifest int8;
  int8.precision = "int8";
  for (const int bits : {0, 8}) {  // 0: a folder from before weight_bits, which is 8-bit
    int8.weight_bits = bits;
    const Error e = capture([&] { infer::check_int8_weights("/m", int8, "cpu", true); });
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find("models /m: the int8 generator has 8-bit weights, which overflow"),
              std::string::npos)
        << e.message();
    EXPECT_NE(e.message().find("--weights reduced"), std::string::npos) << e.message();
    EXPECT_NO_THROW(infer::check_int8_weights("/m", int8, "cpu", false));
    EXPECT_NO_THROW(infer::check_int8_weights("/m", int8, "cuda", true));
  }
  int8.weight_bits = 7;
  EXPECT_NO_THROW(infer::check_int8_weights("/m", int8, "cpu", true));
  EXPECT_NO_THROW(infer::check_int8_weights("/m", infer::ModelManifest{}, "cpu", true));
  EXPECT_NO_THROW(infer::check_int8_weights("/m", std::nullopt, "cpu", true));
}

}  // namespace
}  // namespace lipsync
