// Generator: the SyncTalk_2D generator (REFERENCE.md §5): image [B,6,320,320] + audio
// [B,32,16,16] -> output [B,3,320,320], one ONNX Runtime run per batch.
// Thread contract: immutable after construction; run() may be called from many threads at once.
// Buffers are per call: either the caller's own, or a GeneratorBatch leased from the generator's
// pool, which belongs to one caller until it is destroyed (never shared between calls).
#pragma once

#include <filesystem>
#include <span>

#include "contract/model_family.h"
#include "core/buffer_pool.h"
#include "infer/infer_options.h"
#include "infer/session.h"

namespace lipsync::infer {

// The input and output buffers of one generator batch, leased from a Generator's pool.
class GeneratorBatch {
 public:
  int size() const { return size_; }
  // Item i's slices. Requires: 0 <= i < size().
  std::span<float> image(int i) { return slice(image_, i, contract::kImageInputSize); }
  std::span<float> audio(int i) { return slice(audio_, i, contract::kAudioInputSize); }
  std::span<const float> output(int i) const {
    return std::span<const float>(output_.span())
        .subspan(i * contract::kOutputSize, contract::kOutputSize);
  }
  // The whole batch.
  std::span<float> images() { return image_.span(); }
  std::span<float> audios() { return audio_.span(); }
  std::span<float> outputs() { return output_.span(); }

  // Gives the image and audio buffers back to the pool once the batch has run, while its
  // outputs are still read (compositing). Their spans are empty afterwards.
  void release_inputs() {
    image_ = {};
    audio_ = {};
  }

 private:
  friend class Generator;
  static std::span<float> slice(core::BufferPool::Lease& lease, int i, std::size_t item) {
    return lease.span().subspan(static_cast<std::size_t>(i) * item, item);
  }
  int size_ = 0;
  core::BufferPool::Lease image_;
  core::BufferPool::Lease audio_;
  core::BufferPool::Lease output_;
};

class Generator {
 public:
  // Loads and checks the model (see Session for the errors).
  Generator(const std::filesystem::path& model, const InferOptions& options);

  // Buffers for a batch of `size` frames (contents unspecified until filled). Requires size >= 1.
  GeneratorBatch make_batch(int size) const;

  // Runs the batch's images and audio into its outputs.
  void run(GeneratorBatch& batch) const;

  // One run of a zero batch of `size` frames. A session's first runs are slow (ONNX Runtime
  // plans its memory and packs the int8 weights then); Scheduler::warm_up() repeats this when
  // the server loads a model.
  void warm_up(int size) const;

  // Runs `batch` frames from caller-owned buffers: image batch * 614400 floats, audio
  // batch * 8192, output batch * 307200.
  void run(int batch, std::span<const float> image, std::span<const float> audio,
           std::span<float> output) const;

  const Session& session() const { return session_; }
  // How many batches the scheduler runs at once (infer.parallel_runs; automatic is 1 here:
  // `lipsync render` resolves it before it loads the models).
  int parallel_runs() const { return parallel_runs_; }

 private:
  Session session_;
  int parallel_runs_ = 1;
  mutable core::BufferPool pool_;
};

}  // namespace lipsync::infer
