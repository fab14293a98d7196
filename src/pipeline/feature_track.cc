#include "pipeline/feature_track.h"

#include <algorithm>
#include <string>
#include <utility>

#include "audio/mel_constants.h"
#include "audio/mel_spectrogram.h"
#include "audio/mel_windows.h"
#include "contract/model_family.h"
#include "core/check.h"
#include "core/error.h"
#include "core/stopwatch.h"

namespace lipsync::pipeline {
namespace {

using audio::kHopSamples;
using audio::kMelBands;
using audio::kWindowFrames;
using contract::kFeatureSize;

// Half the FFT frame: mel frame t reads signal samples [200 t - 400, 200 t + 400).
constexpr std::int64_t kHalfFrame = audio::kFftSize / 2;
// Mel frames kept before the first one still to compute, so that a trimmed sample buffer never
// hands that frame the start-of-signal special cases (frame 3 of a buffer starts at sample 200).
constexpr int kMelFrameMargin = 3;
// Frame i uses padded feature rows i - 8 .. i + 7.
constexpr int kRowsBefore = contract::kAudioContextRows / 2;
constexpr int kRowsAfter = contract::kAudioContextRows / 2 - 1;

const audio::MelSpectrogram& mel_spectrogram() {
  static const audio::MelSpectrogram mel;
  return mel;
}

// Drops the first `count` items of v (each `width` floats). Callers drop only when that frees at
// least half of v, so trimming costs amortised O(1) per item.
void drop_front(std::vector<float>& v, std::size_t count, std::size_t width) {
  v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(count * width));
}

}  // namespace

ClipFeatures encode_clip_features(std::span<const float> samples,
                                  const infer::AudioEncoder& encoder,
                                  const audio::AudioOptions& options, ClipFeatureTimings* timings) {
  ClipFeatureTimings local;
  ClipFeatureTimings& t = timings != nullptr ? *timings : local;
  core::Stopwatch stage;
  const audio::Mel mel = mel_spectrogram().compute(samples, options);
  t.mel_ms = stage.elapsed_ms();
  stage.reset();
  const audio::MelWindows windows(mel, options);
  t.windows_ms = stage.elapsed_ms();
  stage.reset();
  ClipFeatures out;
  out.windows = windows.count();
  out.values.resize(static_cast<std::size_t>(out.windows) * kFeatureSize);
  encoder.encode(windows, 0, out.windows, out.values);
  t.encoder_ms = stage.elapsed_ms();
  return out;
}

FeatureTrack::FeatureTrack(const infer::AudioEncoder& encoder, const audio::AudioOptions& options)
    : encoder_(&encoder), options_(options) {
  options_.validate();
}

FeatureTrack FeatureTrack::from_features(ClipFeatures features) {
  if (features.windows < 1 ||
      features.values.size() != static_cast<std::size_t>(features.windows) * kFeatureSize) {
    throw Error::invalid_input("features: expected [L][512] float32 with L >= 1, got " +
                               std::to_string(features.values.size()) + " values for " +
                               std::to_string(features.windows) + " windows");
  }
  FeatureTrack track;
  track.finished_ = true;
  track.windows_final_ = features.windows;
  track.windows_total_ = features.windows;
  track.features_ = std::move(features.values);
  return track;
}

FeatureTrack::FeatureTrack(FeatureTrack&&) noexcept = default;
FeatureTrack& FeatureTrack::operator=(FeatureTrack&&) noexcept = default;
FeatureTrack::~FeatureTrack() = default;

void FeatureTrack::append(std::span<const float> samples) {
  LIPSYNC_CHECK(!finished_);
  LIPSYNC_CHECK(encoder_ != nullptr);
  if (samples.empty()) return;
  audio::validate_samples(samples, "audio chunk");
  samples_.insert(samples_.end(), samples.begin(), samples.end());
  samples_total_ += static_cast<std::int64_t>(samples.size());
  update(false);
}

void FeatureTrack::finish() {
  LIPSYNC_CHECK(!finished_);
  if (samples_total_ < audio::kMinSamples) {
    throw Error::invalid_input(
        "audio stream: " + std::to_string(samples_total_) + " samples is too short; at least " +
        std::to_string(audio::kMinSamples) + " (16 mel frames, 0.1875 s at 16 kHz) are needed");
  }
  update(true);
  finished_ = true;
}

