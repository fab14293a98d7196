// `lipsync models import`: PyTorch checkpoints written by real PyTorch from the upstream network
// code (testdata/checkpoints/) must give models that reproduce PyTorch's outputs, and every
// kind of bad checkpoint must be an error that names the file and the fault, writing nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "infer/audio_encoder.h"
#include "infer/generator.h"
#include "infer/model_manifest.h"
#include "infer/models.h"
#include "modelgen/synctalk_import.h"
#include "modelgen/synctalk_net.h"
#include "modelgen/synth_models.h"
#include "modelgen/torch_checkpoint.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/torch_writer.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using modelgen::import_synctalk_models;
using modelgen::read_torch_checkpoint;
using modelgen::TorchStateDict;
using testing::capture_error;
using testing::read_f32;
using testing::TempDir;
using testing::testdata;
using testing::WrittenTensor;

testing::CheckpointFaults raw_pickle(std::string pickle) {
  testing::CheckpointFaults f;
  f.pickle = std::move(pickle);
  return f;
}

testing::CheckpointFaults wrapped_in(std::string key) {
  testing::CheckpointFaults f;
  f.wrap = std::move(key);
  return f;
}

fs::path golden(const std::string& name) {
  return testdata("checkpoints/" + name);
}

// The golden encoder checkpoint, read once (11 MB; faults are made from it).
const TorchStateDict& golden_encoder() {
  static const TorchStateDict sd = read_torch_checkpoint(golden("audio_encoder.pth"));
  return sd;
}

std::string import_error(const fs::path& unet, const fs::path& encoder, const fs::path& out) {
  const Error e = capture_error([&] { import_synctalk_models(unet, encoder, out); });
  EXPECT_FALSE(fs::exists(out)) << "an import that failed wrote " << out;
  for (const auto& entry : fs::directory_iterator(out.parent_path())) {
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos)
        << "left behind " << entry.path();
  }
  return e.message();
}

TEST(TorchCheckpoint, ReadsTheGoldenUNetKeysShapesAndDtypes) {
  const TorchStateDict sd = read_torch_checkpoint(golden("unet.pth"));
  ASSERT_EQ(sd.entries.size(), 556u);
  EXPECT_EQ(sd.entries.front().first, "audio_model.conv1.conv.0.weight");
  EXPECT_EQ(sd.entries.front().second.shape, (std::vector<std::int64_t>{64, 32, 1, 1}));
  EXPECT_EQ(sd.entries.back().first, "outc.conv.bias");
  std::int64_t tracked = 0, params = 0;
  for (const auto& [key, t] : sd.entries) {
    if (key.ends_with("num_batches_tracked")) {
      ++tracked;
      EXPECT_EQ(t.dtype, "int64");
      EXPECT_TRUE(t.shape.empty());
      ASSERT_EQ(t.values.size(), 1u);
      EXPECT_EQ(t.values[0], 0.0);
    } else {
      EXPECT_EQ(t.dtype, "float32") << key;
      if (!key.ends_with("running_mean") && !key.ends_with("running_var")) {
        params += static_cast<std::int64_t>(t.values.size());
      }
    }
  }
  EXPECT_EQ(tracked, 92);
  EXPECT_EQ(params, 12186935);  // the README's count
  EXPECT_TRUE(sd.note.empty());
}

TEST(TorchCheckpoint, HonoursStridesOffsetsAndDtypes) {
  TempDir dir;
  std::vector<WrittenTensor> tensors(4);
  tensors[0] = {"a", {"float32", {2, 3}, {1, 2, 3, 4, 5, 6}}, true, 5};
  tensors[1] = {"b", {"float64", {3}, {0.1, -2.5e300, 7}}};
  tensors[2] = {"c", {"int64", {}, {123456789012}}};
  tensors[3] = {"d", {"float16", {2, 2}, {1.5, -2, 0.25, 1024}}, true, 1};
  testing::write_torch_checkpoint(dir / "t.pth", tensors);
  const TorchStateDict sd = read_torch_checkpoint(dir / "t.pth");
  ASSERT_EQ(sd.entries.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sd.entries[i].first, tensors[i].key);
    EXPECT_EQ(sd.entries[i].second.dtype, tensors[i].tensor.dtype);
    EXPECT_EQ(sd.entries[i].second.shape, tensors[i].tensor.shape);
  }
  EXPECT_EQ(sd.entries[0].second.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(sd.entries[1].second.values, (std::vector<double>{0.1, -2.5e300, 7}));
  EXPECT_EQ(sd.entries[2].second.values, (std::vector<double>{123456789012}));
  EXPECT_EQ(sd.entries[3].second.values, (std::vector<double>{1.5, -2, 0.25, 1024}));
}

