#include "modelgen/onnx_builder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/onnx_pb.h>

#include "core/error.h"

namespace lipsync::modelgen {

struct OnnxBuilder::Impl {
  onnx::ModelProto model;
  onnx::GraphProto* graph = nullptr;
};

OnnxBuilder::OnnxBuilder(std::string graph_name, int opset) : impl_(std::make_unique<Impl>()) {
  auto& model = impl_->model;
  model.set_ir_version(8);
  model.set_producer_name("lipsync");
  model.set_producer_version("0.1.0");
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  impl_->graph = model.mutable_graph();
  impl_->graph->set_name(std::move(graph_name));
}

OnnxBuilder::~OnnxBuilder() = default;

namespace {

void set_value_info(onnx::ValueInfoProto* info, const std::string& name,
                    const std::vector<std::int64_t>& dims) {
  info->set_name(name);
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  for (const std::int64_t d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0) {
      dim->set_dim_param("batch");
    } else {
      dim->set_dim_value(d);
    }
  }
}

}  // namespace

void OnnxBuilder::add_input(const std::string& name, std::vector<std::int64_t> dims) {
  set_value_info(impl_->graph->add_input(), name, dims);
}

void OnnxBuilder::add_output(const std::string& name, std::vector<std::int64_t> dims) {
  set_value_info(impl_->graph->add_output(), name, dims);
}

std::string OnnxBuilder::add_float(const std::string& prefix, std::vector<std::int64_t> dims,
                                   std::span<const float> values) {
  std::int64_t count = 1;
  for (const auto d : dims) count *= d;
  if (count != static_cast<std::int64_t>(values.size())) {
    throw Error::internal("OnnxBuilder: initializer " + prefix + " has " +
                          std::to_string(values.size()) + " values for " + std::to_string(count) +
                          " elements");
  }
  auto* tensor = impl_->graph->add_initializer();
  std::string name = prefix + "_" + std::to_string(counter_++);
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::FLOAT);
  for (const auto d : dims) tensor->add_dims(d);
  // raw_data is little-endian float32, which is what every supported platform stores.
  tensor->set_raw_data(values.data(), values.size() * sizeof(float));
  initializer_values_ += count;
  return name;
}

std::string OnnxBuilder::add_int64(const std::string& prefix, std::vector<std::int64_t> values) {
  auto* tensor = impl_->graph->add_initializer();
  std::string name = prefix + "_" + std::to_string(counter_++);
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::INT64);
  tensor->add_dims(static_cast<std::int64_t>(values.size()));
  for (const auto v : values) tensor->add_int64_data(v);
  return name;
}

std::string OnnxBuilder::add_node(const std::string& op, std::vector<std::string> inputs,
                                  std::vector<Attribute> attributes, std::string output) {
  auto* node = impl_->graph->add_node();
  const int id = counter_++;
  node->set_op_type(op);
  node->set_name(op + "_" + std::to_string(id));
  for (auto& in : inputs) node->add_input(in);
  if (output.empty()) output = op + "_" + std::to_string(id) + "_out";
  node->add_output(output);
  for (const Attribute& a : attributes) {
    auto* attr = node->add_attribute();
    attr->set_name(a.name);
    switch (a.kind) {
      case Attribute::Kind::kInt:
        attr->set_type(onnx::AttributeProto::INT);
        attr->set_i(a.i);
        break;
      case Attribute::Kind::kFloat:
        attr->set_type(onnx::AttributeProto::FLOAT);
        attr->set_f(a.f);
        break;
      case Attribute::Kind::kInts:
        attr->set_type(onnx::AttributeProto::INTS);
        for (const auto v : a.ints) attr->add_ints(v);
        break;
      case Attribute::Kind::kString:
        attr->set_type(onnx::AttributeProto::STRING);
        attr->set_s(a.s);
        break;
    }
  }
  return output;
}

std::string OnnxBuilder::serialize() const {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!impl_->model.SerializeToCodedStream(&coded)) {
      throw Error::internal("OnnxBuilder: protobuf serialisation failed");
    }
  }
  return bytes;
}

}  // namespace lipsync::modelgen
