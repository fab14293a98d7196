// Fuzzes a model folder's model.json: infer::ModelManifest::load. A manifest that loads must
// also survive save() and load() again (the model tools rewrite it).
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_util.h"
#include "infer/model_manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  const fuzz::TempFile file(std::span(data, size), "model.json");
  infer::ModelManifest manifest;
  if (!fuzz::accepts([&] { manifest = infer::ModelManifest::load(file.path()); })) return 0;
  const fuzz::TempFile copy("", "model.saved.json");
  manifest.save(copy.path());
  if (!fuzz::accepts([&] { (void)infer::ModelManifest::load(copy.path()); })) {
    fuzz::finding("a model.json that loaded does not load again after save()");
  }
  return 0;
}
