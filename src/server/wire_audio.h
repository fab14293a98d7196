// WireAudio: the audio (or speech) bytes a client streams, decoded chunk by chunk for Stream
// and Live: s16le or f32le, a sample may be split across chunks, and other rates are resampled
// to 16 kHz as they stream. Also the config checks and the format mapping both calls share.
// Thread contract: one thread at a time (a call's strand).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "audio/streaming_resampler.h"
#include "lipsync/v1/lipsync.pb.h"
#include "pipeline/frame_producer.h"

namespace lipsync::server {

// Checks a config's format, encoding and sample rate (Error::Code::kInvalidInput naming the
// field otherwise) and returns the rate (0 means 16000).
int check_wire_config(int format, int encoding, int sample_rate);

// How the producer encodes frames for a wire format.
pipeline::FrameEncoding frame_encoding_for(v1::StreamConfig::Format format);

class WireAudio {
 public:
  // Before the first chunk.
  void configure(bool s16, int sample_rate);
  // The whole samples of `bytes` (after any bytes left from the last chunk), validated and at
  // 16 kHz; `what` names the chunk in errors.
  std::vector<float> decode(const std::string& bytes, std::string_view what);
  // The end of a piece of audio (`what` ends): an incomplete sample left is an error; returns
  // what the resampler still holds, and starts afresh for the next piece.
  std::vector<float> finish(std::string_view what);
  // Forgets bytes of an incomplete sample (the piece was dropped).
  void drop_partial() { partial_.clear(); }

 private:
  bool s16_ = true;
  int rate_ = 16000;
  std::unique_ptr<audio::StreamingResampler> resampler_;
  std::string partial_;  // bytes of a sample split across chunks
};

}  // namespace lipsync::server
