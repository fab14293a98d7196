// Shared by the harnesses: what counts as a documented rejection, and temporary files for the
// parsers that only read paths.
// Thread contract: one fuzzing thread (libFuzzer calls a harness from one thread at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace lipsync::fuzz {

// Stops the run with `what` as a finding (libFuzzer saves the input as a crash).
[[noreturn]] void finding(std::string_view what);

// LIPSYNC_FUZZ_VERBOSE=1 in the environment: the harnesses say what an input reached (run one on
// a seed to see), e.g. why it was rejected.
bool verbose();
void note_rejection(const Error& e);

// Runs `body`; a lipsync::Error is the parser's documented rejection of bad input and returns
// false, except Code::kInternal (a broken invariant: a bug), which is a finding. Any other
// exception escapes the harness and terminates the run (a finding too).
template <class Body>
bool accepts(Body&& body) {
  try {
    body();
    return true;
  } catch (const Error& e) {
    if (e.code() == Error::Code::kInternal) finding("kInternal error: " + e.message());
    note_rejection(e);
    return false;
  }
}

// A temporary file holding `bytes` (the input: the parsers read paths), or one for the harness to
// write; at /tmp/lipsync-fuzz-<pid>-<name> (some parsers look at the extension), removed when
// this goes out of scope.
class TempFile {
 public:
  TempFile(std::span<const std::uint8_t> bytes, std::string_view name);
  TempFile(std::string_view text, std::string_view name);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The input as text.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace lipsync::fuzz
