#include "infer/session.h"

#include <onnxruntime_cxx_api.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <system_error>
#include <utility>

#include "core/check.h"
#include "core/error.h"
#include "infer/execution_providers.h"
#include "infer/ort_env.h"

namespace lipsync::infer {
namespace {

GraphOptimizationLevel ort_level(GraphOptimization level) {
  switch (level) {
    case GraphOptimization::kDisabled:
      return ORT_DISABLE_ALL;
    case GraphOptimization::kBasic:
      return ORT_ENABLE_BASIC;
    case GraphOptimization::kExtended:
      return ORT_ENABLE_EXTENDED;
    case GraphOptimization::kAll:
      return ORT_ENABLE_ALL;
  }
  return ORT_ENABLE_ALL;
}

std::string lipsync_provider_name(const std::string& ort_name) {
  if (ort_name == "CPUExecutionProvider") return "cpu";
  if (ort_name == "CUDAExecutionProvider") return "cuda";
  if (ort_name == "TensorrtExecutionProvider") return "tensorrt";
  return ort_name;
}

std::string shape_text(const std::vector<std::int64_t>& shape, bool first_is_batch) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    if (shape[i] < 0) {
      out += (i == 0 && first_is_batch) ? "batch" : "?";
    } else {
      out += std::to_string(shape[i]);
    }
  }
  return out + "]";
}

// The session settings for `provider`: threads, sequential execution, graph optimisation, and
// the provider ahead of ONNX Runtime's CPU provider. Throws kInvalidInput when the provider
// cannot be added.
Ort::SessionOptions make_session_options(const InferOptions& options, const std::string& provider) {
  Ort::SessionOptions session_options;
  session_options.SetIntraOpNumThreads(options.resolved_intra_op_threads());
  session_options.SetInterOpNumThreads(1);
  session_options.SetExecutionMode(ORT_SEQUENTIAL);
  session_options.SetGraphOptimizationLevel(ort_level(options.graph_optimization));
  session_options.AddConfigEntry("session.intra_op.allow_spinning",
                                 options.allow_spinning ? "1" : "0");
  if (provider != "cpu") append_gpu_provider(session_options, provider, options);
  return session_options;
}

// Creates a session on the first of infer.execution_providers that can take the model (`load`
// builds it from session options). A GPU provider that fails is skipped with a warning when
// another follows, else its failure is thrown; the CPU provider's Ort::Exception (a bad model)
// goes to the caller. Returns the provider used in `provider`.
Ort::Session open_session(const InferOptions& options, const std::string& what,
                          const std::function<Ort::Session(const Ort::SessionOptions&)>& load,
                          std::string& provider) {
  const std::vector<std::string>& list = options.execution_providers;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string& name = list[i];
    if (name == "cpu") {
      provider = name;
      return load(make_session_options(options, name));
    }
    std::string failure;
    try {
      Ort::Session session = load(make_session_options(options, name));
      provider = name;
      return session;
    } catch (const Error& e) {
      failure = e.message();
    } catch (const Ort::Exception& e) {
      failure = explain_provider_failure(name, e.what());
    }
    if (i + 1 == list.size()) {
      throw Error::invalid_input(what + ": " + failure +
                                 (list.size() == 1 ? "; to fall back to the CPU instead, list cpu "
                                                     "after it in infer.execution_providers"
                                                   : ""));
    }
    spdlog::warn("{}: {}; using '{}', the next in infer.execution_providers", what, failure,
                 list[i + 1]);
  }
  throw Error::invalid_input(what + ": infer.execution_providers is empty");
}

// Describes every input (or output) of the session, for error messages.
std::string describe_all(const std::vector<std::string>& names,
                         const std::vector<std::vector<std::int64_t>>& shapes) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += (i ? ", " : "") + names[i] + " " + shape_text(shapes[i], true);
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::size_t TensorSpec::item_size() const {
  std::size_t n = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) n *= static_cast<std::size_t>(shape[i]);
  return n;
}

std::string TensorSpec::shape_text() const {
  return infer::shape_text(shape, true);
}

struct Session::Impl {
  Ort::Session session{nullptr};
  Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<const char*> input_names;
  std::vector<const char*> output_names;
};

