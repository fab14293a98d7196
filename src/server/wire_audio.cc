#include "server/wire_audio.h"

#include <span>

#include "audio/audio_file.h"
#include "audio/mel_spectrogram.h"
#include "core/error.h"
#include "server/input_limits.h"

namespace lipsync::server {

using v1::StreamConfig;

int check_wire_config(int format, int encoding, int sample_rate) {
  if (!StreamConfig::Format_IsValid(format)) {
    throw Error::invalid_input("format " + std::to_string(format) +
                               " is not defined; expected FORMAT_JPEG (0), FORMAT_PNG (1) or "
                               "FORMAT_RAW (2)");
  }
  if (!StreamConfig::Encoding_IsValid(encoding)) {
    throw Error::invalid_input("encoding " + std::to_string(encoding) +
                               " is not defined; expected ENCODING_S16LE (0) or "
                               "ENCODING_F32LE (1)");
  }
  if (sample_rate == 0) return audio::kSampleRateHz;
  return static_cast<int>(
      limits::checked(limits::kSpeechRate, "sample_rate (0: 16000)", sample_rate));
}

pipeline::FrameEncoding frame_encoding_for(StreamConfig::Format format) {
  switch (format) {
    case StreamConfig::FORMAT_RAW:
      return pipeline::FrameEncoding::kNone;
    case StreamConfig::FORMAT_PNG:
      return pipeline::FrameEncoding::kPng;
    default:
      return pipeline::FrameEncoding::kJpeg;
  }
}

void WireAudio::configure(bool s16, int sample_rate) {
  s16_ = s16;
  rate_ = sample_rate;
  resampler_.reset();
  if (rate_ != audio::kSampleRateHz) {
    resampler_ = std::make_unique<audio::StreamingResampler>(rate_, audio::kSampleRateHz);
  }
}

std::vector<float> WireAudio::decode(const std::string& bytes, std::string_view what) {
  const std::size_t width = s16_ ? 2 : 4;
  std::string data = std::move(partial_);
  data += bytes;
  const std::size_t whole = data.size() - data.size() % width;
  partial_ = data.substr(whole);
  std::vector<float> samples =
      audio::decode_raw(std::as_bytes(std::span(data.data(), whole)),
                        s16_ ? audio::RawEncoding::kS16le : audio::RawEncoding::kF32le, what);
  // A piece may hold no whole sample yet; only what it holds is checked.
  if (!samples.empty()) audio::validate_samples(samples, what);
  if (resampler_) samples = resampler_->process(samples);
  return samples;
}

std::vector<float> WireAudio::finish(std::string_view what) {
  if (!partial_.empty()) {
    throw Error::invalid_input("the " + std::string(what) + " ends with " +
                               std::to_string(partial_.size()) + " bytes of an incomplete sample");
  }
  if (!resampler_) return {};
  std::vector<float> tail = resampler_->finish();
  resampler_ = std::make_unique<audio::StreamingResampler>(rate_, audio::kSampleRateHz);
  return tail;
}

}  // namespace lipsync::server
