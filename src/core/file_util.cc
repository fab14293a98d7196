#include "core/file_util.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <system_error>

#include "core/error.h"

namespace lipsync::core {

void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::string where = "'" + path.string() + "'";
  // A name of this write's own: two processes may write one cache entry at once.
  static std::atomic<unsigned> writes{0};
  std::filesystem::path tmp = path;
  tmp += ".partial." + std::to_string(::getpid()) + "." + std::to_string(writes++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error::invalid_input(where + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw Error::invalid_input(where + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error::invalid_input(where + ": cannot create: " + ec.message());
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  write_file_atomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

namespace fs = std::filesystem;

namespace {

fs::path ensure_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) {
    throw Error::unavailable("cache folder " + dir.string() +
                             " cannot be created; set LIPSYNC_CACHE_DIR to a writable folder");
  }
  return dir;
}

}  // namespace

fs::path cache_dir() {
  if (const char* v = std::getenv("LIPSYNC_CACHE_DIR"); v != nullptr && *v) return ensure_dir(v);
  if (const char* v = std::getenv("XDG_CACHE_HOME"); v != nullptr && *v) {
    return ensure_dir(fs::path(v) / "lipsync");
  }
  if (const char* v = std::getenv("HOME"); v != nullptr && *v) {
    return ensure_dir(fs::path(v) / ".cache" / "lipsync");
  }
  return ensure_dir(fs::temp_directory_path() / "lipsync-cache");
}

StagingFolder::StagingFolder(const fs::path& out, std::string what)
    : out_(out), what_(std::move(what)) {
  std::error_code ec;
  if (fs::exists(out_, ec) && !(fs::is_directory(out_, ec) && fs::is_empty(out_, ec))) {
    throw Error::invalid_input(what_ + " " + out_.string() +
                               " already exists and is not an empty folder");
  }
  const fs::path parent = out_.has_parent_path() ? out_.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  dir_ = parent / (out_.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(dir_, ec);
  if (!fs::create_directories(dir_, ec)) {
    throw Error::invalid_input(what_ + " " + out_.string() + ": cannot create " + dir_.string() +
                               ": " + ec.message());
  }
}

StagingFolder::~StagingFolder() {
  std::error_code ec;
  if (!committed_) fs::remove_all(dir_, ec);
}

void StagingFolder::make_subfolder(const std::string& name) const {
  std::error_code ec;
  if (!fs::create_directories(dir_ / name, ec)) {
    throw Error::invalid_input(what_ + " " + out_.string() + ": cannot create " +
                               (dir_ / name).string() + ": " + ec.message());
  }
}

void StagingFolder::commit() {
  std::error_code ec;
  if (fs::exists(out_, ec)) fs::remove(out_, ec);  // an empty folder
  fs::rename(dir_, out_, ec);
  if (ec) {
    throw Error::invalid_input(what_ + " " + out_.string() + ": cannot rename " + dir_.string() +
                               ": " + ec.message());
  }
  committed_ = true;
}

}  // namespace lipsync::core
