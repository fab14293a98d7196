// OnnxBuilder: a small writer for ONNX graphs (ONNX's own protobuf schema from Debian's
// libonnx-dev): named float initializers, nodes with attributes, graph inputs and outputs with a
// dynamic batch dimension, and deterministic serialisation (same calls, same bytes).
// Thread contract: one builder per thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lipsync::modelgen {

// One node attribute: an int, a float, a list of ints or a string.
struct Attribute {
  enum class Kind { kInt, kFloat, kInts, kString };
  Attribute(std::string n, std::int64_t v) : name(std::move(n)), kind(Kind::kInt), i(v) {}
  Attribute(std::string n, int v) : name(std::move(n)), kind(Kind::kInt), i(v) {}
  Attribute(std::string n, float v) : name(std::move(n)), kind(Kind::kFloat), f(v) {}
  Attribute(std::string n, std::vector<std::int64_t> v)
      : name(std::move(n)), kind(Kind::kInts), ints(std::move(v)) {}
  Attribute(std::string n, const char* v) : name(std::move(n)), kind(Kind::kString), s(v) {}
  std::string name;
  Kind kind;
  std::int64_t i = 0;
  float f = 0;
  std::vector<std::int64_t> ints;
  std::string s;
};

class OnnxBuilder {
 public:
  // graph_name names the graph; opset is the default-domain operator set version.
  OnnxBuilder(std::string graph_name, int opset);
  ~OnnxBuilder();
  OnnxBuilder(const OnnxBuilder&) = delete;
  OnnxBuilder& operator=(const OnnxBuilder&) = delete;

  // A float32 graph input or output; dims[0] < 0 becomes the symbolic dimension "batch".
  void add_input(const std::string& name, std::vector<std::int64_t> dims);
  void add_output(const std::string& name, std::vector<std::int64_t> dims);

  // A float32 constant tensor; returns its name (prefix plus a counter).
  std::string add_float(const std::string& prefix, std::vector<std::int64_t> dims,
                        std::span<const float> values);
  // An int64 constant tensor; returns its name.
  std::string add_int64(const std::string& prefix, std::vector<std::int64_t> values);

  // Appends a node; returns the name of its (single) output, a fresh name unless `output` is
  // given. An empty input name means an omitted optional input.
  std::string add_node(const std::string& op, std::vector<std::string> inputs,
                       std::vector<Attribute> attributes = {}, std::string output = {});

  // Total number of values in all initializers.
  std::int64_t initializer_values() const { return initializer_values_; }

  // The serialised ModelProto (IR version 8, producer "lipsync").
  std::string serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int counter_ = 0;
  std::int64_t initializer_values_ = 0;
};

}  // namespace lipsync::modelgen