TEST(TorchCheckpoint, RemovesADataParallelPrefix) {
  TempDir dir;
  testing::write_torch_checkpoint(dir / "t.pth", {{"module.x.weight", {"float32", {1}, {2}}},
                                                  {"module.y.bias", {"float32", {1}, {3}}}});
  const TorchStateDict sd = read_torch_checkpoint(dir / "t.pth");
  EXPECT_EQ(sd.entries[0].first, "x.weight");
  EXPECT_EQ(sd.entries[1].first, "y.bias");
  EXPECT_NE(sd.note.find("module."), std::string::npos);
}

TEST(TorchCheckpoint, FindsTheStateDictOfATrainingCheckpoint) {
  TempDir dir;
  testing::write_torch_checkpoint(dir / "t.pth", {{"x.weight", {"float32", {2}, {2, 3}}}},
                                  wrapped_in("state_dict"));
  const TorchStateDict sd = read_torch_checkpoint(dir / "t.pth");
  ASSERT_EQ(sd.entries.size(), 1u);
  EXPECT_EQ(sd.entries[0].second.values, (std::vector<double>{2, 3}));
  EXPECT_EQ(sd.note, "the state dict under key 'state_dict'");
  // Under a key that is not a known name: an error naming the entry that is not a tensor.
  testing::write_torch_checkpoint(dir / "u.pth", {{"x.weight", {"float32", {2}, {2, 3}}}},
                                  wrapped_in("weights"));
  const Error e = capture_error([&] { read_torch_checkpoint(dir / "u.pth"); });
  EXPECT_NE(e.message().find("entry 'epoch' is an int, not a tensor"), std::string::npos)
      << e.message();
}

