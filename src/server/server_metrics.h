// ServerMetrics: what the server exports on /metrics (Prometheus text format): requests by
// method and gRPC code, frames produced, per-stage latency histograms and generator batch sizes.
// Gauges (queue depth, active streams, loaded models, cache bytes) are read from their owners
// when rendering.
// Thread contract: every method may be called from many threads at once.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace lipsync::server {

class ServerMetrics {
 public:
  void count_request(const std::string& method, const std::string& code) {
    std::lock_guard lock(mutex_);
    ++requests_[{method, code}];
  }
  void add_frames(std::int64_t n) { frames_ += n; }
  // One observation of a stage (decode, mel, windows, encoder, generator, composite, encode).
  void observe_ms(const std::string& stage, double ms) {
    std::lock_guard lock(mutex_);
    stages_[stage].add(ms / 1000.0);
  }
  void observe_batch(int size) {
    std::lock_guard lock(mutex_);
    batches_.add(size);
  }
  std::map<std::pair<std::string, std::string>, std::int64_t> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::int64_t frames() const { return frames_.load(); }

  // The counters and histograms, in the Prometheus text format.
  std::string render() const {
    std::lock_guard lock(mutex_);
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
      out << name << "_sum" << plain << " " << sum << "\n";
      out << name << "_count" << plain << " " << count << "\n";
    }
    std::vector<double> bounds;
    std::vector<std::int64_t> counts;
    double sum = 0;
    std::int64_t count = 0;
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::int64_t> requests_;
  std::map<std::string, Histogram> stages_;
  Histogram batches_{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
  std::atomic<std::int64_t> frames_{0};
};

}  // namespace lipsync::server
