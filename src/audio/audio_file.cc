#include "audio/audio_file.h"

#include <sndfile.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "audio/mel_constants.h"
#include "audio/mel_spectrogram.h"
#include "audio/resampler.h"
#include "core/error.h"

namespace lipsync::audio {
namespace {

constexpr sf_count_t kReadBlockFrames = 1 << 16;

std::string quoted(const std::filesystem::path& path) {
  return "'" + path.string() + "'";
}

std::string lower_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

std::vector<std::byte> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::invalid_input(quoted(path) + ": cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size < 0) throw Error::invalid_input(quoted(path) + ": cannot read (not a regular file?)");
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw Error::invalid_input(quoted(path) + ": read error");
  }
  return bytes;
}

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

// libsndfile accepts a WAV/AIFF whose data chunk is shorter than its header says and quietly
// reads what is there; its log then has a line "data : <declared> (should be <actual>)".
// A declared size of 0 or 0xFFFFFFFF means "unknown length" (streamed files) and is fine.
void reject_short_data_chunk(SNDFILE* file, const std::filesystem::path& path) {
  char log[8192] = {};
  sf_command(file, SFC_GET_LOG_INFO, log, sizeof log);
  const char* line = std::strstr(log, "\ndata : ");
  if (line == nullptr) return;
  unsigned long long declared = 0;
  unsigned long long actual = 0;
  if (std::sscanf(line, "\ndata : %llu (should be %llu)", &declared, &actual) == 2 &&
      declared != 0 && declared != 0xFFFFFFFFull && actual < declared) {
    throw Error::invalid_input(quoted(path) + ": truncated file: the header declares " +
                               std::to_string(declared) + " bytes of audio data but only " +
                               std::to_string(actual) + " are present");
  }
}

std::vector<float> read_with_sndfile(const std::filesystem::path& path) {
  SF_INFO info{};
  SndfilePtr file(sf_open(path.c_str(), SFM_READ, &info));
  if (!file) {
    throw Error::invalid_input(
        quoted(path) + ": not a readable audio file (libsndfile: " + sf_strerror(nullptr) +
        "); supported: WAV, FLAC, OGG and other " + "libsndfile formats, or raw .f32/.s16");
  }
  if (info.channels < 1) throw Error::invalid_input(quoted(path) + ": file has no channels");
  reject_short_data_chunk(file.get(), path);

  const int channels = info.channels;
  std::vector<float> mono;
  mono.reserve(static_cast<std::size_t>(std::clamp<sf_count_t>(info.frames, 0, 1 << 26)));
  std::vector<float> block(static_cast<std::size_t>(kReadBlockFrames) * channels);
  sf_count_t total = 0;
  for (;;) {
    const sf_count_t got = sf_readf_float(file.get(), block.data(), kReadBlockFrames);
    if (got <= 0) break;
    total += got;
    for (sf_count_t f = 0; f < got; ++f) {
      const float* frame = block.data() + f * channels;
      if (channels == 1) {
        mono.push_back(frame[0]);
      } else {
        double sum = 0.0;  // exact for the channel counts in practice; rounded once below
        for (int c = 0; c < channels; ++c) sum += frame[c];
        mono.push_back(static_cast<float>(sum / channels));
      }
    }
  }
  if (sf_error(file.get()) != SF_ERR_NO_ERROR) {
    throw Error::invalid_input(quoted(path) + ": decoding failed after " + std::to_string(total) +
                               " frames (libsndfile: " + sf_strerror(file.get()) + ")");
  }
  if (info.frames > 0 && total < info.frames) {
    throw Error::invalid_input(quoted(path) + ": truncated file: the header declares " +
                               std::to_string(info.frames) + " frames but only " +
                               std::to_string(total) + " could be decoded");
  }
  if (mono.empty()) throw Error::invalid_input(quoted(path) + ": no audio samples");
  validate_samples(mono, quoted(path));
  if (info.samplerate != kSampleRateHz) {
    try {
      mono = resample(mono, info.samplerate, kSampleRateHz);
    } catch (const Error& e) {
      throw e.with_context(quoted(path));
    }
  }
  return mono;
}

}  // namespace

std::vector<float> decode_raw(std::span<const std::byte> bytes, RawEncoding encoding,
                              std::string_view source) {
  const std::size_t width = encoding == RawEncoding::kS16le ? 2 : 4;
  if (bytes.size() % width != 0) {
    throw Error::invalid_input(std::string(source) + ": " + std::to_string(bytes.size()) +
                               " bytes is not a whole number of " +
                               (encoding == RawEncoding::kS16le ? "int16" : "float32") +
                               " samples (" + std::to_string(width) + " bytes each)");
  }
  std::vector<float> samples(bytes.size() / width);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t i = 0; i < samples.size(); ++i, p += width) {
    if (encoding == RawEncoding::kS16le) {
      const auto v = static_cast<std::int16_t>(static_cast<std::uint16_t>(p[0] | (p[1] << 8)));
      samples[i] = static_cast<float>(v) / 32768.0f;
    } else {
      const std::uint32_t bits =
          static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
          (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
      std::memcpy(&samples[i], &bits, sizeof bits);
    }
  }
  return samples;
}

std::vector<float> load_audio_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error::not_found(quoted(path) + ": no such file");
  }
  if (std::filesystem::is_directory(path, ec)) {
    throw Error::invalid_input(quoted(path) + ": is a directory, expected an audio file");
  }
  const std::string ext = lower_extension(path);
  if (ext == ".f32" || ext == ".s16") {
    const auto encoding = ext == ".f32" ? RawEncoding::kF32le : RawEncoding::kS16le;
    std::vector<float> samples = decode_raw(read_bytes(path), encoding, quoted(path));
    validate_samples(samples, quoted(path));
    return samples;
  }
  return read_with_sndfile(path);
}

}  // namespace lipsync::audio