TEST(TorchCheckpoint, BadFilesAreErrorsNamingTheFault) {
  TempDir dir;
  auto error = [](const fs::path& p) { return capture_error([&] { read_torch_checkpoint(p); }); };
  EXPECT_EQ(error(dir / "missing.pth").code(), Error::Code::kNotFound);

  std::ofstream(dir / "text.pth") << "this is not a checkpoint\n";
  EXPECT_NE(error(dir / "text.pth").message().find("not a PyTorch checkpoint"), std::string::npos);

  // The legacy format: recognised, and the message says how to re-save it.
  const std::string legacy = error(golden("unet_legacy.pth")).message();
  EXPECT_NE(legacy.find("legacy PyTorch checkpoint"), std::string::npos) << legacy;
  EXPECT_NE(legacy.find("torch.save(torch.load('unet_legacy.pth'"), std::string::npos) << legacy;

  // Truncated: the first 3 MB of the encoder checkpoint (the zip directory is at the end).
  {
    std::ifstream in(golden("audio_encoder.pth"), std::ios::binary);
    std::string head(3 << 20, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(dir / "cut.pth", std::ios::binary) << head;
  }
  const std::string cut = error(dir / "cut.pth").message();
  EXPECT_NE(cut.find("cut.pth"), std::string::npos) << cut;
  EXPECT_NE(cut.find("truncated"), std::string::npos) << cut;

  // A pickle with an opcode a state dict never uses (EMPTY_SET).
  testing::write_torch_checkpoint(dir / "op.pth", {}, raw_pickle("\x80\x02\x8f."s));
  const std::string op = error(dir / "op.pth").message();
  EXPECT_NE(op.find("unsupported pickle opcode 0x8f at byte 2"), std::string::npos) << op;

  // A pickle cut short.
  testing::write_torch_checkpoint(dir / "short.pth", {}, raw_pickle("\x80\x02}X\x05\x00"s));
  EXPECT_NE(error(dir / "short.pth").message().find("truncated"), std::string::npos);

  // A storage shorter than its tensor.
  WrittenTensor t{"w", {"float32", {4, 4}, std::vector<double>(16, 1.0)}};
  t.storage_elements = 10;
  testing::write_torch_checkpoint(dir / "storage.pth", {t});
  const std::string storage = error(dir / "storage.pth").message();
  EXPECT_NE(storage.find("tensor w [4, 4] needs 16 elements of storage 0, which holds 10"),
            std::string::npos)
      << storage;

  // A TorchScript archive (torch.jit.save) is a zip with data.pkl too.
  testing::CheckpointFaults script;
  script.extra_entries = {"constants.pkl", "code/model.py"};
  testing::write_torch_checkpoint(dir / "script.pth", {}, script);
  const std::string jit = error(dir / "script.pth").message();
  EXPECT_NE(jit.find("a TorchScript archive"), std::string::npos) << jit;

  // Something other than tensors in the dict.
  testing::write_torch_checkpoint(dir / "obj.pth", {},
                                  raw_pickle("\x80\x02}X\x01\x00\x00\x00kcnumpy\nint64\n)Rs."s));
  const std::string obj = error(dir / "obj.pth").message();
  EXPECT_NE(obj.find("entry 'k' is numpy.int64(...), not a tensor"), std::string::npos) << obj;
}

// A hostile file: random byte changes to a real state dict's pickle (storages intact) must
// each read or be refused with an Error; never a crash, a hang or an exception of another kind.
TEST(TorchCheckpoint, MutatedPicklesAreReadOrRefusedNeverACrash) {
  TempDir dir;
  std::vector<WrittenTensor> tensors = testing::to_written(golden_encoder());
  tensors.resize(12);  // a few layers: small files, the same structure
  std::mt19937 rng(11);
  int refused = 0;
  for (int round = 0; round < 300; ++round) {
    testing::CheckpointFaults faults;
    faults.mutate_pickle = [&](std::string& p) {
      const int changes = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < changes; ++i) {
        const std::size_t at = 2 + rng() % (p.size() - 2);
        switch (rng() % 3) {
          case 0:
            p[at] = static_cast<char>(rng());
            break;
          case 1:
            p.erase(at, 1 + rng() % 8);
            break;
          default:
            p.insert(at, 1, static_cast<char>(rng()));
            break;
        }
      }
    };
    testing::write_torch_checkpoint(dir / "m.pth", tensors, faults);
    try {
      read_torch_checkpoint(dir / "m.pth");
    } catch (const Error& e) {
      ++refused;
      EXPECT_NE(e.message().find("m.pth"), std::string::npos) << e.message();
    }
  }
  EXPECT_GT(refused, 150);
}

TEST(TorchCheckpoint, DeepNestingAndHugeShapesAreRefusedCleanly) {
  TempDir dir;
  // A million nested 1-tuples: freed without recursion.
  std::string deep = "\x80\x02K\x01" + std::string(1000000, '\x85') + ".";
  testing::write_torch_checkpoint(dir / "deep.pth", {}, raw_pickle(deep));
  const Error e = capture_error([&] { read_torch_checkpoint(dir / "deep.pth"); });
  EXPECT_NE(e.message().find("holds a tuple, not a state dict"), std::string::npos) << e.message();
  // A tensor claiming 2^40 x 2^40 elements of a 4-element storage.
  testing::CheckpointFaults huge;
  huge.mutate_pickle = [](std::string& p) {
    // size (2, 2) -> (2^30, 2^30): BININT1 2 (K\x02) twice after the offset becomes BININT.
    const std::string from = "(K\x02K\x02t";
    const std::string to = "(J\x00\x00\x00\x40J\x00\x00\x00\x40t"s;
    p.replace(p.find(from), from.size(), to);
  };
  testing::write_torch_checkpoint(dir / "huge.pth", {{"w", {"float32", {2, 2}, {1, 2, 3, 4}}}},
                                  huge);
  const Error h = capture_error([&] { read_torch_checkpoint(dir / "huge.pth"); });
  EXPECT_NE(h.message().find("tensor w [1073741824, 1073741824]"), std::string::npos)
      << h.message();
}

