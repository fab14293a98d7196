// ServerMetrics: what the server exports on /metrics (Prometheus text format): requests by
// method and gRPC code, frames produced, per-stage latency histograms and generator batch sizes.
// ReadMetrics holds the gauges (queue depth, active streams, loaded models, cache bytes), read
// from their owners at each scrape, each declared once.
// Thread contract: every method may be called from many threads at once.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/mutex.h"

namespace lipsync::server {

// Sums of what happened in the last kSeconds seconds, in one-second buckets (the load report's
// figures). Not thread-safe: its owner locks.
class RecentSum {
 public:
  static constexpr int kSeconds = 10;
  using Clock = std::chrono::steady_clock;
  void add(double value, Clock::time_point now = Clock::now()) {
    const std::int64_t second = second_of(now);
    const auto i = static_cast<std::size_t>(second % kSeconds);
    if (stamp_[i] != second) {
      stamp_[i] = second;
      sum_[i] = 0;
    }
    sum_[i] += value;
  }
  // The sum over the seconds [now - kSeconds, now].
  double sum(Clock::time_point now = Clock::now()) const {
    const std::int64_t second = second_of(now);
    double total = 0;
    for (std::size_t i = 0; i < sum_.size(); ++i) {
      if (stamp_[i] > second - kSeconds && stamp_[i] <= second) total += sum_[i];
    }
    return total;
  }

 private:
  static std::int64_t second_of(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }
  std::array<double, kSeconds> sum_{};
  std::array<std::int64_t, kSeconds> stamp_{};  // the second each bucket holds
};

// A value as /metrics writes it: whole numbers (counts, bytes) in full, others in the fewest
// digits that read back as the same double.
std::string metric_value_text(double value);

// One sample of a metric family: its labels (`model="demo"`, or empty) and value.
struct MetricSample {
  std::string labels;
  double value = 0;
};

// The metrics read from their owners at each scrape (gauges, and the counters other objects
// keep). Each family is registered once, with its name, type and help, and a function that
// reads its samples from a Snapshot the server takes once per scrape, so that the families
// written from one snapshot agree with each other (lipsync_load and lipsync_accepting).
// Thread contract: registered before the first render(); render() from any thread.
template <class Snapshot>
class ReadMetrics {
 public:
  using Read = std::function<void(const Snapshot&, std::vector<MetricSample>&)>;

  // A family of any number of samples; `type` is "gauge" or "counter".
  ReadMetrics& family(std::string name, std::string type, std::string help, Read read) {
    families_.push_back({std::move(name), std::move(type), std::move(help), std::move(read)});
    return *this;
  }
  // A gauge of one sample without labels.
  ReadMetrics& gauge(std::string name, std::string help,
                     std::function<double(const Snapshot&)> value) {
    return family(std::move(name), "gauge", std::move(help),
                  [value = std::move(value)](const Snapshot& s, std::vector<MetricSample>& out) {
                    out.push_back({"", value(s)});
                  });
  }

  // Every family, in the order registered, in the Prometheus text format.
  void render(const Snapshot& snapshot, std::ostream& out) const {
    std::vector<MetricSample> samples;
    for (const Family& f : families_) {
      out << "# HELP " << f.name << " " << f.help << "\n# TYPE " << f.name << " " << f.type << "\n";
      samples.clear();
      f.read(snapshot, samples);
      for (const MetricSample& s : samples) {
        out << f.name;
        if (!s.labels.empty()) out << "{" << s.labels << "}";
        out << " " << metric_value_text(s.value) << "\n";
      }
    }
  }
  std::size_t size() const { return families_.size(); }

