// AudioEncoder: the SyncTalk_2D audio encoder (REFERENCE.md §4): mel windows [B,1,80,16] ->
// features [B,512], run in batches of InferOptions::encoder_batch.
// Thread contract: immutable after construction; encode() may be called from many threads at
// once (each call leases its own input buffers from the pool).
#pragma once

#include <filesystem>
#include <span>

#include "audio/mel_windows.h"
#include "core/buffer_pool.h"
#include "infer/infer_options.h"
#include "infer/session.h"

namespace lipsync::infer {

class AudioEncoder {
 public:
  // Loads and checks the model (see Session for the errors).
  AudioEncoder(const std::filesystem::path& model, const InferOptions& options);

  // Features of windows [first, first + count) of `windows`, packed straight from the mel views
  // into the encoder's input, batch_size() windows per run. out: count * 512 floats.
  void encode(const audio::MelWindows& windows, int first, int count, std::span<float> out) const;

  // Features of `count` windows already packed as [count][1][80][16]. out: count * 512 floats.
  void encode_packed(std::span<const float> packed, int count, std::span<float> out) const;

  // Windows per run.
  int batch_size() const { return batch_; }
  const Session& session() const { return session_; }

 private:
  Session session_;
  int batch_;
  mutable core::BufferPool pool_;
};

}  // namespace lipsync::infer
