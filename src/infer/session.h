// Session: one ONNX model loaded into ONNX Runtime, with its inputs and outputs checked against
// the tensor contract the caller expects. The only type in lipsync that touches ONNX Runtime;
// callers pass plain float buffers.
// Thread contract: immutable after construction; run() may be called from many threads at once
// (ONNX Runtime's Run is thread-safe; every call binds its own caller-owned buffers).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "infer/infer_options.h"

namespace lipsync::infer {

// A named float tensor the model must have. shape[0] is the batch; -1 means "any size" (a
// dynamic dimension in the model, or any fixed one for the batch).
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;

  // Floats per batch item: the product of shape[1..].
  std::size_t item_size() const;
  // "[batch,1,80,16]".
  std::string shape_text() const;
};

class Session {
 public:
  // Loads `model` with the options' threads, graph optimisation and execution providers, and
  // checks every input and output of `inputs`/`outputs` (names, float32, rank, fixed sizes).
  // Throws Error::Code::kNotFound when the file does not exist, kInvalidInput when it is not an
  // ONNX model or does not match (the message names the file and the mismatch), kInvalidInput
  // when no execution provider of the list can take it (execution_providers.h says why).
  Session(const std::filesystem::path& model, const InferOptions& options,
          std::vector<TensorSpec> inputs, std::vector<TensorSpec> outputs);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs a batch of `batch` items. inputs[i] holds batch * item_size of input spec i, outputs[i]
  // receives batch * item_size of output spec i (caller-owned memory, written in place). A model
  // with a fixed batch size runs in chunks of that size (the tail zero-padded). Requires: batch
  // >= 1.
  void run(int batch, std::span<const std::span<const float>> inputs,
           std::span<const std::span<float>> outputs) const;

  // The model's fixed batch size, or 0 when its batch dimension is dynamic.
  int fixed_batch() const { return fixed_batch_; }
  const std::filesystem::path& path() const { return path_; }
  // The execution providers the session runs on: the one of infer.execution_providers that took
  // it, then "cpu" when that is a GPU provider (for the nodes the GPU provider leaves).
  const std::vector<std::string>& providers() const { return providers_; }
  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }

 private:
  struct Impl;
  void run_in_fixed_batches(int batch, std::span<const std::span<const float>> inputs,
                            std::span<const std::span<float>> outputs) const;

  std::filesystem::path path_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::vector<std::string> providers_;
  int fixed_batch_ = 0;
  std::unique_ptr<Impl> impl_;
};

// The baseline for `lipsync bench generator|encoder`: the same model and session settings run
// through ONNX Runtime's C++ API directly, with tensors created once and no checks, pools or
// wrappers. Comparing it with Session shows what lipsync's layer costs.
// Thread contract: one thread at a time.
class BareOrtLoop {
 public:
  // inputs/outputs: names and shapes (batch included), bound to caller buffers that must stay
  // alive and unmoved while the loop exists.
  BareOrtLoop(const std::filesystem::path& model, const InferOptions& options,
              const std::vector<TensorSpec>& inputs, std::span<const std::span<const float>> in,
              const std::vector<TensorSpec>& outputs, std::span<const std::span<float>> out);
  ~BareOrtLoop();
  BareOrtLoop(const BareOrtLoop&) = delete;
  BareOrtLoop& operator=(const BareOrtLoop&) = delete;
  // One Run.
  void run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A model held in memory, run with ONNX Runtime allocating every graph output: for the model
// tool's calibration, which asks for intermediate tensors whose shapes it does not know.
// Thread contract: one thread at a time.
class ProbeSession {
 public:
  struct Input {
    std::string name;
    std::vector<std::int64_t> shape;
    std::span<const float> values;
  };
  // Throws Error::Code::kInvalidInput when ONNX Runtime refuses the model.
  ProbeSession(const std::string& model_bytes, const InferOptions& options);
  ~ProbeSession();
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  const std::vector<std::string>& output_names() const;
  // Every graph output (float32), in output_names() order.
  std::vector<std::vector<float>> run(std::span<const Input> inputs) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The execution providers compiled into the ONNX Runtime library in use, in lipsync's names
// ("cpu", "cuda", "tensorrt", and ONNX Runtime's own names for any others).
std::vector<std::string> available_execution_providers();

// The ONNX Runtime version string ("1.29.0").
std::string onnxruntime_version();

}  // namespace lipsync::infer
