#include "audio/audio_file.h"

#include <gtest/gtest.h>
#include <sndfile.h>

#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numbers>
#include <random>
#include <span>

#include "audio/mpeg_sniff.h"
#include "audio/resampler.h"
#include "core/error.h"
#include "support/test_data.h"

namespace lipsync::audio {
namespace {

using lipsync::testing::read_f32;
using lipsync::testing::TempDir;
using lipsync::testing::testdata;

// Writes interleaved float frames with libsndfile in the given format.
void write_sound(const std::filesystem::path& path, int format, int rate, int channels,
                 const std::vector<float>& interleaved) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  const sf_count_t frames = static_cast<sf_count_t>(interleaved.size()) / channels;
  ASSERT_EQ(sf_writef_float(f, interleaved.data(), frames), frames);
  sf_close(f);
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<float> sine(double hz, int rate, std::size_t n, float amplitude) {
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = amplitude * static_cast<float>(
                             std::sin(2.0 * std::numbers::pi * hz * static_cast<double>(i) / rate));
  }
  return out;
}

// Runs load_audio_file expecting an Error; returns it.
Error load_error(const std::filesystem::path& path) {
  try {
    (void)load_audio_file(path);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << path;
  return Error::internal("no error");
}

TEST(AudioFile, Int16WavIsSampleOver32768) {
  const auto from_wav = load_audio_file(testdata("audio/speech_a_en.wav"));
  const auto raw = read_f32(testdata("audio/speech_a_en.f32"));
  ASSERT_EQ(from_wav.size(), 76700u);
  EXPECT_EQ(from_wav, raw);  // bit-exact: librosa.load gives int16 / 32768 as well
}

TEST(AudioFile, FloatWavRoundTripsExactly) {
  TempDir dir;
  const auto samples = sine(300.0, 16000, 8000, 0.7f);
  write_sound(dir / "f.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, samples);
  EXPECT_EQ(load_audio_file(dir / "f.wav"), samples);
}

TEST(AudioFile, Pcm24WavKeepsFullPrecision) {
  TempDir dir;
  std::vector<int> top24(4000);  // sf_writef_int stores the top 24 bits of each int
  std::vector<float> expected(top24.size());
  for (std::size_t i = 0; i < top24.size(); ++i) {
    const int v = static_cast<int>(i * 4099 % 16000000) - 8000000;
    top24[i] = v * 256;
    expected[i] = static_cast<float>(v) / 8388608.0f;
  }
  SF_INFO info{};
  info.samplerate = 16000;
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_24;
  SNDFILE* f = sf_open((dir / "p24.wav").c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(sf_writef_int(f, top24.data(), 4000), 4000);
  sf_close(f);
  EXPECT_EQ(load_audio_file(dir / "p24.wav"), expected);
}

TEST(AudioFile, StereoIsAveragedToMono) {
  TempDir dir;
  std::vector<float> interleaved;
  std::vector<float> expected;
  for (int i = 0; i < 5000; ++i) {
    const float l = static_cast<float>((i * 37) % 2000 - 1000) / 32768.0f;
    const float r = static_cast<float>((i * 91) % 3000 - 1500) / 32768.0f;
    interleaved.push_back(l);
    interleaved.push_back(r);
    expected.push_back((l + r) / 2.0f);
  }
  write_sound(dir / "st.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 2, interleaved);
  EXPECT_EQ(load_audio_file(dir / "st.wav"), expected);
}

TEST(AudioFile, Rate44100IsResampledTo16k) {
  TempDir dir;
  const std::size_t n = 44100 * 2;
  write_sound(dir / "hi.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 1,
              sine(440.0, 44100, n, 0.5f));
  const auto out = load_audio_file(dir / "hi.wav");
  ASSERT_EQ(out.size(), 32000u);  // round(88200 * 16000 / 44100)
  const auto expected = sine(440.0, 16000, 32000, 0.5f);
  double max_err = 0;
  for (std::size_t i = 1000; i < 31000; ++i)
    max_err = std::max(max_err, std::abs(static_cast<double>(out[i]) - expected[i]));
  EXPECT_LT(max_err, 1e-3);
}

TEST(AudioFile, FlacAndOggDecode) {
  TempDir dir;
  std::vector<float> samples(16000);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    samples[i] = static_cast<float>(static_cast<int>(i * 131 % 20000) - 10000) / 32768.0f;
  }
  write_sound(dir / "a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, samples);
  EXPECT_EQ(load_audio_file(dir / "a.flac"), samples);  // lossless
  const auto tone = sine(500.0, 16000, 16000, 0.5f);
  write_sound(dir / "a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1, tone);
  const auto ogg = load_audio_file(dir / "a.ogg");
  ASSERT_EQ(ogg.size(), tone.size());
  double max_err = 0;
  for (std::size_t i = 2000; i < 14000; ++i)
    max_err = std::max(max_err, std::abs(static_cast<double>(ogg[i]) - tone[i]));
  EXPECT_LT(max_err, 0.05);  // lossy codec, same waveform
}

// Issue 24: an Ogg/Opus file cut short was "longer than audio.max_seconds (14400 s)": libsndfile
// says SF_COUNT_MAX (length unknown) when the last page is missing.
TEST(AudioFile, Issue24_ACutOggOpusFileIsWhatDecodesNotHours) {
  TempDir dir;
  write_sound(dir / "whole.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, 1,
              sine(300.0, 48000, 3 * 48000, 0.3f));
  std::string bytes = testing::read_text(dir / "whole.opus");
  ASSERT_GT(bytes.size(), 20000u);
  bytes.resize(bytes.size() * 5 / 6);
  write_bytes(dir / "cut.opus", bytes);
  const auto samples = load_audio_file(dir / "cut.opus");
  EXPECT_GT(samples.size(), 16000u);      // more than a second of the three
  EXPECT_LT(samples.size(), 3u * 16000);  // less than the whole
  const auto from_memory =
      load_audio_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "the speech body");
  EXPECT_EQ(from_memory.size(), samples.size());
  // Its length is still checked as it decodes.
  try {
    load_audio_file(dir / "cut.opus", 1);
    ADD_FAILURE() << "a cap of 1 s was not applied";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than audio.max_seconds (1 s)"), std::string::npos)
        << e.what();
  }
}

TEST(MpegSniff, FrameLengthsFollowTheStandard) {
  const auto length = [](std::uint8_t b1, std::uint8_t b2) {
    const std::array<std::byte, 4> h{std::byte{0xFF}, std::byte{b1}, std::byte{b2}, std::byte{0}};
    return mpeg_frame_length(std::span<const std::byte, 4>(h));
  };
  EXPECT_EQ(length(0xFB, 0x90), 417u);  // MPEG-1 layer III, 128 kbit/s, 44.1 kHz
  EXPECT_EQ(length(0xFB, 0x92), 418u);  // the same, padded
  EXPECT_EQ(length(0xF3, 0x88), 288u);  // MPEG-2 layer III, 64 kbit/s, 16 kHz: 72 x 64000 / 16000
  EXPECT_EQ(length(0xFD, 0x94), 480u);  // MPEG-1 layer II, 160 kbit/s, 48 kHz
  EXPECT_EQ(length(0xFF, 0x90), 312u);  // MPEG-1 layer I, 288 kbit/s, 44.1 kHz: 78 words of 4
  EXPECT_EQ(length(0xFB, 0x00), 0u);    // free format
  EXPECT_FALSE(length(0xEB, 0x90));     // reserved version
  EXPECT_FALSE(length(0xF9, 0x90));     // reserved layer
  EXPECT_FALSE(length(0xFB, 0xF0));     // bit rate index 15
  EXPECT_FALSE(length(0xFB, 0x9C));     // sample rate index 3
}

// Issue 24: garbage named .mp3 (or starting like MPEG audio) made libmpg123 print "Note: Trying
// to resync..." on stderr and libsndfile say "possibly a pipe".
TEST(AudioFile, Issue24_AnMp3DecodesAndGarbageThatLooksLikeOneIsRefusedQuietly) {
  TempDir dir;
  const auto tone = sine(440.0, 16000, 32000, 0.4f);
  write_sound(dir / "a.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 16000, 1, tone);
  const auto decoded = load_audio_file(dir / "a.mp3");
  EXPECT_NEAR(static_cast<double>(decoded.size()), 32000.0, 2000.0);
  // The same behind an ID3v2 tag of 300 bytes (zero padding inside the tag).
  std::string tagged = std::string("ID3\x03\x00\x00\x00\x00\x02\x2c", 10) + std::string(300, '\0') +
                       testing::read_text(dir / "a.mp3");
  write_bytes(dir / "tagged.mp3", tagged);
  EXPECT_EQ(load_audio_file(dir / "tagged.mp3").size(), decoded.size());
  std::mt19937 rng(7);
  std::string noise(5000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  noise[0] = 'x';  // not a sync word by chance
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"noise.mp3", noise},
      {"tag_then_noise.mp3",
       std::string("ID3\x03\x00\x00\x00\x00\x00\x0a", 10) + std::string(10, '\0') + noise},
      {"sync_then_noise.bin", std::string("\xff\xfb\x90\x00", 4) + noise}};
  for (const auto& [name, bytes] : bad) {
    write_bytes(dir / name, bytes);
    try {
      load_audio_file(dir / name);
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no MPEG audio frames"), std::string::npos)
          << name << ": " << e.what();
    }
    try {
      load_audio_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "the speech body");
      ADD_FAILURE() << name << " was accepted from memory";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find("possibly a pipe"), std::string::npos) << e.what();
    }
  }
}

// Issue 24 (found by fuzzing): a few samples at a high rate resample to none, and soxr wrote
// through the empty output's null data (a server crash from a 46-byte WAV upload).
TEST(Resample, TooFewSamplesForOneOutputSampleGiveNone) {
  const std::vector<float> one{0.5f};
  EXPECT_TRUE(resample(one, 48000, 16000).empty());
  EXPECT_TRUE(resample(std::vector<float>(5, 0.1f), 192000, 16000).empty());
  EXPECT_EQ(resample(std::vector<float>(6, 0.1f), 48000, 16000).size(), 2u);
  // The fuzzers' inputs, checked in: refused as input, not a crash.
  for (const char* name : {"resample_one_sample_48k.wav", "resample_au_8_frames_665984hz.au"}) {
    const std::string bytes = testing::read_text(std::filesystem::path(LIPSYNC_SOURCE_DIR) /
                                                 "fuzz/regressions/audio_bytes" / name);
    ASSERT_FALSE(bytes.empty()) << name;
    try {
      load_audio_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "the speech body");
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Error::Code::kInvalidInput) << name << ": " << e.what();
    }
  }
}

TEST(AudioFile, RawS16AndF32Buffers) {
  TempDir dir;
  write_bytes(dir / "a.s16", std::string("\x00\x80\xff\x7f\x01\x00\xff\xff", 8));
  EXPECT_EQ(load_audio_file(dir / "a.s16"),
            (std::vector<float>{-1.0f, 32767.0f / 32768.0f, 1.0f / 32768.0f, -1.0f / 32768.0f}));
  const std::vector<float> values{0.25f, -0.5f, 1e-7f};
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  write_bytes(dir / "b.F32", bytes);
  EXPECT_EQ(load_audio_file(dir / "b.F32"), values);
}

TEST(AudioFile, DecodeRawRejectsPartialSamples) {
  const std::byte three[3] = {};
  try {
    (void)decode_raw(three, RawEncoding::kF32le, "raw_audio");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_EQ(e.message(),
              "raw_audio: 3 bytes is not a whole number of float32 samples (4 bytes each)");
  }
  EXPECT_THROW((void)decode_raw(std::span(three, 1), RawEncoding::kS16le, "x"), Error);
}

TEST(AudioFileErrors, MissingFileIsNotFound) {
  const Error e = load_error("/nonexistent/dir/speech.wav");
  EXPECT_EQ(e.code(), Error::Code::kNotFound);
  EXPECT_NE(e.message().find("/nonexistent/dir/speech.wav"), std::string::npos) << e.message();
}

TEST(AudioFileErrors, EachInvalidFileNamesItselfAndTheProblem) {
  TempDir dir;
  // Truncated WAV: header from a real file, half its data.
  const std::string wav = lipsync::testing::read_text(testdata("audio/sine_440.wav"));
  write_bytes(dir / "truncated.wav", wav.substr(0, wav.size() / 2));
  write_bytes(dir / "empty.wav", "");
  write_bytes(dir / "text.wav", "this is not audio at all, just text\n");
  write_bytes(dir / "image.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  write_bytes(dir / "odd.f32", "12345");
  write_bytes(dir / "empty.f32", "");
  std::vector<float> with_nan(4000, 0.1f);
  with_nan[1234] = std::numeric_limits<float>::quiet_NaN();
  write_bytes(dir / "nan.f32",
              std::string(reinterpret_cast<const char*>(with_nan.data()), with_nan.size() * 4));
  std::vector<float> with_inf(4000, 0.1f);
  with_inf[7] = std::numeric_limits<float>::infinity();
  write_sound(dir / "inf.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, with_inf);
  write_sound(dir / "silent.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, {});

  const std::pair<const char*, const char*> cases[] = {
      {"truncated.wav", "truncated"},
      {"empty.wav", "not a readable audio file"},
      {"text.wav", "not a readable audio file"},
      {"image.png", "not a readable audio file"},
      {"odd.f32", "5 bytes is not a whole number of float32 samples"},
      {"empty.f32", "no audio samples"},
      {"nan.f32", "sample 1234 is NaN"},
      {"inf.wav", "sample 7 is infinite"},
      {"silent.wav", "no audio samples"},
      {"", "is a directory"},
  };
  for (const auto& [file, problem] : cases) {
    const auto path = dir / file;
    const Error e = load_error(path);
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput) << file;
    EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(problem), std::string::npos) << file << ": " << e.message();
  }
}

TEST(AudioFileReader, PiecesEqualTheWholeFile) {
  const auto path = testdata("audio/speech_a_en.wav");
  const auto whole = load_audio_file(path);
  AudioFileReader reader(path);
  EXPECT_EQ(reader.expected_samples(), static_cast<std::int64_t>(whole.size()));
  std::vector<float> pieces;
  for (std::size_t n : {1u, 7u, 3000u, 16000u, 100000u}) {
    const auto piece = reader.read(n);
    ASSERT_LE(piece.size(), n);
    pieces.insert(pieces.end(), piece.begin(), piece.end());
  }
  while (true) {
    const auto piece = reader.read(4096);
    if (piece.empty()) break;
    pieces.insert(pieces.end(), piece.begin(), piece.end());
  }
  EXPECT_EQ(pieces, whole);
  EXPECT_TRUE(reader.read(10).empty());
}

TEST(AudioFileReader, OtherRatesAreResampledAsTheyAreRead) {
  TempDir dir;
  const std::size_t n = 44100 * 3;
  write_sound(dir / "hi.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 1,
              sine(440.0, 44100, n, 0.5f));
  const auto whole = load_audio_file(dir / "hi.wav");
  AudioFileReader reader(dir / "hi.wav");
  std::vector<float> pieces;
  while (true) {
    const auto piece = reader.read(5000);
    if (piece.empty()) break;
    pieces.insert(pieces.end(), piece.begin(), piece.end());
  }
  ASSERT_NEAR(double(pieces.size()), double(whole.size()), 2.0);
  double max_diff = 0;
  for (std::size_t i = 100; i + 100 < std::min(pieces.size(), whole.size()); ++i) {
    max_diff = std::max(max_diff, double(std::abs(pieces[i] - whole[i])));
  }
  EXPECT_LT(max_diff, 1e-3);  // the same filter; only chunk edges may differ in the last bits
}

TEST(AudioFileReader, AFileLongerThanTheCapIsRefusedBeforeItIsRead) {
  TempDir dir;
  // A sparse 1 GB .f32 file (4.7 hours of audio) costs no disk and must cost no memory.
  {
    std::ofstream out(dir / "huge.f32", std::ios::binary);
    out.seekp((1LL << 30) - 4);
    out.write("\0\0\0\0", 4);
  }
  try {
    AudioFileReader reader(dir / "huge.f32", 3600);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    EXPECT_NE(e.message().find("audio.max_seconds (3600 s)"), std::string::npos) << e.message();
  }
  EXPECT_THROW((void)load_audio_file(dir / "huge.f32", 3600), Error);
  // A WAV header that says 2 s under a 1 s cap.
  write_sound(dir / "two.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1,
              sine(200, 16000, 32000, 0.1f));
  EXPECT_THROW(AudioFileReader(dir / "two.wav", 1), Error);
  EXPECT_EQ(load_audio_file(dir / "two.wav", 2).size(), 32000u);
}

TEST(AudioFileBytes, AFileInMemoryDecodesAsOnDisk) {
  TempDir dir;
  write_sound(dir / "hi.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 2,
              sine(440.0, 44100, 44100 * 2, 0.5f));
  write_sound(dir / "a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1,
              sine(300.0, 16000, 16000, 0.3f));
  write_sound(dir / "a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1,
              sine(300.0, 16000, 16000, 0.3f));
  for (const std::filesystem::path& path :
       {testdata("audio/speech_a_en.wav"), dir / "hi.wav", dir / "a.flac", dir / "a.ogg"}) {
    const std::string bytes = lipsync::testing::read_text(path);
    const auto from_memory =
        load_audio_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "the body");
    EXPECT_EQ(from_memory, load_audio_file(path)) << path;
    EXPECT_FALSE(from_memory.empty()) << path;
  }
}

TEST(AudioFileBytes, EachBadBufferNamesTheCallersNameAndTheProblem) {
  const std::string wav = lipsync::testing::read_text(testdata("audio/sine_440.wav"));
  const std::string text = "this is not audio at all, just text\n";
  const std::string truncated = wav.substr(0, wav.size() / 2);
  const std::pair<const std::string*, const char*> cases[] = {{&truncated, "truncated"},
                                                              {&text, "not a readable audio file"}};
  for (const auto& [bytes, problem] : cases) {
    try {
      (void)load_audio_bytes(std::as_bytes(std::span(bytes->data(), bytes->size())), "the body");
      ADD_FAILURE() << "no error for " << problem;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
      EXPECT_EQ(e.message().rfind("the body: ", 0), 0u) << e.message();
      EXPECT_NE(e.message().find(problem), std::string::npos) << e.message();
      EXPECT_EQ(e.message().find(".f32"), std::string::npos) << e.message();  // not a file name
    }
  }
  EXPECT_THROW((void)load_audio_bytes({}, "the body"), Error);
  // The cap is checked on the header, as for a file.
  const std::string two_seconds = [&] {
    TempDir dir;
    write_sound(dir / "two.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1,
                sine(200, 16000, 32000, 0.1f));
    return lipsync::testing::read_text(dir / "two.wav");
  }();
  const auto two = std::as_bytes(std::span(two_seconds.data(), two_seconds.size()));
  EXPECT_THROW((void)load_audio_bytes(two, "the body", 1), Error);
  EXPECT_EQ(load_audio_bytes(two, "the body", 2).size(), 32000u);
}

}  // namespace
}  // namespace lipsync::audio