 private:
  struct Family {
    std::string name;
    std::string type;
    std::string help;
    Read read;
  };
  std::vector<Family> families_;
};

class ServerMetrics {
 public:
  void count_request(const std::string& method, const std::string& code) {
    core::MutexLock lock(mutex_);
    ++requests_[{method, code}];
  }
  void add_frames(std::int64_t n) { frames_ += n; }
  // One observation of a stage (decode, mel, windows, encoder, generator, composite, encode).
  void observe_ms(const std::string& stage, double ms) {
    core::MutexLock lock(mutex_);
    stages_[stage].add(ms / 1000.0);
    if (stage == "generator") recent_generator_ms_.add(ms);
  }
  // The last RecentSum::kSeconds: generator time (ms, summed over every model), live frames
  // emitted and those of them late.
  struct Recent {
    double generator_ms = 0;
    double live_frames = 0;
    double live_late = 0;
  };
  Recent recent() const {
    core::MutexLock lock(mutex_);
    return {recent_generator_ms_.sum(), recent_live_frames_.sum(), recent_live_late_.sum()};
  }
  void observe_batch(int size) {
    core::MutexLock lock(mutex_);
    batches_.add(size);
  }
  std::map<std::pair<std::string, std::string>, std::int64_t> requests() const {
    core::MutexLock lock(mutex_);
    return requests_;
  }

  // Live sessions: one emitted frame (its state name, late, whether an underrun starts here),
  // its emit jitter, an utterance's speech latency, an interrupt.
  // A speaking frame also counts for its model's on-time fraction.
  void count_live_frame(const std::string& model, const std::string& state, bool late,
                        bool underrun_starts) {
    core::MutexLock lock(mutex_);
    ++live_frames_[state];
    live_late_ += late;
    recent_live_frames_.add(1);
    if (late) recent_live_late_.add(1);
    live_underruns_ += underrun_starts;
    if (state == "speaking") {
      auto& [frames, late_frames] = speech_frames_[model];
      ++frames;
      late_frames += late;
    }
  }
  void observe_live_jitter_ms(double ms) {
    core::MutexLock lock(mutex_);
    live_jitter_.add(ms / 1000.0);
  }
  void observe_interrupt_ack_ms(double ms) {
    core::MutexLock lock(mutex_);
    interrupt_ack_.add(ms / 1000.0);
  }
  void observe_speech_latency_ms(double ms) {
    core::MutexLock lock(mutex_);
    speech_latency_.add(ms / 1000.0);
  }
  void count_interrupt() {
    core::MutexLock lock(mutex_);
    ++live_interrupts_;
  }
  std::int64_t frames() const { return frames_.load(); }

  // The counters and histograms, in the Prometheus text format.
  std::string render() const {
    core::MutexLock lock(mutex_);
    std::ostringstream out;
    out << "# HELP lipsync_requests_total RPCs finished, by method and gRPC status code.\n"
           "# TYPE lipsync_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      out << "lipsync_requests_total{method=\"" << key.first << "\",code=\"" << key.second << "\"} "
          << n << "\n";
    }
    out << "# HELP lipsync_frames_total Frames produced.\n# TYPE lipsync_frames_total counter\n"
        << "lipsync_frames_total " << frames_.load() << "\n";
    out << "# HELP lipsync_stage_seconds Time per stage of a request or batch.\n"
           "# TYPE lipsync_stage_seconds histogram\n";
    for (const auto& [stage, h] : stages_) h.render(out, "lipsync_stage_seconds", "stage", stage);
    out << "# HELP lipsync_batch_size Frames per generator batch.\n"
           "# TYPE lipsync_batch_size histogram\n";
    batches_.render(out, "lipsync_batch_size", "", "");
    out << "# HELP lipsync_live_frames_total Frames emitted by live sessions, by state.\n"
           "# TYPE lipsync_live_frames_total counter\n";
    for (const auto& [state, n] : live_frames_) {
      out << "lipsync_live_frames_total{state=\"" << state << "\"} " << n << "\n";
    }
    out << "# HELP lipsync_live_late_frames_total Live frames whose picture was not ready on "
           "their tick.\n# TYPE lipsync_live_late_frames_total counter\n"
        << "lipsync_live_late_frames_total " << live_late_ << "\n";
    out << "# HELP lipsync_live_speech_frames_total Speaking frames emitted by live sessions, by "
           "model.\n# TYPE lipsync_live_speech_frames_total counter\n";
    for (const auto& [model, counts] : speech_frames_) {
      out << "lipsync_live_speech_frames_total{model=\"" << model << "\"} " << counts.first << "\n";
    }
    out << "# HELP lipsync_live_speech_late_frames_total Speaking frames whose picture was not "
           "ready on their tick (1 - late/frames is the on-time fraction), by model.\n"
           "# TYPE lipsync_live_speech_late_frames_total counter\n";
    for (const auto& [model, counts] : speech_frames_) {
      out << "lipsync_live_speech_late_frames_total{model=\"" << model << "\"} " << counts.second
          << "\n";
    }
    out << "# HELP lipsync_live_underruns_total Times a live session's speech ran dry.\n"
           "# TYPE lipsync_live_underruns_total counter\n"
        << "lipsync_live_underruns_total " << live_underruns_ << "\n";
    out << "# HELP lipsync_live_interrupts_total Interrupts of live sessions.\n"
           "# TYPE lipsync_live_interrupts_total counter\n"
        << "lipsync_live_interrupts_total " << live_interrupts_ << "\n";
    out << "# HELP lipsync_live_speech_latency_seconds From an utterance's first speech sample "
           "to its first frame's tick.\n# TYPE lipsync_live_speech_latency_seconds histogram\n";
    speech_latency_.render(out, "lipsync_live_speech_latency_seconds", "", "");
    out << "# HELP lipsync_live_interrupt_ack_seconds From an interrupt reaching a session to "
           "the emit of its playback_finished.\n"
           "# TYPE lipsync_live_interrupt_ack_seconds histogram\n";
    interrupt_ack_.render(out, "lipsync_live_interrupt_ack_seconds", "", "");
    out << "# HELP lipsync_live_emit_jitter_seconds Live frames' emit time minus their tick.\n"
           "# TYPE lipsync_live_emit_jitter_seconds histogram\n";
    live_jitter_.render(out, "lipsync_live_emit_jitter_seconds", "", "");
    return out.str();
  }

