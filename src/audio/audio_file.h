// Reading audio into the model's format: mono float32 samples at 16 kHz.
// WAV/FLAC/OGG (and the other containers libsndfile reads) in any PCM or float format, any
// channel count (averaged to mono) and any rate (resampled with libsoxr); raw little-endian
// buffers: `.f32` (float32) and `.s16` (int16 / 32768), both mono 16 kHz.
// Thread contract: stateless functions; call from any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace lipsync::audio {

// Encoding of a raw sample buffer (a file body or an RPC field).
enum class RawEncoding {
  kS16le,  // little-endian int16, value / 32768
  kF32le,  // little-endian IEEE float32
};

// Decodes a raw buffer. Throws Error::Code::kInvalidInput naming `source` when the byte count is
// not a multiple of the sample size. Does not check values (see validate_samples).
std::vector<float> decode_raw(std::span<const std::byte> bytes, RawEncoding encoding,
                              std::string_view source);

// Loads a file as 16 kHz mono. Throws Error (kNotFound for a missing file, kInvalidInput for an
// unreadable, truncated, unsupported, empty or non-finite one), naming the file and the problem.
std::vector<float> load_audio_file(const std::filesystem::path& path);

}  // namespace lipsync::audio