// Issue 24 (found by fuzzing): a tensor of 2^31 elements over a 4-element storage through zero
// strides allocated 8 GB from a file of a few hundred bytes; a list appended to itself (a
// shared_ptr cycle) was never freed.
TEST(TorchCheckpoint, Issue24_BroadcastViewsAndSelfReferencesAreRefusedCleanly) {
  TempDir dir;
  testing::CheckpointFaults broadcast;
  broadcast.mutate_pickle = [](std::string& p) {
    const std::string stride = "(K\x02K\x01t";  // (2, 1) -> (0, 0)
    p.replace(p.find(stride), stride.size(), "(K\x00K\x00t"s);
    const std::string size = "(K\x02K\x02t";  // (2, 2) -> (2, 2^30)
    p.replace(p.find(size), size.size(), "(K\x02J\x00\x00\x00\x40t"s);
  };
  testing::write_torch_checkpoint(dir / "broadcast.pth", {{"w", {"float32", {2, 2}, {1, 2, 3, 4}}}},
                                  broadcast);
  const Error b = capture_error([&] { read_torch_checkpoint(dir / "broadcast.pth"); });
  EXPECT_NE(b.message().find("has 2147483648 elements but its storage"), std::string::npos)
      << b.message();
  testing::write_torch_checkpoint(dir / "cycle.pth", {}, raw_pickle("\x80\x02]q\x00h\x00a."s));
  const Error c = capture_error([&] { read_torch_checkpoint(dir / "cycle.pth"); });
  EXPECT_EQ(c.code(), Error::Code::kInvalidInput) << c.message();
}

// The golden checkpoints through the importer, then through ONNX Runtime: PyTorch's outputs on
// the same inputs (README: float32 noise is ~4e-6, the smallest importer mistake moves 2.6e-3).
TEST(ModelImport, TheGoldenCheckpointsReproducePyTorch) {
  TempDir dir;
  const auto imported = import_synctalk_models(golden("unet.pth"), golden("audio_encoder.pth"),
                                               dir / "models", "golden");
  EXPECT_EQ(imported.generator_width, 1.0);
  EXPECT_TRUE(imported.notes.empty()) << imported.notes;

  const auto m = infer::ModelManifest::load(dir / "models" / "model.json");
  EXPECT_EQ(m.name, "golden");
  EXPECT_EQ(m.kind, "trained");
  EXPECT_EQ(m.generator_parameters, 12186935);
  EXPECT_EQ(m.encoder_parameters, 2812672);
  EXPECT_EQ(m.importer, "lipsync 0.1.0 models import v1");
  const auto files = nlohmann::json::parse(testing::read_text(golden("manifest.json")));
  ASSERT_EQ(m.sources.size(), 2u);
  EXPECT_EQ(m.sources[0].role, "unet");
  EXPECT_EQ(m.sources[0].file, "unet.pth");
  EXPECT_EQ(m.sources[1].role, "audio_encoder");
  for (const auto& s : m.sources) {
    const auto& entry = files["files"][s.file];
    EXPECT_EQ(s.sha256, entry["sha256"].get<std::string>()) << s.file;
    EXPECT_EQ(s.bytes, entry["bytes"].get<std::uint64_t>()) << s.file;
  }

  const infer::Generator generator(dir / "models" / infer::kGeneratorFileName,
                                   testing::two_threads());
  infer::GeneratorBatch batch = generator.make_batch(2);
  const auto image = read_f32(golden("gen_input.f32"));
  const auto audio = read_f32(golden("gen_audio.f32"));
  ASSERT_EQ(image.size(), batch.images().size());
  ASSERT_EQ(audio.size(), batch.audios().size());
  std::copy(image.begin(), image.end(), batch.images().begin());
  std::copy(audio.begin(), audio.end(), batch.audios().begin());
  generator.run(batch);
  const auto gen = testing::diff(batch.outputs(), read_f32(golden("gen_output.f32")));
  EXPECT_LE(gen.max_abs, 1e-4) << "at " << gen.max_index;
  std::printf("generator vs PyTorch: max |diff| %.3g, mean %.3g\n", gen.max_abs, gen.mean_abs);

  const infer::AudioEncoder encoder(dir / "models" / infer::kEncoderFileName,
                                    testing::two_threads());
  const auto mel = read_f32(golden("enc_mel.f32"));
  std::vector<float> features(4 * 512);
  encoder.encode_packed(mel, 4, features);
  const auto enc = testing::diff(features, read_f32(golden("enc_features.f32")));
  EXPECT_LE(enc.max_abs, 5e-4) << "at " << enc.max_index;
  std::printf("encoder vs PyTorch: max |diff| %.3g, mean %.3g\n", enc.max_abs, enc.mean_abs);

  // The folder is a models folder like any other.
  const infer::Models models(dir / "models", testing::two_threads());
  ASSERT_TRUE(models.manifest().has_value());
  EXPECT_EQ(models.manifest()->kind, "trained");
}

