#include "infer/audio_encoder.h"

#include <algorithm>
#include <array>
#include <string>

#include "contract/model_family.h"
#include "core/check.h"

namespace lipsync::infer {
namespace {

std::vector<TensorSpec> encoder_inputs() {
  return {
      {std::string(contract::kEncoderInputName), {-1, 1, audio::kMelBands, audio::kWindowFrames}}};
}
std::vector<TensorSpec> encoder_outputs() {
  return {{std::string(contract::kEncoderOutputName), {-1, contract::kFeatureSize}}};
}

}  // namespace

AudioEncoder::AudioEncoder(const std::filesystem::path& model, const InferOptions& options)
    : session_(model, options, encoder_inputs(), encoder_outputs()),
      batch_(options.encoder_batch) {}

void AudioEncoder::encode(const audio::MelWindows& windows, int first, int count,
                          std::span<float> out) const {
  LIPSYNC_CHECK(first >= 0 && count >= 0);
  LIPSYNC_CHECK_LE(first + count, windows.count());
  LIPSYNC_CHECK_EQ(out.size(), static_cast<std::size_t>(count) * contract::kFeatureSize);
  if (count == 0) return;
  constexpr std::size_t kWindow = audio::MelWindows::kPackedWindowSize;
  auto input = pool_.acquire(static_cast<std::size_t>(std::min(count, batch_)) * kWindow);
  for (int done = 0; done < count; done += batch_) {
    const int n = std::min(batch_, count - done);
    const auto packed = input.span().first(static_cast<std::size_t>(n) * kWindow);
    windows.pack_encoder_batch(first + done, n, packed);
    const std::array<std::span<const float>, 1> in{packed};
    const std::array<std::span<float>, 1> features{
        out.subspan(static_cast<std::size_t>(done) * contract::kFeatureSize,
                    static_cast<std::size_t>(n) * contract::kFeatureSize)};
    session_.run(n, in, features);
  }
}

void AudioEncoder::encode_packed(std::span<const float> packed, int count,
                                 std::span<float> out) const {
  LIPSYNC_CHECK(count >= 0);
  constexpr std::size_t kWindow = audio::MelWindows::kPackedWindowSize;
  LIPSYNC_CHECK_EQ(packed.size(), static_cast<std::size_t>(count) * kWindow);
  LIPSYNC_CHECK_EQ(out.size(), static_cast<std::size_t>(count) * contract::kFeatureSize);
  for (int done = 0; done < count; done += batch_) {
    const int n = std::min(batch_, count - done);
    const std::array<std::span<const float>, 1> in{packed.subspan(
        static_cast<std::size_t>(done) * kWindow, static_cast<std::size_t>(n) * kWindow)};
    const std::array<std::span<float>, 1> features{
        out.subspan(static_cast<std::size_t>(done) * contract::kFeatureSize,
                    static_cast<std::size_t>(n) * contract::kFeatureSize)};
    session_.run(n, in, features);
  }
}

}  // namespace lipsync::infer
