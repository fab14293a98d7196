#include "modelgen/synth_models.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "contract/model_family.h"
#include "core/error.h"
#include "core/file_util.h"
#include "infer/model_manifest.h"
#include "infer/models.h"
#include "modelgen/synctalk_net.h"

namespace lipsync::modelgen {
namespace {

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

// Seeded random weights in the order the layers ask for them: PyTorch's default conv
// initialisation bounds, then the reference models' BatchNorm statistics.
class RandomWeights : public WeightSource {
 public:
  explicit RandomWeights(std::uint64_t seed) : rng_(seed) {}

  void conv(const std::string&, const ConvSpec& c, std::vector<double>& w,
            std::vector<double>& bias) override {
    const std::size_t fan_in = static_cast<std::size_t>(c.cin / c.groups) * c.kernel * c.kernel;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));  // kaiming_uniform(a=√5)
    w.resize(static_cast<std::size_t>(c.cout) * fan_in);
    for (double& v : w) v = rng_.uniform(-bound, bound);
    bias.assign(c.cout, 0.0);
    if (c.torch_bias) {
      for (double& v : bias) v = rng_.uniform(-bound, bound);
    }
  }

  // testdata/reference/README.md: mean ~ N(0, 0.1), var ~ U(0.5, 1.5), gamma ~ U(1.5, 2.5),
  // beta ~ N(0, 0.1), drawn channel by channel.
  BatchNormParams batch_norm(const std::string&, int channels) override {
    BatchNormParams bn;
    for (int o = 0; o < channels; ++o) {
      bn.mean.push_back(rng_.normal(0.1));
      bn.var.push_back(rng_.uniform(0.5, 1.5));
      bn.gamma.push_back(rng_.uniform(1.5, 2.5));
      bn.beta.push_back(rng_.normal(0.1));
    }
    return bn;
  }

 private:
  Rng rng_;
};

}  // namespace

GeneratedModel synth_generator(double width, std::uint64_t seed) {
  RandomWeights weights(seed);
  return build_generator(weights, width);
}

GeneratedModel synth_audio_encoder(double width, std::uint64_t seed) {
  RandomWeights weights(seed);
  return build_audio_encoder(weights, width);
}

void write_synth_models(const std::filesystem::path& dir, double width, std::uint64_t seed) {
  // Different streams for the two networks, both fixed by the one seed; a bad width throws
  // before anything is written.
  const GeneratedModel encoder = synth_audio_encoder(width, seed * 2 + 1);
  const GeneratedModel generator = synth_generator(width, seed * 2 + 2);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error::invalid_input("models " + dir.string() + ": cannot create: " + ec.message());
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