 private:
  struct Histogram {
    explicit Histogram(std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5, 1, 2.5, 5, 10})
        : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
    void add(double v) {
      std::size_t i = 0;
      while (i < bounds.size() && v > bounds[i]) ++i;
      ++counts[i];
      sum += v;
      ++count;
    }
    void render(std::ostringstream& out, const char* name, const char* label,
                const std::string& value) const {
      const std::string l = *label ? std::string(label) + "=\"" + value + "\"," : "";
      std::int64_t cumulative = 0;
      for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += counts[i];
        out << name << "_bucket{" << l << "le=\"" << bounds[i] << "\"} " << cumulative << "\n";
      }
      out << name << "_bucket{" << l << "le=\"+Inf\"} " << count << "\n";
      const std::string plain = *label ? "{" + std::string(label) + "=\"" + value + "\"}" : "";
      // Every digit: with an ostream's 6, a sum of seconds over a day's uptime moves in whole
      // seconds, and its rate over a scrape interval is noise.
      out << name << "_sum" << plain << " " << metric_value_text(sum) << "\n";
      out << name << "_count" << plain << " " << count << "\n";
    }
    std::vector<double> bounds;
    std::vector<std::int64_t> counts;
    double sum = 0;
    std::int64_t count = 0;
  };

  mutable core::Mutex mutex_;
  RecentSum recent_generator_ms_ LIPSYNC_GUARDED_BY(mutex_);
  RecentSum recent_live_frames_ LIPSYNC_GUARDED_BY(mutex_);
  RecentSum recent_live_late_ LIPSYNC_GUARDED_BY(mutex_);
  std::map<std::pair<std::string, std::string>, std::int64_t> requests_ LIPSYNC_GUARDED_BY(mutex_);
  std::map<std::string, Histogram> stages_ LIPSYNC_GUARDED_BY(mutex_);
  Histogram batches_ LIPSYNC_GUARDED_BY(mutex_){{1, 2, 4, 8, 16, 32, 64, 128, 256}};
  std::atomic<std::int64_t> frames_{0};
  std::map<std::string, std::int64_t> live_frames_ LIPSYNC_GUARDED_BY(mutex_);
  std::int64_t live_late_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  // By model: speaking frames emitted, and how many of them were late.
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> speech_frames_
      LIPSYNC_GUARDED_BY(mutex_);
  std::int64_t live_underruns_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  std::int64_t live_interrupts_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  Histogram speech_latency_ LIPSYNC_GUARDED_BY(mutex_){{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10}};
  Histogram interrupt_ack_ LIPSYNC_GUARDED_BY(mutex_){
      {0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.2, 0.5}};
  Histogram live_jitter_ LIPSYNC_GUARDED_BY(mutex_){
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08}};
};

}  // namespace lipsync::server
