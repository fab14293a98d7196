#include "infer/execution_providers.h"

#include <dlfcn.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <system_error>
#include <unordered_map>

#include "core/error.h"
#include "core/mutex.h"
#include "infer/ort_env.h"

namespace lipsync::infer {
namespace {

struct ProviderInfo {
  std::string_view name;      // lipsync's name
  std::string_view ort_name;  // ONNX Runtime's
  std::string_view library;   // its shared library
};

constexpr ProviderInfo kGpuProviders[] = {
    {"cuda", "CUDAExecutionProvider", "libonnxruntime_providers_cuda.so"},
    {"tensorrt", "TensorrtExecutionProvider", "libonnxruntime_providers_tensorrt.so"},
};

const ProviderInfo* find_provider(std::string_view name) {
  for (const ProviderInfo& p : kGpuProviders) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string join_paths(const std::vector<std::filesystem::path>& dirs) {
  std::string out;
  for (const auto& d : dirs) out += (out.empty() ? "" : ", ") + d.string();
  return out.empty() ? "(no folder)" : out;
}

// ONNX Runtime compiled the provider in (an official GPU release): its legacy options API works.
bool built_in(const ProviderInfo& p) {
  const std::vector<std::string> available = Ort::GetAvailableProviders();
  return std::find(available.begin(), available.end(), p.ort_name) != available.end();
}

// The result of registering one provider library with the environment; kept for the process.
struct Registration {
  std::filesystem::path library;  // empty when none was found
  std::string error;              // empty when it registered
};

core::Mutex registrations_mu;
std::map<std::string, Registration> registrations
    LIPSYNC_GUARDED_BY(registrations_mu);  // key: provider name + the folders searched

Registration register_provider(const ProviderInfo& p, const InferOptions& options) {
  const std::vector<std::filesystem::path> dirs = provider_library_dirs(options);
  const std::string key = std::string(p.name) + "\n" + join_paths(dirs);
  const core::MutexLock lock(registrations_mu);
  if (const auto it = registrations.find(key); it != registrations.end()) return it->second;
  Registration r;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (std::filesystem::exists(dir / p.library, ec)) {
      r.library = dir / p.library;
      break;
    }
  }
  if (r.library.empty()) {
    r.error = "execution provider '" + std::string(p.name) + "': " + std::string(p.library) +
              " is not in " + join_paths(dirs) +
              "; run scripts/bootstrap --gpu (it puts ONNX Runtime's GPU package there), or point "
              "ONNXRUNTIME_ROOT or infer.provider_library_dir at an ONNX Runtime GPU release";
  } else {
    // The registration name is unique per library, so another folder can be registered too.
    const std::string name = "lipsync-" + std::string(p.name) + ":" + r.library.string();
    try {
      ort_env().RegisterExecutionProviderLibrary(name.c_str(), r.library.native());
    } catch (const Ort::Exception& e) {
      r.error = explain_provider_failure(p.name, e.what());
    }
  }
  registrations.emplace(key, r);
  return r;
}

// The CUDA ordinal ONNX Runtime gave a device (its "device_id" option), else -1.
int device_ordinal(const Ort::ConstEpDevice& device) {
  const auto options = device.EpOptions().GetKeyValuePairs();
  const auto it = options.find("device_id");
  if (it == options.end()) return -1;
  return std::atoi(it->second.c_str());
}

std::string describe_device(const Ort::ConstEpDevice& device, int ordinal) {
  const Ort::ConstHardwareDevice hw = device.Device();
  char pci[16];
  std::snprintf(pci, sizeof pci, "0x%04x", hw.DeviceId());
  std::string out = "device " + std::to_string(ordinal) + ": " + hw.Vendor() + " (pci " + pci + ")";
  const auto metadata = hw.Metadata().GetKeyValuePairs();
  if (const auto it = metadata.find("Description"); it != metadata.end()) {
    out += " " + it->second;
  }
  return out;
}

// The provider's devices in the environment, in ordinal order.
std::vector<std::pair<int, Ort::ConstEpDevice>> provider_devices(const ProviderInfo& p) {
  std::vector<std::pair<int, Ort::ConstEpDevice>> out;
  for (const Ort::ConstEpDevice& d : ort_env().GetEpDevices()) {
    if (d.EpName() == p.ort_name) {
      const int ordinal = device_ordinal(d);
      out.emplace_back(ordinal >= 0 ? ordinal : static_cast<int>(out.size()), d);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::unordered_map<std::string, std::string> provider_options(const ProviderInfo& p,
                                                              const InferOptions& options) {
  std::unordered_map<std::string, std::string> out{
      {"device_id", std::to_string(options.device_id)}};
  if (p.name == "cuda") out["use_tf32"] = options.cuda_tf32 ? "1" : "0";
  return out;
}

// Picks infer.device_id among the provider's devices; throws the sentence that says why not.
Ort::ConstEpDevice pick_device(const ProviderInfo& p, const Registration& r,
                               const InferOptions& options) {
  const auto devices = provider_devices(p);
  if (devices.empty()) {
    throw Error::invalid_input(
        "execution provider '" + std::string(p.name) + "': ONNX Runtime loaded " +
        r.library.string() +
        " but it lists no NVIDIA GPU: the driver reports none (nvidia-smi should list one; a "
        "container needs the GPU passed in, such as docker run --gpus all)");
  }
  for (const auto& [ordinal, device] : devices) {
    if (ordinal == options.device_id) return device;
  }
  std::string have;
  for (const auto& [ordinal, device] : devices) {
    have += (have.empty() ? "" : ", ") + std::to_string(ordinal);
  }
  throw Error::invalid_input("infer.device_id " + std::to_string(options.device_id) +
                             ": execution provider '" + std::string(p.name) + "' has device(s) " +
                             have);
}

}  // namespace

void disable_ort_telemetry() {
  // This ONNX Runtime build has its telemetry (1DS) on by default: creating an Env writes a
  // device id and an event database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and an
  // empty /tmp/mat-debug-<pid>.log, and queues events to send. Only this variable, read when the
  // Env is created, stops all of it (DisableTelemetryEvents afterwards does not).
  ::setenv("ORT_DISABLE_TELEMETRY", "1", 1);
}

Ort::Env& ort_env() {
  static Ort::Env env = [] {
    disable_ort_telemetry();
    Ort::Env e(ORT_LOGGING_LEVEL_ERROR, "lipsync");
    e.DisableTelemetryEvents();  // for a build that reads no variable
    return e;
  }();
  return env;
}

std::string_view provider_library_file(std::string_view provider) {
  const ProviderInfo* p = find_provider(provider);
  return p ? p->library : std::string_view{};
}

std::vector<std::filesystem::path> provider_library_dirs(const InferOptions& options) {
  if (!options.provider_library_dir.empty()) return {options.provider_library_dir};
  std::vector<std::filesystem::path> dirs;
  auto add = [&](const std::filesystem::path& dir) {
    std::error_code ec;
    const auto canonical = std::filesystem::weakly_canonical(dir, ec);
    const auto& d = ec ? dir : canonical;
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  };
  // The API base is data inside libonnxruntime.so, so dladdr names the library this process uses.
  Dl_info info{};
  if (dladdr(static_cast<const void*>(OrtGetApiBase()), &info) != 0 && info.dli_fname) {
    add(std::filesystem::path(info.dli_fname).parent_path());
  }
  if (const char* root = std::getenv("ONNXRUNTIME_ROOT"); root && *root) {
    add(std::filesystem::path(root) / "lib");
  }
  return dirs;
}

namespace {

// A character of a library's name before ".so" (libstdc++, libnvinfer_plugin, ...).
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-';
}

// "libX.so" or "libX.so.1.2": lib, then name characters, then .so and numeric suffixes.
bool is_library_name(std::string_view name) {
  if (!name.starts_with("lib")) return false;
  const auto so = name.find(".so");
  if (so == std::string_view::npos || so <= 3) return false;
  if (!std::ranges::all_of(name.substr(3, so - 3), is_name_char)) return false;
  std::string_view rest = name.substr(so + 3);
  while (!rest.empty()) {
    if (rest.size() < 2 || rest[0] != '.') return false;
    std::size_t digits = 1;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) {
      ++digits;
    }
    if (digits == 1) return false;
    rest.remove_prefix(digits);
  }
  return true;
}

// The library in the dynamic loader's "libX.so.N: cannot open shared object file", or "".
// (Scanned by hand: std::regex trips GCC 12's -Wmaybe-uninitialized under the sanitizers.)
std::string missing_library(std::string_view text) {
  constexpr std::string_view kCannotOpen = ": cannot open";
  for (auto at = text.find(kCannotOpen); at != std::string_view::npos;
       at = text.find(kCannotOpen, at + 1)) {
    std::size_t begin = at;
    while (begin > 0 && (is_name_char(text[begin - 1]) || text[begin - 1] == '.')) --begin;
    for (std::size_t p = begin; p + 3 <= at; ++p) {
      if (is_library_name(text.substr(p, at - p))) return std::string(text.substr(p, at - p));
    }
  }
  return "";
}

}  // namespace

std::string explain_provider_failure(std::string_view provider, std::string_view ort_message) {
  const std::string prefix = "execution provider '" + std::string(provider) + "': ";
  const std::string said = " (ONNX Runtime: " + std::string(ort_message) + ")";
  const std::string_view text = ort_message;
  if (const std::string lib = missing_library(text); !lib.empty()) {
    if (lib.rfind("libcuda.so", 0) == 0) {
      return prefix + "the NVIDIA driver's " + lib +
             " is not on this machine: install the NVIDIA driver (580 or newer for CUDA 13), or "
             "start the container with the GPU passed in" +
             said;
    }
    if (lib.rfind("libcudnn", 0) == 0) {
      return prefix + "cuDNN 9's " + lib +
             " is not found: install cuDNN 9 for CUDA 13 (Debian/Ubuntu package, or the "
             "nvidia-cudnn-cu13 wheel) and add its lib folder to LD_LIBRARY_PATH "
             "(scripts/gpu-check --cuda-libs DIR)" +
             said;
    }
    if (lib.rfind("libnvinfer", 0) == 0 || lib.rfind("libnvonnxparser", 0) == 0) {
      return prefix + "TensorRT 10's " + lib +
             " is not found: install TensorRT 10 for CUDA 13 and add its lib folder to "
             "LD_LIBRARY_PATH, or use cuda instead of tensorrt" +
             said;
    }
    if (lib.rfind("libonnxruntime", 0) == 0) {
      return prefix + lib +
             " is not found: run scripts/bootstrap --gpu, which puts ONNX Runtime's GPU package "
             "beside libonnxruntime.so" +
             said;
    }
    if (lib.rfind("libcu", 0) == 0 || lib.rfind("libnv", 0) == 0) {
      return prefix + "the CUDA 13 runtime's " + lib +
             " is not found: install the CUDA 13 runtime libraries (the toolkit, or the "
             "nvidia-*-cu13 wheels) and add their lib folder to LD_LIBRARY_PATH "
             "(scripts/gpu-check --cuda-libs DIR)" +
             said;
    }
    return prefix + lib + " is not found; add the folder that has it to LD_LIBRARY_PATH" + said;
  }
  if (contains(text, "Provider_GetHost") || contains(text, "libonnxruntime_providers_shared")) {
    return prefix +
           "libonnxruntime_providers_shared.so must be beside libonnxruntime.so; scripts/bootstrap "
           "--gpu puts it there" +
           said;
  }
  if (contains(text, "driver version is insufficient") || contains(text, "InsufficientDriver")) {
    return prefix +
           "the NVIDIA driver is older than CUDA 13 needs (580 or newer; nvidia-smi shows the "
           "version)" +
           said;
  }
  if (contains(text, "no CUDA-capable device") || contains(text, "cudaErrorNoDevice")) {
    return prefix +
           "no NVIDIA GPU is visible (nvidia-smi should list one; check "
           "CUDA_VISIBLE_DEVICES)" +
           said;
  }
  if (contains(text, "VERSION_MISMATCH") || contains(text, "CUDNN_STATUS_NOT_INITIALIZED")) {
    return prefix + "the cuDNN found is not the cuDNN 9 for CUDA 13 that ONNX Runtime 1.29 needs" +
           said;
  }
  if (contains(text, "out of memory") || contains(text, "cudaErrorMemoryAllocation")) {
    return prefix + "the GPU is out of memory (lower scheduler.max_batch, or free the GPU)" + said;
  }
  if (contains(text, "not enabled in this build")) {
    return prefix + "this ONNX Runtime build has no such provider; run scripts/bootstrap --gpu" +
           said;
  }
  return prefix + "failed" + said;
}

void append_gpu_provider(Ort::SessionOptions& session_options, const std::string& provider,
                         const InferOptions& options) {
  const ProviderInfo* p = find_provider(provider);
  if (!p) throw Error::invalid_input("execution provider '" + provider + "' is unknown");
  const auto ep_options = provider_options(*p, options);
  if (built_in(*p)) {
    try {
      if (p->name == "cuda") {
        Ort::CUDAProviderOptions cuda;
        cuda.Update(ep_options);
        session_options.AppendExecutionProvider_CUDA_V2(*cuda);
      } else {
        Ort::TensorRTProviderOptions tensorrt;
        tensorrt.Update(ep_options);
        session_options.AppendExecutionProvider_TensorRT_V2(*tensorrt);
      }
    } catch (const Ort::Exception& e) {
      throw Error::invalid_input(explain_provider_failure(provider, e.what()));
    }
    return;
  }
  const Registration r = register_provider(*p, options);
  if (!r.error.empty()) throw Error::invalid_input(r.error);
  const Ort::ConstEpDevice device = pick_device(*p, r, options);
  try {
    session_options.AppendExecutionProvider_V2(ort_env(), {device}, ep_options);
  } catch (const Ort::Exception& e) {
    throw Error::invalid_input(explain_provider_failure(provider, e.what()));
  }
}

std::vector<ProviderReport> check_execution_providers(const InferOptions& options) {
  std::vector<ProviderReport> out;
  ProviderReport cpu;
  cpu.name = "cpu";
  cpu.usable = true;
  cpu.devices.push_back("device 0: the CPU");
  out.push_back(cpu);
  for (const ProviderInfo& p : kGpuProviders) {
    ProviderReport report;
    report.name = std::string(p.name);
    if (built_in(p)) {
      report.library = "(compiled into libonnxruntime.so)";
      report.usable = true;
      report.devices.push_back("devices are checked when a model loads");
      out.push_back(report);
      continue;
    }
    const Registration r = register_provider(p, options);
    report.library = r.library.string();
    if (!r.error.empty()) {
      report.error = r.error;
    } else {
      for (const auto& [ordinal, device] : provider_devices(p)) {
        report.devices.push_back(describe_device(device, ordinal));
      }
      try {
        pick_device(p, r, options);
        report.usable = true;
      } catch (const Error& e) {
        report.error = e.message();
      }
    }
    out.push_back(report);
  }
  return out;
}

}  // namespace lipsync::infer
