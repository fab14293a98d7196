#include "fuzz_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <system_error>

namespace lipsync::fuzz {
namespace {

// /tmp/lipsync-fuzz-<pid>-<name>: one name per use, removed after each input.
std::filesystem::path temp_path(std::string_view name) {
  return std::filesystem::temp_directory_path() /
         ("lipsync-fuzz-" + std::to_string(getpid()) + "-" + std::string(name));
}

}  // namespace

void finding(std::string_view what) {
  std::fprintf(stderr, "==FUZZ FINDING== %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

bool verbose() {
  static const bool on = std::getenv("LIPSYNC_FUZZ_VERBOSE") != nullptr;
  return on;
}

void note_rejection(const Error& e) {
  if (verbose()) std::fprintf(stderr, "rejected (%s): %s\n", to_string(e.code()).data(), e.what());
}

TempFile::TempFile(std::string_view text, std::string_view name) : path_(temp_path(name)) {
  std::ofstream out(path_, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) finding("cannot write the temporary file " + path_.string());
}

TempFile::TempFile(std::span<const std::uint8_t> bytes, std::string_view name)
    : TempFile(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), name) {}

TempFile::~TempFile() {
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace lipsync::fuzz
