#include "infer/infer_options.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/thread_budget.h"

namespace lipsync::infer {
const core::ConfigTable<InferOptions>& InferOptions::config() {
  static const auto table =
      core::ConfigTable<InferOptions>("infer")
          .integer("intra_op_threads", &InferOptions::intra_op_threads, 0, 1024,
                   "ONNX Runtime threads per run of a model; 0 = the thread budget (`cpu.threads`) "
                   "divided by `infer.parallel_runs`")
          .choice("graph_optimization", &InferOptions::graph_optimization,
                  {{"disabled", GraphOptimization::kDisabled},
                   {"basic", GraphOptimization::kBasic},
                   {"extended", GraphOptimization::kExtended},
                   {"all", GraphOptimization::kAll}},
                  "ONNX Runtime graph optimisation level")
          .list("execution_providers", &InferOptions::execution_providers,
                {"cpu", "cuda", "tensorrt"},
                "tried in order: a model runs on the first that loads it; one that cannot "
                "(library, driver or GPU missing) is skipped with a warning when another follows, "
                "else it is the error; cuda and tensorrt need `scripts/bootstrap --gpu` (or a GPU "
                "release in ONNXRUNTIME_ROOT)")
          .integer("device_id", &InferOptions::device_id, 0, 255,
                   "the GPU cuda and tensorrt run on, in CUDA's order")
          .boolean("cuda_tf32", &InferOptions::cuda_tf32,
                   "the CUDA provider may use TF32 matrix maths (Ampere and newer): faster, but "
                   "outputs drift from the CPU provider's")
          .text("provider_library_dir", &InferOptions::provider_library_dir, "a folder",
                "where libonnxruntime_providers_cuda.so is; empty = beside the libonnxruntime.so "
                "in use, then $ONNXRUNTIME_ROOT/lib")
          .integer("encoder_batch", &InferOptions::encoder_batch, 1, 4096,
                   "audio-encoder windows per run")
          .boolean("allow_spinning", &InferOptions::allow_spinning,
                   "ONNX Runtime's threads spin between runs (faster alone, slower beside the "
                   "stage threads and other processes on the same cores)")
          .integer("parallel_runs", &InferOptions::parallel_runs, 0, 64,
                   "generator batches run at once per model, each on its own scheduler runner "
                   "(more throughput, longer batches); 0 = the thread budget in `lipsync render` "
                   "on the CPU provider, else 1");
  return table;
}

void InferOptions::validate() const {
  config().validate(*this);
}

int InferOptions::resolved_intra_op_threads() const {
  if (intra_op_threads > 0) return intra_op_threads;
  return std::max(1, core::thread_budget() / resolved_parallel_runs(false));
}

int InferOptions::resolved_parallel_runs(bool throughput) const {
  if (parallel_runs > 0) return parallel_runs;
  const bool cpu = execution_providers.empty() || execution_providers.front() == "cpu";
  return throughput && cpu ? core::thread_budget() : 1;
}

std::string_view to_string(GraphOptimization level) {
  switch (level) {
    case GraphOptimization::kDisabled:
      return "disabled";
    case GraphOptimization::kBasic:
      return "basic";
    case GraphOptimization::kExtended:
      return "extended";
    case GraphOptimization::kAll:
      return "all";
  }
  return "all";
}

GraphOptimization parse_graph_optimization(std::string_view text, std::string_view key) {
  for (auto level : {GraphOptimization::kDisabled, GraphOptimization::kBasic,
                     GraphOptimization::kExtended, GraphOptimization::kAll}) {
    if (text == to_string(level)) return level;
  }
  throw Error::invalid_input(std::string(key) + ": unknown level '" + std::string(text) +
                             "'; expected disabled, basic, extended or all");
}

}  // namespace lipsync::infer
