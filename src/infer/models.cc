#include "infer/models.h"

#include <system_error>

#include "core/error.h"
#include "core/system_info.h"

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

void check_int8_weights(const std::filesystem::path& dir,
                        const std::optional<ModelManifest>& manifest, const std::string& provider,
                        bool pairs_saturate) {
  if (!manifest || manifest->precision != "int8" || manifest->weight_bits == 7) return;
  if (provider != "cpu" || !pairs_saturate) return;
  throw Error::invalid_input(
      "models " + dir.string() +
      ": the int8 generator has 8-bit weights, which overflow ONNX Runtime's int8 kernels on a "
      "CPU without VNNI (this one: " +
      core::cpu_model_name() + ", " + core::cpu_int8_instructions() +
      ") and would give wrong frames; quantize it again with `lipsync models quantize` (7-bit "
      "weights, --weights reduced, the default), or run the float32 models");
}

Models::Models(const std::filesystem::path& dir, const InferOptions& options)
    : dir_(checked_dir(dir)),
      manifest_(load_manifest(dir_)),
      encoder_(dir_ / kEncoderFileName, options),
      generator_(dir_ / kGeneratorFileName, options) {
  check_int8_weights(dir_, manifest_, generator_.session().providers().front(),
                     core::int8_pairs_saturate());
}

}  // namespace lipsync::infer
