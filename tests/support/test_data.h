// Helpers for tests: locating the golden data, reading raw float32 files, comparing arrays with
// a report of the largest difference and its index, and running the lipsync binary.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace lipsync::testing {

// Runs f and returns the lipsync::Error it throws; fails the test when it throws none.
template <class F>
Error capture_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no lipsync::Error thrown";
  return Error::internal("none");
}

// The golden data's folder: $LIPSYNC_TESTDATA_DIR, else ../shared/testdata beside the project.
std::filesystem::path golden_root();
// True when this test is one of the golden ones (CTest sets LIPSYNC_GOLDEN=1) and golden_root()
// is absent, unless LIPSYNC_REQUIRE_TESTDATA=1 (CI) makes absence a failure; then the test is
// skipped (tests/support/test_main.cc).
bool golden_skipped();
// golden_root()/<relative>; fails the test (fatal) when the file is missing.
std::filesystem::path testdata(const std::string& relative);

// Reads a raw little-endian float32 file.
std::vector<float> read_f32(const std::filesystem::path& path);
// Reads a whole text file.
std::string read_text(const std::filesystem::path& path);

struct DiffStats {
  double max_abs = 0;
  double mean_abs = 0;
  std::size_t max_index = 0;
};
// Requires: a.size() == b.size().
DiffStats diff(std::span<const float> a, std::span<const float> b);

// A fresh empty folder under the system temp folder, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs a shell command line; its output and errors are kept.
CommandResult run_command(const std::string& command);
// Runs the built lipsync binary with the given arguments (a shell-quoted string), through
// `launcher` when given (a command line such as "taskset -c 0").
CommandResult run_lipsync(const std::string& args, const std::string& launcher = "");
// `path` as one shell word: in single quotes, each ' in it written '\''.
std::string shell_quote(const std::filesystem::path& path);

}  // namespace lipsync::testing
