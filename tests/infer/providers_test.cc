// GPU execution providers: every failure is one clear sentence, a listed fallback is taken with a
// warning, and (on a GPU machine, LIPSYNC_TEST_PROVIDERS=cuda) the GPU's outputs are the CPU's.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>

#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "contract/model_family.h"
#include "core/error.h"
#include "infer/audio_encoder.h"
#include "infer/execution_providers.h"
#include "infer/generator.h"
#include "infer/session.h"
#include "support/test_data.h"
#include "support/test_models.h"

namespace lipsync {
namespace {

using testing::diff;
using testing::read_f32;
using testing::testdata;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Collects what spdlog's default logger writes while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::find(sinks.begin(), sinks.end(), sink_));
  }
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// The folder of the libonnxruntime.so in use holds the GPU package (scripts/bootstrap --gpu).
bool gpu_package_installed() {
  for (const auto& dir : infer::provider_library_dirs({})) {
    if (std::filesystem::exists(dir / "libonnxruntime_providers_cuda.so")) return true;
  }
  return false;
}

// ONNX Runtime has the GPU providers compiled in (an official GPU release in ONNXRUNTIME_ROOT):
// no library is registered then, so a library folder changes nothing.
bool gpu_built_in() {
  const auto available = infer::available_execution_providers();
  return std::find(available.begin(), available.end(), "cuda") != available.end();
}

bool driver_present() {
  void* handle = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (handle) dlclose(handle);
  return handle != nullptr;
}

TEST(ExecutionProviders, FailuresNameWhatIsMissingAndWhatToInstall) {
  struct Case {
    const char* ort;
    std::vector<const char*> says;
  };
  // The first two are what ONNX Runtime 1.29 printed on this machine; the rest are the forms of
  // its dlopen and CUDA errors.
  const Case cases[] = {
      {"Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: "
       "cannot open shared object file: No such file or directory",
       {"NVIDIA driver's libcuda.so.1", "install the NVIDIA driver"}},
      {"Failed to load library /x/libonnxruntime_providers_tensorrt.so with error: "
       "libnvinfer.so.10: cannot open shared object file: No such file or directory",
       {"TensorRT 10's libnvinfer.so.10", "use cuda instead"}},
      {"Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcudart.so.13: "
       "cannot open shared object file: No such file or directory",
       {"CUDA 13 runtime's libcudart.so.13", "LD_LIBRARY_PATH", "--cuda-libs"}},
      {"with error: libcublasLt.so.13: cannot open shared object file",
       {"CUDA 13 runtime's libcublasLt.so.13"}},
      {"with error: libcudnn.so.9: cannot open shared object file",
       {"cuDNN 9's libcudnn.so.9", "nvidia-cudnn-cu13"}},
      {"Failed to load library /x/libonnxruntime_providers_cuda.so with error: "
       "/x/libonnxruntime_providers_cuda.so: undefined symbol: Provider_GetHost",
       {"libonnxruntime_providers_shared.so must be beside libonnxruntime.so"}},
      {"CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version",
       {"driver is older than CUDA 13 needs"}},
      {"CUDA failure 100: no CUDA-capable device is detected", {"no NVIDIA GPU is visible"}},
      {"CUDNN failure 1003: CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH", {"cuDNN 9 for CUDA 13"}},
      {"CUDA failure 2: out of memory", {"out of memory", "scheduler.max_batch"}},
      {"something new", {"failed"}},
  };
  for (const Case& c : cases) {
    const std::string m = infer::explain_provider_failure("cuda", c.ort);
    EXPECT_TRUE(has(m, "execution provider 'cuda': ")) << m;
    EXPECT_TRUE(has(m, std::string("(ONNX Runtime: ") + c.ort + ")")) << m;
    for (const char* part : c.says) EXPECT_TRUE(has(m, part)) << c.ort << " -> " << m;
  }
  EXPECT_EQ(infer::provider_library_file("cuda"), "libonnxruntime_providers_cuda.so");
  EXPECT_EQ(infer::provider_library_file("tensorrt"), "libonnxruntime_providers_tensorrt.so");
  EXPECT_EQ(infer::provider_library_file("cpu"), "");
}

TEST(ExecutionProviders, TheLibraryFolderIsBesideTheOnnxRuntimeInUse) {
  const auto dirs = infer::provider_library_dirs({});
  ASSERT_FALSE(dirs.empty());
  EXPECT_TRUE(std::filesystem::exists(dirs[0] / "libonnxruntime.so.1") ||
              std::filesystem::exists(dirs[0] / "libonnxruntime.so"))
      << dirs[0];
  infer::InferOptions o;
  o.provider_library_dir = "/some/where";
  EXPECT_EQ(infer::provider_library_dirs(o), std::vector<std::filesystem::path>{"/some/where"});
}

TEST(ExecutionProviders, AMissingProviderLibraryIsOneClearError) {
  if (gpu_built_in()) GTEST_SKIP() << "this ONNX Runtime has the GPU providers built in";
  testing::TempDir empty;
  infer::InferOptions o = testing::two_threads();
  o.provider_library_dir = empty.path().string();
  for (const char* name : {"cuda", "tensorrt"}) {
    o.execution_providers = {name};
    const Error e = testing::capture_error(
        [&] { infer::AudioEncoder(testing::synth_models() / "audio_encoder.onnx", o); });
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    const std::string& m = e.message();
    EXPECT_TRUE(has(m, "audio_encoder.onnx: execution provider '" + std::string(name) +
                           "': " + std::string(infer::provider_library_file(name)) + " is not in " +
                           empty.path().string()))
        << m;
    EXPECT_TRUE(has(m, "scripts/bootstrap --gpu")) << m;
    EXPECT_TRUE(has(m, "list cpu after it in infer.execution_providers")) << m;
  }
  const auto reports = infer::check_execution_providers(o);
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].name, "cpu");
  EXPECT_TRUE(reports[0].usable);
  EXPECT_EQ(reports[1].name, "cuda");
  EXPECT_FALSE(reports[1].usable);
  EXPECT_TRUE(has(reports[1].error, "libonnxruntime_providers_cuda.so is not in"))
      << reports[1].error;
}

