#include "audio/audio_file.h"

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "audio/mel_constants.h"
#include "audio/mel_spectrogram.h"
#include "audio/mpeg_sniff.h"
#include "audio/resampler.h"
#include "audio/streaming_resampler.h"
#include "core/error.h"
#include "core/text.h"

namespace lipsync::audio {
namespace {

constexpr sf_count_t kReadBlockFrames = 1 << 16;

std::string quoted(const std::filesystem::path& path) {
  return "'" + path.string() + "'";
}

std::string lower_extension(const std::filesystem::path& path) {
  return core::to_lower_ascii(path.extension().string());
}

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

// libsndfile accepts a WAV/AIFF whose data chunk is shorter than its header says and quietly
// reads what is there; its log then has a line "data : <declared> (should be <actual>)".
// A declared size of 0 or 0xFFFFFFFF means "unknown length" (streamed files) and is fine.
void reject_short_data_chunk(SNDFILE* file, const std::string& name) {
  char log[8192] = {};
  sf_command(file, SFC_GET_LOG_INFO, log, sizeof log);
  const char* line = std::strstr(log, "\ndata : ");
  if (line == nullptr) return;
  unsigned long long declared = 0;
  unsigned long long actual = 0;
  if (std::sscanf(line, "\ndata : %llu (should be %llu)", &declared, &actual) == 2 &&
      declared != 0 && declared != 0xFFFFFFFFull && actual < declared) {
    throw Error::invalid_input(name + ": truncated file: the header declares " +
                               std::to_string(declared) + " bytes of audio data but only " +
                               std::to_string(actual) + " are present");
  }
}

std::string too_long(const std::string& name, int max_seconds) {
  return name + ": longer than audio.max_seconds (" + std::to_string(max_seconds) + " s)";
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

struct AudioFileReader::Impl {
  std::filesystem::path path;
  std::string name;  // in messages: the quoted path, or the caller's name for a memory buffer
  int max_seconds = 0;
  // A file in memory (read through libsndfile's virtual I/O), and where the reading is.
  std::span<const std::byte> memory;
  sf_count_t memory_pos = 0;
  SF_VIRTUAL_IO memory_io{};
  // A raw buffer (.f32/.s16) or a libsndfile file.
  std::optional<RawEncoding> raw;
  std::ifstream raw_in;
  SndfilePtr file;
  int channels = 1;
  int rate = kSampleRateHz;
  std::int64_t declared_frames = -1;  // at the file's rate; -1 when unknown
  std::int64_t frames_read = 0;       // at the file's rate
  std::unique_ptr<StreamingResampler> resampler;
  bool done = false;

  void open_raw(RawEncoding encoding) {
    raw = encoding;
    const std::size_t width = encoding == RawEncoding::kS16le ? 2 : 4;
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw Error::invalid_input(name + ": cannot read (not a regular file?)");
    if (size % width != 0) {
      throw Error::invalid_input(name + ": " + std::to_string(size) +
                                 " bytes is not a whole number of " +
                                 (width == 2 ? "int16" : "float32") + " samples (" +
                                 std::to_string(width) + " bytes each)");
    }
    declared_frames = static_cast<std::int64_t>(size / width);
    raw_in.open(path, std::ios::binary);
    if (!raw_in) throw Error::invalid_input(name + ": cannot open for reading");
  }

  // libsndfile's virtual I/O over `memory`; user_data is the Impl.
  static SF_VIRTUAL_IO virtual_io() {
    SF_VIRTUAL_IO io{};
    io.get_filelen = [](void* self) -> sf_count_t {
      return static_cast<sf_count_t>(static_cast<Impl*>(self)->memory.size());
    };
    io.seek = [](sf_count_t offset, int whence, void* self) -> sf_count_t {
      auto& m = *static_cast<Impl*>(self);
      const auto size = static_cast<sf_count_t>(m.memory.size());
      const sf_count_t base = whence == SEEK_CUR ? m.memory_pos : whence == SEEK_END ? size : 0;
      m.memory_pos = std::clamp<sf_count_t>(base + offset, 0, size);
      return m.memory_pos;
    };
    io.read = [](void* out, sf_count_t count, void* self) -> sf_count_t {
      auto& m = *static_cast<Impl*>(self);
      const auto left = static_cast<sf_count_t>(m.memory.size()) - m.memory_pos;
      const sf_count_t n = std::clamp<sf_count_t>(count, 0, left);
      if (n > 0) std::memcpy(out, m.memory.data() + m.memory_pos, static_cast<std::size_t>(n));
      m.memory_pos += n;
      return n;
    };
    io.write = [](const void*, sf_count_t, void*) -> sf_count_t { return 0; };
    io.tell = [](void* self) -> sf_count_t { return static_cast<Impl*>(self)->memory_pos; };
    return io;
  }

  // Data that claims to be MPEG audio (or a file named so) but has no frames where an MP3
  // starts is refused here, before libmpg123 searches it and writes to stderr.
  void refuse_false_mpeg(bool in_memory) const {
    std::vector<std::byte> head;
    std::span<const std::byte> start = memory;
    if (!in_memory) {
      // Enough for an ID3v2 tag with cover art and the frames after it.
      constexpr std::size_t kMostSniffed = 4 << 20;
      std::ifstream in(path, std::ios::binary);
      head.resize(kMostSniffed);
      in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
      head.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
      start = head;
    }
    const std::string ext = in_memory ? "" : lower_extension(path);
    const bool named_mpeg = ext == ".mp3" || ext == ".mp2" || ext == ".mp1" || ext == ".mpga";
    if ((named_mpeg || claims_mpeg_audio(start)) && !starts_like_mpeg_audio(start)) {
      throw Error::invalid_input(name +
                                 ": not a readable audio file: no MPEG audio frames where an MP3 "
                                 "starts (damaged, or not an MP3)");
    }
  }

  void open_sndfile() {
    SF_INFO info{};
    const bool in_memory = path.empty();
    refuse_false_mpeg(in_memory);
    if (in_memory) {
      memory_io = virtual_io();
      file.reset(sf_open_virtual(&memory_io, SFM_READ, &info, this));
    } else {
      file.reset(sf_open(path.c_str(), SFM_READ, &info));
    }
    if (!file) {
      // libsndfile says "does not exist or is not a regular file (possibly a pipe?)" for data it
      // took for MPEG and could not decode: the file exists and was read.
      std::string why = sf_strerror(nullptr);
      if (why.find("possibly a pipe") != std::string::npos) why = "unrecognised or damaged data";
      throw Error::invalid_input(name + ": not a readable audio file (libsndfile: " + why +
                                 "); supported: WAV, FLAC, OGG, MP3 and other libsndfile formats" +
                                 (in_memory ? "" : ", or raw .f32/.s16"));
    }
    if (info.channels < 1) throw Error::invalid_input(name + ": file has no channels");
    reject_short_data_chunk(file.get(), name);
    channels = info.channels;
    rate = info.samplerate;
    // SF_COUNT_MAX is libsndfile's "length unknown" (an Ogg/Opus stream cut before its last
    // page): then the length is what decodes, checked as it is read.
    declared_frames = info.frames > 0 && info.frames < SF_COUNT_MAX ? info.frames : -1;
  }

  void check_length(std::int64_t frames) const {
    // frames at `rate`; compare in that rate to avoid rounding at the limit
    if (frames > static_cast<std::int64_t>(max_seconds) * rate) {
      throw Error::invalid_input(too_long(name, max_seconds));
    }
  }

  std::vector<float> read_raw(std::size_t max) {
    const std::size_t width = *raw == RawEncoding::kS16le ? 2 : 4;
    std::vector<char> bytes(max * width);
    raw_in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const auto got = static_cast<std::size_t>(raw_in.gcount());
    if (got == 0 && !raw_in.eof()) throw Error::invalid_input(name + ": read error");
    return decode_raw(std::as_bytes(std::span(bytes.data(), got)), *raw, name);
  }

  std::vector<float> read_sndfile(std::size_t max) {
    const auto want = static_cast<sf_count_t>(std::min<std::size_t>(max, kReadBlockFrames));
    std::vector<float> block(static_cast<std::size_t>(want) * channels);
    const sf_count_t got = sf_readf_float(file.get(), block.data(), want);
    if (got < 0 || sf_error(file.get()) != SF_ERR_NO_ERROR) {
      throw Error::invalid_input(name + ": decoding failed after " + std::to_string(frames_read) +
                                 " frames (libsndfile: " + sf_strerror(file.get()) + ")");
    }
    std::vector<float> mono(static_cast<std::size_t>(got));
    for (sf_count_t f = 0; f < got; ++f) {
      const float* frame = block.data() + f * channels;
      if (channels == 1) {
        mono[f] = frame[0];
      } else {
        double sum = 0.0;  // exact for the channel counts in practice; rounded once below
        for (int c = 0; c < channels; ++c) sum += frame[c];
        mono[f] = static_cast<float>(sum / channels);
      }
    }
    return mono;
  }

  // At the end of the file: the checks that need the whole file.
  void finish() {
    done = true;
    if (frames_read == 0) throw Error::invalid_input(name + ": no audio samples");
    if (!raw && declared_frames > 0 && frames_read < declared_frames) {
      throw Error::invalid_input(name + ": truncated file: the header declares " +
                                 std::to_string(declared_frames) + " frames but only " +
                                 std::to_string(frames_read) + " could be decoded");
    }
  }
};

AudioFileReader::AudioFileReader(const std::filesystem::path& path, int max_seconds)
    : impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error::not_found(quoted(path) + ": no such file");
  if (std::filesystem::is_directory(path, ec)) {
    throw Error::invalid_input(quoted(path) + ": is a directory, expected an audio file");
  }
  auto& m = *impl_;
  m.path = path;
  m.name = quoted(path);
  m.max_seconds = max_seconds;
  const std::string ext = lower_extension(path);
  if (ext == ".f32" || ext == ".s16") {
    m.open_raw(ext == ".f32" ? RawEncoding::kF32le : RawEncoding::kS16le);
  } else {
    m.open_sndfile();
  }
  if (m.declared_frames > 0) m.check_length(m.declared_frames);
}

AudioFileReader::AudioFileReader(std::span<const std::byte> bytes, std::string_view name,
                                 int max_seconds)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.name = std::string(name);
  m.max_seconds = max_seconds;
  if (bytes.empty()) throw Error::invalid_input(m.name + ": empty, expected an audio file");
  m.memory = bytes;
  m.open_sndfile();
  if (m.declared_frames > 0) m.check_length(m.declared_frames);
}

AudioFileReader::~AudioFileReader() = default;

int AudioFileReader::sample_rate() const {
  return impl_->rate;
}

std::optional<std::int64_t> AudioFileReader::expected_samples() const {
  const auto& m = *impl_;
  if (m.declared_frames < 0) return std::nullopt;
  return static_cast<std::int64_t>(
      std::llround(static_cast<double>(m.declared_frames) * kSampleRateHz / m.rate));
}

std::vector<float> AudioFileReader::read_native(std::size_t max_samples) {
  auto& m = *impl_;
  if (m.done || max_samples == 0) return {};
  std::vector<float> samples = m.raw ? m.read_raw(max_samples) : m.read_sndfile(max_samples);
  if (samples.empty()) {
    m.finish();
    return {};
  }
  m.frames_read += static_cast<std::int64_t>(samples.size());
  m.check_length(m.frames_read);
  validate_samples(samples, m.name);
  return samples;
}

std::vector<float> AudioFileReader::read(std::size_t max_samples) {
  auto& m = *impl_;
  if (m.rate == kSampleRateHz) return read_native(max_samples);
  if (!m.resampler) m.resampler = std::make_unique<StreamingResampler>(m.rate, kSampleRateHz);
  // Ask for about max_samples of output; the resampler's delay may make a piece empty, so read
  // until something comes out or the file ends.
  while (!m.done) {
    const auto in = static_cast<std::size_t>(std::max<double>(
        1.0, std::ceil(static_cast<double>(max_samples) * m.rate / kSampleRateHz)));
    std::vector<float> native = read_native(in);
    std::vector<float> out = native.empty() ? m.resampler->finish() : m.resampler->process(native);
    if (!out.empty()) return out;
  }
  return {};
}

namespace {

std::vector<float> read_all(AudioFileReader& reader, const std::string& name) {
  std::vector<float> mono;
  if (const auto n = reader.expected_samples()) {
    mono.reserve(static_cast<std::size_t>(std::clamp<std::int64_t>(*n, 0, 1 << 26)));
  }
  while (true) {
    std::vector<float> piece = reader.read_native(1 << 16);
    if (piece.empty()) break;
    mono.insert(mono.end(), piece.begin(), piece.end());
  }
  if (reader.sample_rate() != kSampleRateHz) {
    const std::size_t native = mono.size();
    try {
      mono = resample(mono, reader.sample_rate(), kSampleRateHz);
    } catch (const Error& e) {
      throw e.with_context(name);
    }
    if (mono.empty()) {
      throw Error::invalid_input(name + ": " + std::to_string(native) + " samples at " +
                                 std::to_string(reader.sample_rate()) +
                                 " Hz are less than one at 16000 Hz");
    }
  }
  return mono;
}

}  // namespace

std::vector<float> load_audio_file(const std::filesystem::path& path, int max_seconds) {
  AudioFileReader reader(path, max_seconds);
  return read_all(reader, quoted(path));
}

std::vector<float> load_audio_bytes(std::span<const std::byte> bytes, std::string_view name,
                                    int max_seconds) {
  AudioFileReader reader(bytes, name, max_seconds);
  return read_all(reader, std::string(name));
}

}  // namespace lipsync::audio
