#include "infer/models.h"

#include <system_error>

#include "core/error.h"

namespace lipsync::infer {
namespace {

std::optional<ModelManifest> load_manifest(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto path = dir / kManifestFileName;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  return ModelManifest::load(path);
}

}  // namespace

std::filesystem::path Models::checked_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw Error::not_found("models " + dir.string() + ": no such folder (expected a folder with " +
                           kEncoderFileName + " and " + kGeneratorFileName + ")");
  }
  for (const char* name : {kEncoderFileName, kGeneratorFileName}) {
    if (!std::filesystem::exists(dir / name, ec)) {
      throw Error::not_found("models " + dir.string() + ": " + name + " is missing");
    }
  }
  return dir;
}

Models::Models(const std::filesystem::path& dir, const InferOptions& options)
    : dir_(checked_dir(dir)),
      manifest_(load_manifest(dir_)),
      encoder_(dir_ / kEncoderFileName, options),
      generator_(dir_ / kGeneratorFileName, options) {}

}  // namespace lipsync::infer