TEST(ModelImport, StateDictMismatchesAreAllNamed) {
  TempDir dir;
  std::vector<WrittenTensor> tensors = testing::to_written(golden_encoder());
  // Drop one key, add one, and give one a wrong shape.
  tensors.erase(std::find_if(tensors.begin(), tensors.end(),
                             [](auto& t) { return t.key == "5.conv_block.1.running_var"; }));
  tensors.push_back({"13.conv_block.0.weight", {"float32", {1}, {0}}});
  for (auto& t : tensors) {
    if (t.key == "12.conv_block.0.bias") t.tensor = {"float32", {256}, std::vector<double>(256)};
  }
  testing::write_torch_checkpoint(dir / "enc.pth", tensors);
  const std::string e = import_error(golden("unet.pth"), dir / "enc.pth", dir / "out");
  EXPECT_NE(e.find("enc.pth: does not match SyncTalk_2D's audio encoder"), std::string::npos) << e;
  EXPECT_NE(e.find("missing keys (1): 5.conv_block.1.running_var"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected keys (1): 13.conv_block.0.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("12.conv_block.0.bias is [256] in the checkpoint, the model expects [512]"),
            std::string::npos)
      << e;
}

TEST(ModelImport, NonFiniteWeightsAndNegativeVariancesAreRefused) {
  TempDir dir;
  std::vector<WrittenTensor> tensors = testing::to_written(golden_encoder());
  for (auto& t : tensors) {
    if (t.key == "3.conv_block.0.weight") t.tensor.values[17] = std::nan("");
    if (t.key == "7.conv_block.1.running_var") t.tensor.values[2] = -0.5;
  }
  testing::write_torch_checkpoint(dir / "enc.pth", tensors);
  const std::string e = import_error(golden("unet.pth"), dir / "enc.pth", dir / "out");
  EXPECT_NE(e.find("3.conv_block.0.weight holds NaN (element 17)"), std::string::npos) << e;
  EXPECT_NE(e.find("7.conv_block.1.running_var[2] = -0.5 is negative"), std::string::npos) << e;
}

TEST(ModelImport, OtherAudioModesAndSwappedFilesAreRecognised) {
  TempDir dir;
  // A 'wenet' U-Net: its audio branch starts with InvertedResidual(256, 256).
  testing::write_torch_checkpoint(
      dir / "wenet.pth", {{"audio_model.conv1.conv.0.weight",
                           {"float32", {512, 256, 1, 1}, std::vector<double>(512 * 256, 0.01)}}});
  const std::string wenet =
      import_error(dir / "wenet.pth", golden("audio_encoder.pth"), dir / "out");
  EXPECT_NE(wenet.find("a 'wenet' audio-mode SyncTalk_2D checkpoint"), std::string::npos) << wenet;
  EXPECT_NE(wenet.find("only the 'ave' mode"), std::string::npos) << wenet;

  const std::string swapped =
      import_error(golden("audio_encoder.pth"), golden("unet.pth"), dir / "out");
  EXPECT_NE(swapped.find("swapped"), std::string::npos) << swapped;

  // The encoder saved as the whole AudioEncoder module: keys prefixed "audio_encoder.".
  std::vector<WrittenTensor> tensors = testing::to_written(golden_encoder());
  for (auto& t : tensors) t.key = "audio_encoder." + t.key;
  testing::write_torch_checkpoint(dir / "enc.pth", tensors);
  // ... is accepted; shown with a small U-Net fault so the test stays fast.
  testing::write_torch_checkpoint(dir / "tiny.pth",
                                  {{"outc.conv.bias", {"float32", {3}, {0, 0, 0}}}});
  const std::string tiny = import_error(dir / "tiny.pth", dir / "enc.pth", dir / "out");
  EXPECT_NE(tiny.find("tiny.pth: does not match SyncTalk_2D's 328-pixel U-Net"), std::string::npos)
      << tiny;
  EXPECT_NE(tiny.find("missing keys (463)"), std::string::npos) << tiny;
  EXPECT_EQ(tiny.find("enc.pth"), std::string::npos)
      << "the prefixed encoder was refused: " << tiny;
}

// Records the weights it hands out as the PyTorch state dict they came from (unfolded), so a
// network built from it can be written as a checkpoint and imported again.
class RecordingWeights : public modelgen::WeightSource {
 public:
  void conv(const std::string& module, const modelgen::ConvSpec& c, std::vector<double>& w,
            std::vector<double>& bias) override {
    w = record(module + ".weight", {c.cout, c.cin / c.groups, c.kernel, c.kernel}, -0.3, 0.3);
    bias = c.torch_bias ? record(module + ".bias", {c.cout}, -0.1, 0.1)
                        : std::vector<double>(c.cout, 0.0);
  }
  modelgen::BatchNormParams batch_norm(const std::string& module, int channels) override {
    modelgen::BatchNormParams bn;
    bn.gamma = record(module + ".weight", {channels}, 0.8, 1.2);
    bn.beta = record(module + ".bias", {channels}, -0.1, 0.1);
    bn.mean = record(module + ".running_mean", {channels}, -0.1, 0.1);
    bn.var = record(module + ".running_var", {channels}, 0.5, 1.5);
    tensors.emplace_back(module + ".num_batches_tracked", modelgen::TorchTensor{"int64", {}, {9}});
    return bn;
  }
  std::vector<WrittenTensor> tensors;

 private:
  std::vector<double> record(const std::string& key, std::vector<std::int64_t> shape, double lo,
                             double hi) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    std::vector<double> v(n);
    std::uniform_real_distribution<float> dist(static_cast<float>(lo), static_cast<float>(hi));
    for (double& x : v) x = dist(rng_);  // float32 values, as a checkpoint holds them
    tensors.emplace_back(key, modelgen::TorchTensor{"float32", std::move(shape), v});
    return v;
  }
  std::mt19937 rng_{5};
};

