#include "audio/mpeg_sniff.h"

#include <array>
#include <cstdint>

namespace lipsync::audio {
namespace {

std::uint8_t byte_at(std::span<const std::byte> data, std::size_t i) {
  return static_cast<std::uint8_t>(data[i]);
}

// Bit rates in kbit/s by [MPEG-1?][layer 1..3][index 1..14] (index 0 is free format).
constexpr std::array<std::array<std::array<int, 15>, 3>, 2> kBitRates = {{
    // MPEG-2 and 2.5
    {{{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
      {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
      {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}}},
    // MPEG-1
    {{{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
      {0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
      {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}}},
}};

// Sample rates in Hz by [version field: 0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1][index 0..2].
constexpr std::array<std::array<int, 3>, 4> kSampleRates = {
    {{11025, 12000, 8000}, {0, 0, 0}, {22050, 24000, 16000}, {44100, 48000, 32000}}};

constexpr std::size_t kMostPadding = 4096;  // zero bytes tolerated between the tag and audio

}  // namespace

std::optional<std::size_t> mpeg_frame_length(std::span<const std::byte, 4> header) {
  const auto b1 = static_cast<std::uint8_t>(header[1]);
  const auto b2 = static_cast<std::uint8_t>(header[2]);
  if (static_cast<std::uint8_t>(header[0]) != 0xFF || (b1 & 0xE0) != 0xE0) return std::nullopt;
  const int version = (b1 >> 3) & 3;     // 0: 2.5, 1: reserved, 2: 2, 3: 1
  const int layer_bits = (b1 >> 1) & 3;  // 0: reserved, 1: III, 2: II, 3: I
  const int bit_rate_index = b2 >> 4;
  const int rate_index = (b2 >> 2) & 3;
  const int padding = (b2 >> 1) & 1;
  if (version == 1 || layer_bits == 0 || bit_rate_index == 15 || rate_index == 3) {
    return std::nullopt;
  }
  if (bit_rate_index == 0) return 0;  // free format
  const int layer = 4 - layer_bits;   // 1, 2 or 3
  const bool mpeg1 = version == 3;
  const long bit_rate = kBitRates[mpeg1][static_cast<std::size_t>(layer - 1)]
                                 [static_cast<std::size_t>(bit_rate_index)] *
                        1000L;
  const long rate =
      kSampleRates[static_cast<std::size_t>(version)][static_cast<std::size_t>(rate_index)];
  if (layer == 1) return static_cast<std::size_t>((12 * bit_rate / rate + padding) * 4);
  const long per_frame = layer == 3 && !mpeg1 ? 72 : 144;
  return static_cast<std::size_t>(per_frame * bit_rate / rate + padding);
}

std::size_t id3v2_size(std::span<const std::byte> data) {
  if (data.size() < 10 || byte_at(data, 0) != 'I' || byte_at(data, 1) != 'D' ||
      byte_at(data, 2) != '3') {
    return 0;
  }
  std::size_t size = 0;
  for (std::size_t i = 6; i < 10; ++i) {
    const std::uint8_t b = byte_at(data, i);
    if (b & 0x80) return 0;  // not a synchsafe integer: not a tag
    size = (size << 7) | b;
  }
  const bool footer = (byte_at(data, 5) & 0x10) != 0;
  return 10 + size + (footer ? 10 : 0);
}

bool starts_like_mpeg_audio(std::span<const std::byte> data) {
  std::size_t at = id3v2_size(data);
  const std::size_t padding_end = at + kMostPadding;
  while (at < data.size() && at < padding_end && byte_at(data, at) == 0) ++at;
  if (at + 4 > data.size()) return false;
  const auto length = mpeg_frame_length(data.subspan(at).first<4>());
  if (!length) return false;
  if (*length == 0) return true;  // free format: no length to check the next frame with
  const std::size_t next = at + *length;
  if (next == data.size()) return true;  // one frame, then the end
  if (next + 4 > data.size()) return false;
  return mpeg_frame_length(data.subspan(next).first<4>()).has_value();
}

bool claims_mpeg_audio(std::span<const std::byte> data) {
  if (id3v2_size(data) > 0) return true;
  return data.size() >= 2 && byte_at(data, 0) == 0xFF && (byte_at(data, 1) & 0xE0) == 0xE0;
}

}  // namespace lipsync::audio
