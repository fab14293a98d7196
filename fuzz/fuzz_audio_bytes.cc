// Fuzzes the decoding of uploaded audio files (WAV/FLAC/OGG and every other libsndfile format):
// audio::load_audio_bytes, and the streaming AudioFileReader over the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "audio/audio_file.h"
#include "fuzz_util.h"

namespace {

// A file declaring more than this is refused from its header, never decoded.
constexpr int kMaxSeconds = 30;
constexpr std::size_t kMostSamples = std::size_t{kMaxSeconds} * 16000 + 16000;  // + resampler

// (Samples are finite at the file's rate; resampling huge finite values may overflow to inf,
// which the mel front end rejects in turn: not checked here.)
void check_samples(std::span<const float> samples) {
  if (samples.size() > kMostSamples) lipsync::fuzz::finding("more samples than max_seconds");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  const auto bytes = std::as_bytes(std::span(data, size));
  fuzz::accepts([&] { check_samples(audio::load_audio_bytes(bytes, "the input", kMaxSeconds)); });
  // `lipsync render` reads long files in pieces at 16 kHz (a streaming resampler).
  fuzz::accepts([&] {
    audio::AudioFileReader reader(bytes, "the input", kMaxSeconds);
    std::size_t total = 0;
    while (true) {
      const std::vector<float> piece = reader.read(4000);
      if (piece.empty()) break;
      check_samples(piece);
      total += piece.size();
      if (total > kMostSamples) fuzz::finding("the reader returned more than max_seconds");
    }
  });
  return 0;
}
