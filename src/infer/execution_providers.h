// Execution providers beyond the CPU: ONNX Runtime's GPU providers (cuda, tensorrt) loaded through
// its plugin interface. A provider's shared library is registered with the process's ONNX Runtime
// environment once, its devices are listed, and a session takes the one `infer.device_id` names.
// Every way this fails (library, driver, CUDA or cuDNN missing, no device) becomes one message that
// names what is missing and what to install.
// Thread contract: every function may be called from any thread; registration is serialised
// inside.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "infer/infer_options.h"

namespace lipsync::infer {

// Turns ONNX Runtime's telemetry off for this process (ORT_DISABLE_TELEMETRY=1, read when the
// environment is created; ort_env() calls it too). Call it at the start of main, before any
// thread runs: it sets an environment variable.
void disable_ort_telemetry();

// The shared library ONNX Runtime loads for `provider` ("cuda" ->
// "libonnxruntime_providers_cuda.so"); empty for "cpu" and unknown names.
std::string_view provider_library_file(std::string_view provider);

// Folders searched for a provider's library, in order: infer.provider_library_dir when set,
// else the folder of the libonnxruntime.so this process loaded, then $ONNXRUNTIME_ROOT/lib.
std::vector<std::filesystem::path> provider_library_dirs(const InferOptions& options);

// Turns ONNX Runtime's text for a failure of `provider` (loading its library, creating a session
// on it) into one sentence: what is missing, and what to install or set.
std::string explain_provider_failure(std::string_view provider, std::string_view ort_message);

// What `lipsync providers` prints for one provider.
struct ProviderReport {
  std::string name;     // "cpu", "cuda", "tensorrt"
  std::string library;  // the library registered (empty for cpu, or when none was found)
  bool usable = false;  // a session can be created on it with these options
  std::string error;    // why not, when !usable
  // The devices ONNX Runtime lists for the provider: "device 0: NVIDIA (pci 0x2335)".
  std::vector<std::string> devices;
};

// Registers and lists every provider lipsync knows (cpu, cuda, tensorrt) with `options`
// (infer.device_id, infer.provider_library_dir); never throws for a provider that fails.
std::vector<ProviderReport> check_execution_providers(const InferOptions& options);

}  // namespace lipsync::infer
