#include "support/test_data.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string_view>

namespace lipsync::testing {

std::filesystem::path golden_root() {
  const char* env = std::getenv("LIPSYNC_TESTDATA_DIR");
  return env != nullptr && *env != 0 ? env : LIPSYNC_TESTDATA_DIR;
}

bool golden_skipped() {
  const char* golden = std::getenv("LIPSYNC_GOLDEN");
  const char* required = std::getenv("LIPSYNC_REQUIRE_TESTDATA");
  return golden != nullptr && std::string_view(golden) == "1" &&
         !(required != nullptr && std::string_view(required) == "1") &&
         !std::filesystem::is_directory(golden_root());
}

std::filesystem::path testdata(const std::string& relative) {
  // CTest runs every test with LIPSYNC_GOLDEN set: 1 for those in their program's GOLDEN list
  // (tests/CMakeLists.txt), which skip when the data is absent, 0 for the rest, which must not
  // need it.
  const char* golden = std::getenv("LIPSYNC_GOLDEN");
  if (golden != nullptr && std::string_view(golden) == "0") {
    ADD_FAILURE() << "this test reads the golden data (" << relative
                  << ") but is not in its program's GOLDEN list in tests/CMakeLists.txt, so a "
                     "clone without ../shared/testdata would fail it instead of skipping it";
  }
  const std::filesystem::path path = golden_root() / relative;
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << "golden data missing: " << path
                  << " (expected ../shared/testdata beside the project root)";
    throw std::runtime_error("missing test data " + path.string());
  }
  return path;
}

std::vector<float> read_f32(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % 4 != 0) throw std::runtime_error("not float32: " + path.string());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

DiffStats diff(std::span<const float> a, std::span<const float> b) {
  DiffStats s;
  if (a.size() != b.size()) throw std::runtime_error("diff: size mismatch");
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    sum += d;
    if (d > s.max_abs || std::isnan(d)) {
      s.max_abs = std::isnan(d) ? INFINITY : d;
      s.max_index = i;
    }
  }
  s.mean_abs = a.empty() ? 0 : sum / static_cast<double>(a.size());
  return s;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("lipsync_test_" + std::to_string(rd()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult run_command(const std::string& command) {
  TempDir dir;
  const std::string cmd =
      "{ " + command + " ; } >'" + (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(dir / "out");
  r.err = read_text(dir / "err");
  return r;
}

std::string shell_quote(const std::filesystem::path& path) {
  std::string out = "'";
  for (const char c : path.string()) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

CommandResult run_lipsync(const std::string& args, const std::string& launcher) {
  return run_command(launcher + (launcher.empty() ? "" : " ") + "'" + LIPSYNC_BINARY + "' " + args);
}

}  // namespace lipsync::testing