namespace {

// What the loaded model declares for its inputs (or outputs).
struct ModelTensors {
  std::vector<std::string> names;
  std::vector<std::vector<std::int64_t>> shapes;
  std::vector<ONNXTensorElementDataType> types;
};

void check_model_file(const std::filesystem::path& model) {
  std::error_code ec;
  if (!std::filesystem::exists(model, ec)) {
    throw Error::not_found("model " + model.string() + ": no such file");
  }
  if (!std::filesystem::is_regular_file(model, ec)) {
    throw Error::invalid_input("model " + model.string() + ": not a regular file");
  }
}

ModelTensors read_tensors(const Ort::Session& session, bool inputs) {
  ModelTensors t;
  const std::size_t count = inputs ? session.GetInputCount() : session.GetOutputCount();
  Ort::AllocatorWithDefaultOptions allocator;
  for (std::size_t i = 0; i < count; ++i) {
    auto name = inputs ? session.GetInputNameAllocated(i, allocator)
                       : session.GetOutputNameAllocated(i, allocator);
    t.names.emplace_back(name.get());
    const Ort::TypeInfo info = inputs ? session.GetInputTypeInfo(i) : session.GetOutputTypeInfo(i);
    if (info.GetONNXType() != ONNX_TYPE_TENSOR) {
      t.shapes.emplace_back();
      t.types.push_back(ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED);
      continue;
    }
    const auto tensor = info.GetTensorTypeAndShapeInfo();
    t.shapes.push_back(tensor.GetShape());
    t.types.push_back(tensor.GetElementType());
  }
  return t;
}

// Checks one spec against the model's tensor of that name; updates the fixed batch size.
void check_tensor(const std::string& prefix, const char* kind, const ModelTensors& t,
                  const TensorSpec& spec, const std::string& expected, int& fixed_batch) {
  const auto it = std::find(t.names.begin(), t.names.end(), spec.name);
  if (it == t.names.end()) {
    throw Error::invalid_input(prefix + "no " + kind + " named '" + spec.name + "' (it has " +
                               describe_all(t.names, t.shapes) + "); expected " + expected);
  }
  const auto i = static_cast<std::size_t>(it - t.names.begin());
  if (t.types[i] != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    throw Error::invalid_input(prefix + kind + " '" + spec.name +
                               "' is not a float32 tensor; expected float32 " + spec.shape_text());
  }
  const auto& shape = t.shapes[i];
  bool ok = shape.size() == spec.shape.size();
  for (std::size_t d = 1; ok && d < shape.size(); ++d) {
    ok = shape[d] < 0 || spec.shape[d] < 0 || shape[d] == spec.shape[d];
  }
  if (!ok) {
    throw Error::invalid_input(prefix + kind + " '" + spec.name + "' has shape " +
                               shape_text(shape, true) + "; expected " + spec.shape_text());
  }
  if (!shape.empty() && shape[0] > 0) {
    const int fixed = static_cast<int>(shape[0]);
    if (fixed_batch != 0 && fixed_batch != fixed) {
      throw Error::invalid_input(prefix + "inputs and outputs disagree on the batch size (" +
                                 std::to_string(fixed_batch) + " vs " + std::to_string(fixed) +
                                 ")");
    }
    fixed_batch = fixed;
  }
}

// Checks the model's inputs (or outputs) against the specs: count, names, float32, shapes.
void check_tensors(const std::filesystem::path& model, const Ort::Session& session, bool inputs,
                   const std::vector<TensorSpec>& specs, int& fixed_batch) {
  const char* kind = inputs ? "input" : "output";
  const ModelTensors t = read_tensors(session, inputs);
  std::string expected;
  for (const auto& s : specs)
    expected += (expected.empty() ? "" : ", ") + s.name + " " + s.shape_text();
  const std::string prefix = "model " + model.string() + ": ";
  if (t.names.size() != specs.size()) {
    throw Error::invalid_input(prefix + "has " + std::to_string(t.names.size()) + " " + kind +
                               "(s) (" + describe_all(t.names, t.shapes) + "); expected " +
                               std::to_string(specs.size()) + " (" + expected + ")");
  }
  for (const TensorSpec& spec : specs) check_tensor(prefix, kind, t, spec, expected, fixed_batch);
}

}  // namespace

