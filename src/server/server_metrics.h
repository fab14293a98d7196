// ServerMetrics: the counters the server exports (requests by method and code, frames produced,
// active streams). Kept small and lock-free; the HTTP /metrics endpoint renders them.
// Thread contract: every method may be called from many threads at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace lipsync::server {

class ServerMetrics {
 public:
  void count_request(const std::string& method, const std::string& code) {
    std::lock_guard lock(mutex_);
    ++requests_[{method, code}];
  }
  void add_frames(std::int64_t n) { frames_ += n; }
  std::map<std::pair<std::string, std::string>, std::int64_t> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::int64_t frames() const { return frames_.load(); }

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::int64_t> requests_;
  std::atomic<std::int64_t> frames_{0};
};

}  // namespace lipsync::server
