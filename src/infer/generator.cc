#include "infer/generator.h"

#include <algorithm>
#include <array>
#include <string>

#include "core/check.h"

namespace lipsync::infer {
namespace {

std::vector<TensorSpec> generator_inputs() {
  return {{std::string(contract::kGeneratorImageName),
           {-1, contract::kImageChannels, contract::kRoiSize, contract::kRoiSize}},
          {std::string(contract::kGeneratorAudioName),
           {-1, contract::kAudioChannels, contract::kAudioGrid, contract::kAudioGrid}}};
}
std::vector<TensorSpec> generator_outputs() {
  return {{std::string(contract::kGeneratorOutputName),
           {-1, contract::kOutputChannels, contract::kRoiSize, contract::kRoiSize}}};
}

}  // namespace

Generator::Generator(const std::filesystem::path& model, const InferOptions& options)
    : session_(model, options, generator_inputs(), generator_outputs()),
      parallel_runs_(options.resolved_parallel_runs(/*throughput=*/false)),
      pool_(24) {}

GeneratorBatch Generator::make_batch(int size) const {
  LIPSYNC_CHECK(size >= 1);
  GeneratorBatch batch;
  const auto n = static_cast<std::size_t>(size);
  batch.size_ = size;
  batch.image_ = pool_.acquire(n * contract::kImageInputSize);
  batch.audio_ = pool_.acquire(n * contract::kAudioInputSize);
  batch.output_ = pool_.acquire(n * contract::kOutputSize);
  return batch;
}

void Generator::run(GeneratorBatch& batch) const {
  run(batch.size(), batch.images(), batch.audios(), batch.outputs());
}

void Generator::warm_up(int size) const {
  GeneratorBatch batch = make_batch(size);
  std::fill(batch.images().begin(), batch.images().end(), 0.0f);
  std::fill(batch.audios().begin(), batch.audios().end(), 0.0f);
  run(batch);
}

void Generator::run(int batch, std::span<const float> image, std::span<const float> audio,
                    std::span<float> output) const {
  LIPSYNC_CHECK(batch >= 1);
  const std::array<std::span<const float>, 2> inputs{image, audio};
  const std::array<std::span<float>, 1> outputs{output};
  session_.run(batch, inputs, outputs);
}

}  // namespace lipsync::infer
