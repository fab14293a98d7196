// InferOptions: how ONNX Runtime sessions are built (threads, graph optimisation, execution
// providers) and how the audio encoder batches windows. They change speed, never results on the
// CPU provider.
// Thread contract: plain value; validate() before use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config_table.h"

namespace lipsync::infer {

// ONNX Runtime's graph optimisation levels.
enum class GraphOptimization { kDisabled, kBasic, kExtended, kAll };

struct InferOptions {
  // Config key infer.intra_op_threads: ONNX Runtime threads per run of a model (0: the process's
  // thread budget, core::thread_budget(), divided by parallel_runs; 0..1024).
  int intra_op_threads = 0;
  // Config key infer.graph_optimization: disabled, basic, extended or all.
  GraphOptimization graph_optimization = GraphOptimization::kAll;
  // Config key infer.execution_providers: names cpu, cuda, tensorrt, tried in this order. A session
  // runs on the first that loads the model; one that cannot (library, driver or device missing)
  // is skipped with a warning when another follows it, and is the load's error when it is the
  // last. On a GPU provider, ONNX Runtime still runs any node it does not take on the CPU.
  std::vector<std::string> execution_providers{"cpu"};
  // Config key infer.device_id: the GPU cuda and tensorrt run on, in CUDA's order (0..255).
  int device_id = 0;
  // Config key infer.cuda_tf32: let the CUDA provider use TF32 matrix maths (Ampere and newer):
  // faster, but outputs drift from the CPU provider's. Off: float32 throughout.
  bool cuda_tf32 = false;
  // Config key infer.provider_library_dir: the folder holding libonnxruntime_providers_cuda.so
  // (and _tensorrt); empty: beside the libonnxruntime.so in use, then $ONNXRUNTIME_ROOT/lib.
  std::string provider_library_dir;
  // Config key infer.encoder_batch: audio-encoder windows per run (1..4096).
  int encoder_batch = 64;
  // Config key infer.allow_spinning: ONNX Runtime's intra-op threads spin while waiting for
  // work. Off by default: spinning threads take the cores the stage threads (features,
  // compositing, encoding) need between runs (README: thread budget).
  bool allow_spinning = false;
  // Config key infer.parallel_runs: generator batches a model runs at once, each on its own
  // scheduler runner thread (0..64; 0: automatic, resolved_parallel_runs()). With
  // intra_op_threads at 0 each run gets the thread budget divided by this (at least 1): two
  // one-thread runs on two cores keep both busy without the synchronisation a two-thread run
  // waits on whenever another thread takes one of its cores.
  int parallel_runs = 0;

  // Throws Error::Code::kInvalidInput naming the key when a value is out of range or unknown.
  void validate() const;
  // The `infer.*` config keys.
  static const core::ConfigTable<InferOptions>& config();
  // The thread count ONNX Runtime gets per run (intra_op_threads, or when 0 the thread budget
  // divided by resolved_parallel_runs(false), at least 1).
  int resolved_intra_op_threads() const;
  // parallel_runs, or when it is 0: for `throughput` work (`lipsync render`) on the CPU provider
  // (first in execution_providers) the thread budget, one-thread runs on every core, which gives
  // the most frames per second; otherwise 1, each batch on every thread, as soon as it can be
  // (the server's live sessions, and a GPU).
  int resolved_parallel_runs(bool throughput) const;
};

// "disabled", "basic", "extended", "all".
std::string_view to_string(GraphOptimization level);
// Inverse of to_string; throws Error::Code::kInvalidInput naming `key` for any other text.
GraphOptimization parse_graph_optimization(std::string_view text, std::string_view key);

}  // namespace lipsync::infer
