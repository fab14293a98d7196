// Fuzzes the raw PCM that Stream, Live and HTTP speech uploads stream in: server::WireAudio
// (s16le/f32le split anywhere across chunks, resampled to 16 kHz as it streams) and the config
// check in front of it (server::check_wire_config).
//
// Input: byte 0 = flags (bit 0: f32le, else s16le; bit 1: the next 4 bytes are the raw
// sample_rate field, else byte 1 picks a common rate), then chunks: a length byte N and N bytes
// of audio; N = 0 ends the piece of audio (finish), N = 255 drops a partial sample.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_util.h"
#include "server/wire_audio.h"

namespace {

constexpr std::array<int, 8> kRates{0, 8000, 11025, 22050, 44100, 48000, 96000, 192000};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lipsync;
  if (size < 2) return 0;
  const bool f32 = data[0] & 1;
  std::size_t at = 1;
  int sample_rate = 0;
  if (data[0] & 2) {
    if (size < 5) return 0;
    std::memcpy(&sample_rate, data + 1, 4);
    at = 5;
  } else {
    sample_rate = kRates[data[1] % kRates.size()];
    at = 2;
  }
  int rate = 0;
  const int encoding = f32 ? v1::StreamConfig::ENCODING_F32LE : v1::StreamConfig::ENCODING_S16LE;
  if (!fuzz::accepts([&] { rate = server::check_wire_config(0, encoding, sample_rate); })) return 0;

  server::WireAudio wire;
  wire.configure(!f32, rate);
  std::size_t in_bytes = 0;  // of the current piece
  std::size_t out_samples = 0;
  auto check_length = [&](std::size_t n) {
    out_samples += n;
    // At 16 kHz out of `rate`: never far more than the input holds (plus the resampler's tail).
    const std::size_t width = f32 ? 4 : 2;
    const double most = static_cast<double>(in_bytes / width) * 16000.0 / rate + 4096;
    if (static_cast<double>(out_samples) > most) fuzz::finding("more samples out than went in");
  };
  while (at < size) {
    const std::size_t n = data[at++];
    if (n == 0) {
      // A piece that fails is dropped by the services; the next one starts afresh.
      if (!fuzz::accepts([&] { check_length(wire.finish("piece").size()); })) wire.drop_partial();
      in_bytes = 0;
      out_samples = 0;
      continue;
    }
    if (n == 255) {
      wire.drop_partial();
      continue;
    }
    const std::size_t take = std::min(n, size - at);
    const std::string chunk(reinterpret_cast<const char*>(data + at), take);
    at += take;
    in_bytes += take;
    fuzz::accepts([&] { check_length(wire.decode(chunk, "chunk").size()); });
  }
  fuzz::accepts([&] { check_length(wire.finish("the audio").size()); });
  return 0;
}