void FeatureTrack::update(bool at_end) {
  // Mel frames that can no longer change: those whose samples have all arrived (no end
  // padding), or every frame at the end of the stream.
  const int mel_frames_now =
      audio::MelSpectrogram::frames_for_samples(static_cast<std::size_t>(samples_total_));
  int mel_final = mel_frames_now;
  if (!at_end) {
    mel_final = samples_total_ >= kHalfFrame
                    ? static_cast<int>((samples_total_ - kHalfFrame) / kHopSamples) + 1
                    : 0;
    mel_final = std::min(mel_final, mel_frames_now);
  }
  if (mel_final > mel_final_) {
    core::Stopwatch sw;
    const int first_in_buffer = mel_final_ - static_cast<int>(samples_base_ / kHopSamples);
    LIPSYNC_CHECK(samples_base_ == 0 || first_in_buffer >= kMelFrameMargin);
    const int count = mel_final - mel_final_;
    const std::size_t old = mel_.size();
    mel_.resize(old + static_cast<std::size_t>(count) * kMelBands);
    mel_spectrogram().compute_frames(samples_, first_in_buffer, count,
                                     std::span<float>(mel_).subspan(old));
    mel_final_ = mel_final;
    timings_.mel_ms += sw.elapsed_ms();
  }

  // Windows that can no longer change: every window at the end; before it, window k needs its
  // 16 rows final and unclamped, and must exist for any final length (L grows with T).
  if (at_end) {
    windows_total_ = audio::MelWindows::count_for_frames(mel_final_);
    encode_windows(windows_total_, mel_final_);
  } else if (mel_final_ >= kWindowFrames) {
    const int limit = audio::MelWindows::count_for_frames(mel_final_);
    int end = windows_final_;
    while (end < limit && audio::MelWindows::unclamped_start(end) + kWindowFrames <= mel_final_) {
      ++end;
    }
    encode_windows(end, mel_final_);
  }
  trim();
}

void FeatureTrack::encode_windows(int end, int mel_frames) {
  const int count = end - windows_final_;
  if (count <= 0) return;
  core::Stopwatch sw;
  constexpr std::size_t kWindow = audio::MelWindows::kPackedWindowSize;
  std::vector<float> packed(static_cast<std::size_t>(count) * kWindow);
  for (int i = 0; i < count; ++i) {
    const int start = audio::MelWindows::start_for(windows_final_ + i, mel_frames);
    LIPSYNC_CHECK(start >= mel_base_);
    LIPSYNC_CHECK_LE(start + kWindowFrames, mel_final_);
    audio::pack_window(mel_.data() + static_cast<std::size_t>(start - mel_base_) * kMelBands,
                       packed.data() + static_cast<std::size_t>(i) * kWindow);
  }
  timings_.windows_ms += sw.elapsed_ms();
  sw.reset();
  const std::size_t old = features_.size();
  features_.resize(old + static_cast<std::size_t>(count) * kFeatureSize);
  encoder_->encode_packed(packed, count, std::span<float>(features_).subspan(old));
  windows_final_ = end;
  timings_.encoder_ms += sw.elapsed_ms();
}

