#include "server/call_tracker.h"

#include <vector>

namespace lipsync::server {

std::uint64_t CallTracker::add(EndFunction end) {
  std::lock_guard lock(mutex_);
  if (closed_) return 0;
  const std::uint64_t id = next_id_++;
  calls_.emplace(id, std::move(end));
  return id;
}

void CallTracker::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  if (calls_.erase(id) > 0 && calls_.empty()) idle_.notify_all();
}

void CallTracker::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool CallTracker::wait_idle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  return idle_.wait_until(lock, deadline, [&] { return calls_.empty(); });
}

void CallTracker::end_all(const grpc::Status& status) {
  std::vector<EndFunction> ends;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, end] : calls_) ends.push_back(end);
  }
  for (auto& end : ends) end(status);
}

int CallTracker::active() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(calls_.size());
}

}  // namespace lipsync::server
