#include "infer/infer_options.h"

#include <algorithm>
#include <array>
#include <string>

#include "core/error.h"
#include "core/task_arena.h"

namespace lipsync::infer {
namespace {

constexpr std::array<std::string_view, 3> kKnownProviders{"cpu", "cuda", "tensorrt"};

}  // namespace

void InferOptions::validate() const {
  if (intra_op_threads < 0 || intra_op_threads > 1024) {
    throw Error::invalid_input("infer.intra_op_threads: " + std::to_string(intra_op_threads) +
                               " is out of range; expected 0 (all hardware threads) to 1024");
  }
  if (encoder_batch < 1 || encoder_batch > 4096) {
    throw Error::invalid_input("infer.encoder_batch: " + std::to_string(encoder_batch) +
                               " is out of range; expected 1 to 4096");
  }
  if (execution_providers.empty()) {
    throw Error::invalid_input("infer.execution_providers: empty; expected a list such as [cpu]");
  }
  for (std::size_t i = 0; i < execution_providers.size(); ++i) {
    const std::string& name = execution_providers[i];
    if (std::find(kKnownProviders.begin(), kKnownProviders.end(), name) == kKnownProviders.end()) {
      throw Error::invalid_input("infer.execution_providers: unknown provider '" + name +
                                 "'; expected cpu, cuda or tensorrt");
    }
    if (std::find(execution_providers.begin(), execution_providers.begin() + i, name) !=
        execution_providers.begin() + i) {
      throw Error::invalid_input("infer.execution_providers: '" + name + "' is listed twice");
    }
  }
}

int InferOptions::resolved_intra_op_threads() const {
  return intra_op_threads > 0 ? intra_op_threads : core::hardware_threads();
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