void FeatureTrack::trim() {
  // Samples: the next mel frame to compute reads from 200 t - 400; keep kMelFrameMargin frames
  // more so the buffer's own start never matters.
  const int keep_frame = mel_final_ - kMelFrameMargin;
  if (keep_frame > 0) {
    const std::int64_t new_base = static_cast<std::int64_t>(keep_frame) * kHopSamples;
    const std::int64_t drop = new_base - samples_base_;
    if (drop > 0 && static_cast<std::size_t>(drop) <= samples_.size() &&
        static_cast<std::size_t>(drop) >= samples_.size() / 2) {
      drop_front(samples_, static_cast<std::size_t>(drop), 1);
      samples_base_ = new_base;
    }
  }
  // Mel rows: every later window starts at or after the last encoded window's start (a clamped
  // start T - 16 is at least that, because that window fitted).
  if (windows_final_ > 0) {
    const int keep_row = audio::MelWindows::unclamped_start(windows_final_ - 1);
    const int drop = keep_row - mel_base_;
    // (A track made from whole-clip features holds no mel rows at all.)
    if (drop > 0 && static_cast<std::size_t>(drop) * kMelBands <= mel_.size() &&
        static_cast<std::size_t>(drop) * kMelBands >= mel_.size() / 2) {
      drop_front(mel_, static_cast<std::size_t>(drop), kMelBands);
      mel_base_ = keep_row;
    }
  }
  // Features: frame i reads features from i - 9 on.
  const int keep_feature = std::min(released_before_ - kRowsBefore - 1, windows_final_);
  const int drop = keep_feature - features_base_;
  if (drop > 0 && static_cast<std::size_t>(drop) * kFeatureSize >= features_.size() / 2) {
    drop_front(features_, static_cast<std::size_t>(drop), kFeatureSize);
    features_base_ = keep_feature;
  }
}

int FeatureTrack::ready_frames() const {
  if (finished_) return windows_total_ + 2;
  // Frame i reads padded rows up to i + 7, i.e. feature i + 6.
  return std::max(0, windows_final_ - kRowsAfter + 1);
}

const float* FeatureTrack::padded_row(int row) const {
  // row indexes [f0, f0, f1, ..., fL-1, fL-1]; outside it the row is zero.
  const int padded_rows = finished_ ? windows_total_ + 2 : windows_final_ + 1;
  if (row < 0 || row >= padded_rows) return nullptr;
  int feature = std::max(row - 1, 0);
  if (finished_) feature = std::min(feature, windows_total_ - 1);
  LIPSYNC_CHECK(feature >= features_base_ && feature < windows_final_);
  return features_.data() + static_cast<std::size_t>(feature - features_base_) * kFeatureSize;
}

void FeatureTrack::copy_rows(int first_row, int count, float* dst) const {
  for (int r = 0; r < count; ++r, dst += kFeatureSize) {
    const float* src = padded_row(first_row + r);
    if (src == nullptr) {
      std::fill_n(dst, kFeatureSize, 0.0f);
    } else {
      std::copy_n(src, kFeatureSize, dst);
    }
  }
}

void FeatureTrack::frame_audio(int frame, std::span<float> out) const {
  LIPSYNC_CHECK(frame >= released_before_);
  LIPSYNC_CHECK_LT(frame, ready_frames());
  LIPSYNC_CHECK_EQ(out.size(), contract::kAudioInputSize);
  copy_rows(frame - kRowsBefore, contract::kAudioContextRows, out.data());
}

std::shared_ptr<const FrameAudioRows> FeatureTrack::frame_rows(int first, int count) const {
  LIPSYNC_CHECK(first >= released_before_ && count >= 1);
  LIPSYNC_CHECK_LE(first + count, ready_frames());
  auto rows = std::make_shared<FrameAudioRows>();
  rows->first_ = first;
  rows->count_ = count;
  const int n = count + contract::kAudioContextRows - 1;
  rows->rows_.resize(static_cast<std::size_t>(n) * kFeatureSize);
  copy_rows(first - kRowsBefore, n, rows->rows_.data());
  return rows;
}

void FrameAudioRows::write(int frame, std::span<float> out) const {
  LIPSYNC_CHECK(frame >= first_ && frame < first_ + count_);
  LIPSYNC_CHECK_EQ(out.size(), contract::kAudioInputSize);
  // Frame i's 16 rows are consecutive here, and [16][512] read as [32][16][16] is the tensor.
  std::copy_n(rows_.data() + static_cast<std::size_t>(frame - first_) * kFeatureSize,
              contract::kAudioInputSize, out.data());
}

ClipFeatureTimings FeatureTrack::take_timings() {
  return std::exchange(timings_, ClipFeatureTimings{});
}

void FeatureTrack::release_before(int frame) {
  if (frame <= released_before_) return;
  released_before_ = frame;
  trim();
}

std::size_t FeatureTrack::buffered_values() const {
  return samples_.size() + mel_.size() + features_.size();
}

}  // namespace lipsync::pipeline