Session::Session(const std::filesystem::path& model, const InferOptions& options,
                 std::vector<TensorSpec> inputs, std::vector<TensorSpec> outputs)
    : path_(model),
      inputs_(std::move(inputs)),
      outputs_(std::move(outputs)),
      impl_(std::make_unique<Impl>()) {
  options.validate();
  check_model_file(model);
  std::string provider;
  try {
    impl_->session = open_session(
        options, "model " + model.string(),
        [&](const Ort::SessionOptions& so) { return Ort::Session(ort_env(), model.c_str(), so); },
        provider);
  } catch (const Ort::Exception& e) {
    throw Error::invalid_input("model " + model.string() +
                               ": ONNX Runtime cannot load it as an ONNX model: " + e.what());
  }
  providers_.push_back(provider);
  if (provider != "cpu") providers_.push_back("cpu");
  check_tensors(model, impl_->session, true, inputs_, fixed_batch_);
  check_tensors(model, impl_->session, false, outputs_, fixed_batch_);
  for (const auto& spec : inputs_) impl_->input_names.push_back(spec.name.c_str());
  for (const auto& spec : outputs_) impl_->output_names.push_back(spec.name.c_str());
}

Session::~Session() = default;

void Session::run(int batch, std::span<const std::span<const float>> inputs,
                  std::span<const std::span<float>> outputs) const {
  LIPSYNC_CHECK(batch >= 1);
  LIPSYNC_CHECK_EQ(inputs.size(), inputs_.size());
  LIPSYNC_CHECK_EQ(outputs.size(), outputs_.size());
  if (fixed_batch_ != 0 && batch != fixed_batch_) {
    run_in_fixed_batches(batch, inputs, outputs);
    return;
  }
  std::vector<Ort::Value> input_values;
  std::vector<Ort::Value> output_values;
  std::vector<std::int64_t> shape;
  auto wrap = [&](const TensorSpec& spec, float* data, std::size_t size) {
    LIPSYNC_CHECK_EQ(size, static_cast<std::size_t>(batch) * spec.item_size());
    shape = spec.shape;
    shape[0] = batch;
    return Ort::Value::CreateTensor<float>(impl_->memory, data, size, shape.data(), shape.size());
  };
  input_values.reserve(inputs.size());
  output_values.reserve(outputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    // ONNX Runtime never writes to inputs; its API takes a non-const pointer for both directions.
    input_values.push_back(
        wrap(inputs_[i], const_cast<float*>(inputs[i].data()), inputs[i].size()));
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    output_values.push_back(wrap(outputs_[i], outputs[i].data(), outputs[i].size()));
  }
  try {
    impl_->session.Run(Ort::RunOptions{nullptr}, impl_->input_names.data(), input_values.data(),
                       input_values.size(), impl_->output_names.data(), output_values.data(),
                       output_values.size());
  } catch (const Ort::Exception& e) {
    const std::string what = "model " + path_.string() +
                             ": ONNX Runtime failed to run a batch of " + std::to_string(batch) +
                             ": ";
    // On a GPU a run can fail for reasons outside lipsync (memory, a cuDNN library loaded late).
    if (providers_.front() != "cpu") {
      throw Error::unavailable(what + explain_provider_failure(providers_.front(), e.what()));
    }
    throw Error::internal(what + e.what());
  }
}

void Session::run_in_fixed_batches(int batch, std::span<const std::span<const float>> inputs,
                                   std::span<const std::span<float>> outputs) const {
  // A model exported with a fixed batch F runs in chunks of F; a short tail is zero-padded.
  const int f = fixed_batch_;
  std::vector<std::vector<float>> in_pad(inputs.size());
  std::vector<std::vector<float>> out_pad(outputs.size());
  std::vector<std::span<const float>> in(inputs.size());
  std::vector<std::span<float>> out(outputs.size());
  for (int first = 0; first < batch; first += f) {
    const int n = std::min(f, batch - first);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const std::size_t item = inputs_[i].item_size();
      const auto part = inputs[i].subspan(first * item, n * item);
      if (n == f) {
        in[i] = part;
      } else {
        in_pad[i].assign(f * item, 0.0f);
        std::copy(part.begin(), part.end(), in_pad[i].begin());
        in[i] = in_pad[i];
      }
    }
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      const std::size_t item = outputs_[i].item_size();
      if (n == f) {
        out[i] = outputs[i].subspan(first * item, n * item);
      } else {
        out_pad[i].assign(f * item, 0.0f);
        out[i] = out_pad[i];
      }
    }
    run(f, in, out);
    for (std::size_t i = 0; i < outputs.size() && n != f; ++i) {
      const std::size_t item = outputs_[i].item_size();
      std::copy_n(out_pad[i].begin(), n * item, outputs[i].begin() + first * item);
    }
  }
}