TEST(ExecutionProviders, AListedFallbackIsTakenWithAWarning) {
  if (gpu_built_in()) GTEST_SKIP() << "this ONNX Runtime has the GPU providers built in";
  testing::TempDir empty;
  infer::InferOptions o = testing::two_threads();
  o.provider_library_dir = empty.path().string();
  o.execution_providers = {"tensorrt", "cuda", "cpu"};
  const LogCapture log;
  const infer::AudioEncoder encoder(testing::reference_models() / "audio_encoder.onnx", o);
  EXPECT_EQ(encoder.session().providers(), std::vector<std::string>{"cpu"});
  const std::string text = log.text();
  EXPECT_TRUE(has(text, "execution provider 'tensorrt'")) << text;
  EXPECT_TRUE(has(text, "using 'cuda', the next in infer.execution_providers")) << text;
  EXPECT_TRUE(has(text, "execution provider 'cuda'")) << text;
  EXPECT_TRUE(has(text, "using 'cpu', the next in infer.execution_providers")) << text;

  // And the fallback computes what the CPU provider alone computes.
  const audio::Mel mel(384, read_f32(testdata("reference/mel.f32")));
  const audio::MelWindows windows(mel, audio::AudioOptions{});
  std::vector<float> features(windows.count() * contract::kFeatureSize);
  encoder.encode(windows, 0, windows.count(), features);
  EXPECT_LE(diff(features, read_f32(testdata("reference/features.f32"))).max_abs, 5e-4);
}

// The real GPU package on a machine without an NVIDIA driver (scripts/bootstrap --gpu, as CI
// runs it): the error says to install the driver.
TEST(ExecutionProviders, TheGpuPackageWithoutADriverAsksForTheDriver) {
  if (!gpu_package_installed()) GTEST_SKIP() << "no GPU package (scripts/bootstrap --gpu)";
  if (driver_present()) GTEST_SKIP() << "this machine has an NVIDIA driver";
  infer::InferOptions o = testing::two_threads();
  o.execution_providers = {"cuda"};
  const Error e = testing::capture_error(
      [&] { infer::Generator(testing::synth_models() / "generator.onnx", o); });
  EXPECT_TRUE(has(e.message(),
                  "execution provider 'cuda': the NVIDIA driver's libcuda.so.1 is "
                  "not on this machine"))
      << e.message();
}

// On a GPU machine (scripts/gpu-check: LIPSYNC_TEST_PROVIDERS=cuda): the reference models'
// outputs on the GPU are within 1e-4 of the CPU provider's, with no silent fallback.
TEST(ExecutionProviders, GpuOutputsMatchTheCpuProviderOnTheReferenceModels) {
  if (testing::testing_on_cpu()) {
    GTEST_SKIP() << "set LIPSYNC_TEST_PROVIDERS=cuda on a GPU machine (scripts/gpu-check)";
  }
  infer::InferOptions gpu = testing::two_threads();
  gpu.execution_providers.resize(1);  // the GPU provider alone: no fallback to hide a failure
  infer::InferOptions cpu = testing::two_threads();
  cpu.execution_providers = {"cpu"};

  const auto models = testing::reference_models();
  const infer::AudioEncoder enc_gpu(models / "audio_encoder.onnx", gpu);
  const infer::AudioEncoder enc_cpu(models / "audio_encoder.onnx", cpu);
  ASSERT_EQ(enc_gpu.session().providers().front(), gpu.execution_providers.front());
  const audio::Mel mel(384, read_f32(testdata("reference/mel.f32")));
  const audio::MelWindows windows(mel, audio::AudioOptions{});
  std::vector<float> fg(windows.count() * contract::kFeatureSize), fc(fg.size());
  enc_gpu.encode(windows, 0, windows.count(), fg);
  enc_cpu.encode(windows, 0, windows.count(), fc);
  const auto df = diff(fg, fc);
  std::printf("gpu-check: audio encoder, %d windows: max |gpu - cpu| = %.3g\n", windows.count(),
              static_cast<double>(df.max_abs));
  EXPECT_LE(df.max_abs, 1e-4) << "at " << df.max_index;

  const infer::Generator gen_gpu(models / "generator.onnx", gpu);
  const infer::Generator gen_cpu(models / "generator.onnx", cpu);
  ASSERT_EQ(gen_gpu.session().providers().front(), gpu.execution_providers.front());
  std::vector<float> image, audio_in;
  for (int i = 0; i < 4; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "reference/input_%05d.f32", i);
    const auto im = read_f32(testdata(name));
    image.insert(image.end(), im.begin(), im.end());
    std::snprintf(name, sizeof name, "reference/audio_%05d.f32", i);
    const auto au = read_f32(testdata(name));
    audio_in.insert(audio_in.end(), au.begin(), au.end());
  }
  std::vector<float> og(4 * contract::kOutputSize), oc(og.size());
  gen_gpu.run(4, image, audio_in, og);
  gen_cpu.run(4, image, audio_in, oc);
  const auto dg = diff(og, oc);
  std::printf("gpu-check: generator, 4 frames: max |gpu - cpu| = %.3g\n",
              static_cast<double>(dg.max_abs));
  EXPECT_LE(dg.max_abs, 1e-4) << "at " << dg.max_index;
}

}  // namespace
}  // namespace lipsync
