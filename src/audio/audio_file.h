// Reading audio into the model's format: mono float32 samples at 16 kHz.
// WAV/FLAC/OGG (and the other containers libsndfile reads) in any PCM or float format, any
// channel count (averaged to mono) and any rate (resampled with libsoxr); raw little-endian
// buffers: `.f32` (float32) and `.s16` (int16 / 32768), both mono 16 kHz.
// Thread contract: stateless functions; call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
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

// The default cap on audio length (AudioOptions::max_seconds).
inline constexpr int kDefaultMaxAudioSeconds = 14400;

// Loads a file as 16 kHz mono. Throws Error (kNotFound for a missing file, kInvalidInput for an
// unreadable, truncated, unsupported, empty or non-finite one, or one longer than max_seconds),
// naming the file and the problem.
std::vector<float> load_audio_file(const std::filesystem::path& path,
                                   int max_seconds = kDefaultMaxAudioSeconds);

// The same for a whole file held in memory (an upload): any libsndfile format, not raw buffers.
// `name` stands for the file in messages ("the speech body").
std::vector<float> load_audio_bytes(std::span<const std::byte> bytes, std::string_view name,
                                    int max_seconds = kDefaultMaxAudioSeconds);

// AudioFileReader: the same files read in pieces, so a long file never sits in memory whole
// (`lipsync render`). Pieces come as 16 kHz mono (a streaming libsoxr resampler for other rates).
// A file whose header says it is longer than max_seconds is refused when opened; one that turns
// out longer, when it gets there. Truncation and decoding errors are found when they are reached.
// Thread contract: one owner.
class AudioFileReader {
 public:
  // Throws as load_audio_file.
  AudioFileReader(const std::filesystem::path& path, int max_seconds = kDefaultMaxAudioSeconds);
  // A file in memory, named `name` in messages; `bytes` must outlive the reader.
  AudioFileReader(std::span<const std::byte> bytes, std::string_view name,
                  int max_seconds = kDefaultMaxAudioSeconds);
  ~AudioFileReader();
  AudioFileReader(const AudioFileReader&) = delete;
  AudioFileReader& operator=(const AudioFileReader&) = delete;

  // The file's sample rate, and its length at 16 kHz when the header tells it.
  int sample_rate() const;
  std::optional<std::int64_t> expected_samples() const;
  // Up to max_samples of 16 kHz mono; empty once the file is done. Throws kInvalidInput naming
  // the file (truncated, undecodable, non-finite, too long, or no samples at all).
  std::vector<float> read(std::size_t max_samples);
  // The same at the file's own rate (load_audio_file resamples the whole file at once).
  std::vector<float> read_native(std::size_t max_samples);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::audio