struct BareOrtLoop::Impl {
  Ort::Session session{nullptr};
  std::vector<std::string> names;
  std::vector<const char*> input_names;
  std::vector<const char*> output_names;
  std::vector<Ort::Value> inputs;
  std::vector<Ort::Value> outputs;
};

BareOrtLoop::BareOrtLoop(const std::filesystem::path& model, const InferOptions& options,
                         const std::vector<TensorSpec>& inputs,
                         std::span<const std::span<const float>> in,
                         const std::vector<TensorSpec>& outputs,
                         std::span<const std::span<float>> out)
    : impl_(std::make_unique<Impl>()) {
  std::string provider;
  impl_->session = open_session(
      options, "model " + model.string(),
      [&](const Ort::SessionOptions& so) { return Ort::Session(ort_env(), model.c_str(), so); },
      provider);
  const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  for (const auto& spec : inputs) impl_->names.push_back(spec.name);
  for (const auto& spec : outputs) impl_->names.push_back(spec.name);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    impl_->input_names.push_back(impl_->names[i].c_str());
    impl_->inputs.push_back(
        Ort::Value::CreateTensor<float>(memory, const_cast<float*>(in[i].data()), in[i].size(),
                                        inputs[i].shape.data(), inputs[i].shape.size()));
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    impl_->output_names.push_back(impl_->names[inputs.size() + i].c_str());
    impl_->outputs.push_back(Ort::Value::CreateTensor<float>(
        memory, out[i].data(), out[i].size(), outputs[i].shape.data(), outputs[i].shape.size()));
  }
}

BareOrtLoop::~BareOrtLoop() = default;

void BareOrtLoop::run() {
  impl_->session.Run(Ort::RunOptions{nullptr}, impl_->input_names.data(), impl_->inputs.data(),
                     impl_->inputs.size(), impl_->output_names.data(), impl_->outputs.data(),
                     impl_->outputs.size());
}

struct ProbeSession::Impl {
  Ort::Session session{nullptr};
  std::vector<std::string> outputs;
};

ProbeSession::ProbeSession(const std::string& model_bytes, const InferOptions& options)
    : impl_(std::make_unique<Impl>()) {
  std::string provider;
  try {
    impl_->session = open_session(
        options, "model in memory",
        [&](const Ort::SessionOptions& so) {
          return Ort::Session(ort_env(), model_bytes.data(), model_bytes.size(), so);
        },
        provider);
  } catch (const Ort::Exception& e) {
    throw Error::invalid_input(std::string("ONNX Runtime refused the model: ") + e.what());
  }
  Ort::AllocatorWithDefaultOptions allocator;
  for (std::size_t i = 0; i < impl_->session.GetOutputCount(); ++i) {
    impl_->outputs.emplace_back(impl_->session.GetOutputNameAllocated(i, allocator).get());
  }
}

ProbeSession::~ProbeSession() = default;

const std::vector<std::string>& ProbeSession::output_names() const {
  return impl_->outputs;
}

std::vector<std::vector<float>> ProbeSession::run(std::span<const Input> inputs) const {
  const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<const char*> in_names, out_names;
  std::vector<Ort::Value> values;
  for (const Input& in : inputs) {
    in_names.push_back(in.name.c_str());
    values.push_back(Ort::Value::CreateTensor<float>(memory, const_cast<float*>(in.values.data()),
                                                     in.values.size(), in.shape.data(),
                                                     in.shape.size()));
  }
  for (const std::string& name : impl_->outputs) out_names.push_back(name.c_str());
  std::vector<Ort::Value> results;
  try {
    results = impl_->session.Run(Ort::RunOptions{nullptr}, in_names.data(), values.data(),
                                 values.size(), out_names.data(), out_names.size());
  } catch (const Ort::Exception& e) {
    throw Error::invalid_input(std::string("ONNX Runtime could not run the model: ") + e.what());
  }
  std::vector<std::vector<float>> out;
  for (Ort::Value& v : results) {
    const auto info = v.GetTensorTypeAndShapeInfo();
    const float* data = v.GetTensorData<float>();
    out.emplace_back(data, data + info.GetElementCount());
  }
  return out;
}

std::vector<std::string> available_execution_providers() {
  std::vector<std::string> out;
  for (const auto& name : Ort::GetAvailableProviders()) out.push_back(lipsync_provider_name(name));
  return out;
}

std::string onnxruntime_version() {
  return Ort::GetVersionString();
}

}  // namespace lipsync::infer