// A U-Net at width 0.5 (upstream's "mobile" ch = [16, ..., 256]) written as a checkpoint and
// imported gives the very graph built from the same weights directly: keys, shapes, the width
// read from the file, and the folding all agree with the builder.
TEST(ModelImport, AWrittenCheckpointImportsToTheGraphOfItsWeights) {
  TempDir dir;
  RecordingWeights weights;
  const modelgen::GeneratedModel direct = modelgen::build_generator(weights, 0.5);
  testing::write_torch_checkpoint(dir / "half.pth", weights.tensors);
  const auto imported =
      import_synctalk_models(dir / "half.pth", golden("audio_encoder.pth"), dir / "m");
  EXPECT_EQ(imported.generator_width, 0.5);
  EXPECT_EQ(imported.manifest.generator_parameters, direct.parameters);
  EXPECT_TRUE(testing::read_text(dir / "m" / "generator.onnx") == direct.onnx)
      << "the imported generator differs from the one built from its weights";
}

TEST(ModelImport, AnExistingFolderIsNeverOverwritten) {
  TempDir dir;
  fs::create_directories(dir / "out");
  std::ofstream(dir / "out" / "keep.txt") << "mine";
  const Error e = capture_error([&] {
    import_synctalk_models(golden("unet.pth"), golden("audio_encoder.pth"), dir / "out");
  });
  EXPECT_NE(e.message().find("already exists"), std::string::npos) << e.message();
  EXPECT_EQ(testing::read_text(dir / "out" / "keep.txt"), "mine");
}

}  // namespace
}  // namespace lipsync
