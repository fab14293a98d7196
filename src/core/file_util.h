// Small file helpers shared by the front ends.
// Thread contract: stateless functions; concurrent calls must use different paths.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace lipsync::core {

// The user's cache folder, created when missing: $LIPSYNC_CACHE_DIR, else $XDG_CACHE_HOME/lipsync,
// else ~/.cache/lipsync, else a folder in the system's temporary folder. Throws
// Error::Code::kUnavailable when it cannot be made.
std::filesystem::path cache_dir();

// Writes bytes to path through a temporary file in the same folder and a rename, so a failure
// never leaves a partial file at path. Throws Error::Code::kInvalidInput naming the path.
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);
// The same for text.
void write_file_atomically(const std::filesystem::path& path, std::string_view text);

// A new folder built in full beside `out` and renamed to `out` by commit(); removed if never
// committed, so a failed write leaves nothing behind. `what` names the folder in errors
// ("avatar output"). Throws Error::Code::kInvalidInput when out exists and is not an empty
// folder, or the staging folder cannot be made.
class StagingFolder {
 public:
  StagingFolder(const std::filesystem::path& out, std::string what);
  ~StagingFolder();
  StagingFolder(const StagingFolder&) = delete;
  StagingFolder& operator=(const StagingFolder&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  void make_subfolder(const std::string& name) const;
  void commit();

 private:
  std::filesystem::path out_;
  std::string what_;
  std::filesystem::path dir_;
  bool committed_ = false;
};

}  // namespace lipsync::core
