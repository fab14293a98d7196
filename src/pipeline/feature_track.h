// FeatureTrack: the per-video-frame audio tensors of a clip or of a growing stream (REFERENCE.md
// §4). Features of the encoder windows are edge-padded (first and last repeated once), frame i
// takes padded rows i-8 .. i+7 (zero rows outside), and the [16][512] stack is read as
// [32][16][16]. A clip of L windows gives L + 2 frames.
//
// Streaming: append() takes audio in chunks of any size; ready_frames() says how many leading
// frames can no longer change, given the audio so far (about 0.45 s of audio after a frame's own
// time). finish() marks the end of the stream; the track then holds exactly the whole-clip
// result, bit for bit. Memory stays bounded on a long stream: audio, mel rows and features that
// no future frame needs are dropped, and release_before() lets the consumer drop frames it has
// used.
//
// Thread contract: not thread-safe; one owner (one stream) at a time. The encoder is shared and
// must outlive the track.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "audio/audio_options.h"
#include "infer/audio_encoder.h"

namespace lipsync::pipeline {

// Encoder features of a whole clip: [windows][512].
struct ClipFeatures {
  int windows = 0;
  std::vector<float> values;
};

// Milliseconds of each stage of encode_clip_features (for the server's metrics).
struct ClipFeatureTimings {
  double mel_ms = 0;
  double windows_ms = 0;
  double encoder_ms = 0;
};

// Mel, windows and encoder for a whole clip (the `lipsync features` and server path); fills
// `timings` when given. Throws Error::Code::kInvalidInput for a clip under 3000 samples or with
// NaN/inf samples.
ClipFeatures encode_clip_features(std::span<const float> samples,
                                  const infer::AudioEncoder& encoder,
                                  const audio::AudioOptions& options,
                                  ClipFeatureTimings* timings = nullptr);

// The generator audio inputs of frames [first, first + count), copied out of a FeatureTrack as
// the padded feature rows they read (count + 15 rows of 512): immutable, so scheduler threads can
// write them into generator batches while the track itself moves on.
// Thread contract: immutable; read from any thread.
class FrameAudioRows {
 public:
  int first() const { return first_; }
  int count() const { return count_; }
  // Writes frame `frame`'s [32][16][16] tensor (8192 floats) into out.
  // Requires: first() <= frame < first() + count().
  void write(int frame, std::span<float> out) const;

 private:
  friend class FeatureTrack;
  int first_ = 0;
  int count_ = 0;
  std::vector<float> rows_;  // padded rows first - 8 .. first + count + 6; zero rows as zeros
};

class FeatureTrack {
 public:
  // A streaming track: feed with append(), end with finish().
  FeatureTrack(const infer::AudioEncoder& encoder, const audio::AudioOptions& options);

  // A finished track from whole-clip features [L][512], L >= 1.
  static FeatureTrack from_features(ClipFeatures features);

  FeatureTrack(FeatureTrack&&) noexcept;
  FeatureTrack& operator=(FeatureTrack&&) noexcept;
  ~FeatureTrack();

  // Adds 16 kHz mono samples and encodes every window that became final. Empty chunks are
  // allowed. Throws Error::Code::kInvalidInput for NaN/inf samples (nothing is added then), and
  // kInternal after finish().
  void append(std::span<const float> samples);

  // Ends the stream and computes the rest with the end-of-clip rules. Throws
  // Error::Code::kInvalidInput when fewer than 3000 samples arrived in total.
  void finish();

  bool finished() const { return finished_; }
  // Frames [0, ready_frames()) are final.
  int ready_frames() const;
  // L + 2 once finished; -1 before.
  int total_frames() const { return finished_ ? windows_total_ + 2 : -1; }
  // Encoder windows computed so far (L once finished).
  int windows_encoded() const { return windows_final_; }
  std::int64_t samples_received() const { return samples_total_; }

  // Writes frame i's generator audio input ([32][16][16] = 8192 floats) into out.
  // Requires: released_before() <= i < ready_frames().
  void frame_audio(int frame, std::span<float> out) const;
  // The audio inputs of frames [first, first + count) as an immutable copy of the rows they read.
  // Requires: released_before() <= first, count >= 1, first + count <= ready_frames().
  std::shared_ptr<const FrameAudioRows> frame_rows(int first, int count) const;

  // Time spent in the mel, window packing and the encoder since the last call (streaming
  // metrics); zero for a track made from whole-clip features.
  ClipFeatureTimings take_timings();

  // The consumer no longer needs frames before `frame`; their features may be dropped.
  void release_before(int frame);
  int released_before() const { return released_before_; }

  // Values held in memory (samples + mel + features), to check that a long stream stays flat.
  std::size_t buffered_values() const;

 private:
  FeatureTrack() = default;
  void update(bool at_end);
  void encode_windows(int end, int mel_frames);
  void trim();
  // The feature a padded row reads, or nullptr for a zero row. Requires the row's feature held.
  const float* padded_row(int row) const;
  // Writes `count` padded rows from `first_row` on (512 floats each) into dst.
  void copy_rows(int first_row, int count, float* dst) const;

  const infer::AudioEncoder* encoder_ = nullptr;
  audio::AudioOptions options_;
  bool finished_ = false;

  std::vector<float> samples_;     // samples [samples_base_, samples_total_)
  std::int64_t samples_base_ = 0;  // a multiple of 200
  std::int64_t samples_total_ = 0;

  std::vector<float> mel_;  // mel rows [mel_base_, mel_final_), 80 values each
  int mel_base_ = 0;
  int mel_final_ = 0;

  std::vector<float> features_;  // features [features_base_, windows_final_), 512 each
  int features_base_ = 0;
  int windows_final_ = 0;
  int windows_total_ = 0;  // L, once finished
  int released_before_ = 0;
  ClipFeatureTimings timings_;
};

}  // namespace lipsync::pipeline
