#include "support/test_models.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "contract/demo_mouth.h"
#include "modelgen/demo_models.h"
#include "modelgen/synth_models.h"
#include "support/test_data.h"

namespace lipsync::testing {
namespace {

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}

// One temp folder per process, removed at exit.
TempDir& models_root() {
  static TempDir* dir = new TempDir();  // destroyed by the atexit below
  static const bool registered = [] {
    std::atexit([] { delete dir; });
    return true;
  }();
  (void)registered;
  return *dir;
}

}  // namespace

const std::filesystem::path& synth_models(double width, unsigned seed) {
  std::lock_guard lock(cache_mutex());
  static std::map<std::pair<double, unsigned>, std::filesystem::path> cache;
  auto [it, inserted] = cache.try_emplace({width, seed});
  if (inserted) {
    it->second = models_root() / ("synth-" + std::to_string(width) + "-" + std::to_string(seed));
    modelgen::write_synth_models(it->second, width, seed);
  }
  return it->second;
}

const std::filesystem::path& demo_models() {
  std::lock_guard lock(cache_mutex());
  static const std::filesystem::path path = [] {
    auto p = models_root() / "demo";
    modelgen::write_demo_models(p);
    return p;
  }();
  return path;
}

infer::InferOptions two_threads() {
  infer::InferOptions o;
  o.intra_op_threads = 2;
  o.execution_providers = test_providers();
  return o;
}

std::vector<std::string> test_providers() {
  std::vector<std::string> out;
  const char* env = std::getenv("LIPSYNC_TEST_PROVIDERS");
  std::string item;
  for (const char* c = env ? env : "";; ++c) {
    if (*c == ',' || *c == '\0') {
      if (!item.empty()) out.push_back(item);
      item.clear();
      if (*c == '\0') break;
    } else if (*c != ' ') {
      item += *c;
    }
  }
  if (out.empty()) out.push_back("cpu");
  return out;
}

bool testing_on_cpu() {
  return test_providers() == std::vector<std::string>{"cpu"};
}

std::filesystem::path reference_models() {
  return testdata("reference/models/generator.onnx").parent_path();
}

cv::Rect demo_mouth_box(const avatar::Avatar& avatar, int t, double height) {
  const auto& r = avatar.crop_rect(t);
  const auto& m = contract::kDemoMouth;
  const double scale = double(r.width()) / avatar::kCanvasSize;
  // The mouth's centre in canvas pixels, + 4.5: the canvas's ROI starts 4 pixels in, and the
  // centre of a pixel is half a pixel on.
  const int cx = r.x1 + int((m.centre_x + 4.5) * scale);
  const int cy = r.y1 + int((m.centre_y + 4.5) * scale);
  const int hw = int(m.half_width * scale * 0.8), hh = int(m.half_height_open * scale * height);
  return {cx - hw, cy - hh, 2 * hw, 2 * hh};
}

}  // namespace lipsync::testing
