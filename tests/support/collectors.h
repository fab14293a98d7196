// Sinks that keep what the pipeline hands them, for tests: FrameCollector (an offline render's
// frames) and LiveCollector (a live session's frames and signals).
// Thread contract: FrameCollector as FrameSink promises (one write() at a time; read it after the
// render); LiveCollector from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <opencv2/core.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "pipeline/live_session.h"
#include "pipeline/offline_renderer.h"

namespace lipsync::testing {

// Keeps every frame a render writes: its picture (when the format asks for one) and its encoding.
class FrameCollector : public pipeline::FrameSink {
 public:
  explicit FrameCollector(pipeline::SinkFormat format = {}) : format_(format) {}
  pipeline::SinkFormat format() const override { return format_; }
  void write(int index, const cv::Mat& frame, std::vector<std::uint8_t> encoded) override {
    if (index != static_cast<int>(encoded_frames.size())) in_order = false;
    if (format_.needs_image) images.push_back(frame.clone());
    encoded_frames.push_back(std::move(encoded));
  }
  void finish() override { finished = true; }

  std::vector<cv::Mat> images;                            // frame i at i, with needs_image
  std::vector<std::vector<std::uint8_t>> encoded_frames;  // empty ones with FrameEncoding::kNone
  bool in_order = true;                                   // every index was the next one
  bool finished = false;

 private:
  pipeline::SinkFormat format_;
};

// Keeps a live session's frames, its "speech wanted" signals and how it ended.
class LiveCollector : public pipeline::LiveSink {
 public:
  void on_live_frame(pipeline::LiveFrame f) override {
    std::lock_guard lock(mutex_);
    frames_.push_back(std::move(f));
    changed_.notify_all();
  }
  void on_speech_wanted() override {
    std::lock_guard lock(mutex_);
    ++wanted_;
    changed_.notify_all();
  }
  void on_live_ended(const std::optional<Error>& error) override {
    std::lock_guard lock(mutex_);
    ended_ = true;
    error_ = error;
    changed_.notify_all();
  }
  // Waits until `pred` holds (under the lock) or 60 s pass.
  template <class Pred>
  bool wait(Pred pred) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(60), [&] { return pred(); });
  }
  bool wait_for_frames(std::size_t n) {
    return wait([&] { return frames_.size() >= n; });
  }
  std::vector<pipeline::LiveFrame> frames() {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  std::size_t count_locked() const { return frames_.size(); }
  bool ended_locked() const { return ended_; }
  // Speech frames that came with their own picture.
  int shown_speech_locked() const {
    int n = 0;
    for (const auto& f : frames_) n += f.state == pipeline::LiveState::kSpeaking && !f.late;
    return n;
  }
  int wanted_locked() const { return wanted_; }
  std::optional<Error> error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<pipeline::LiveFrame> frames_;
  int wanted_ = 0;
  bool ended_ = false;
  std::optional<Error> error_;
};

}  // namespace lipsync::testing
