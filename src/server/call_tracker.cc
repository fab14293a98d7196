#include "server/call_tracker.h"

#include <vector>

#include "core/mutex.h"

namespace lipsync::server {

std::uint64_t CallTracker::add(EndFunction end, Kind kind) {
  core::MutexLock lock(mutex_);
  if (closed_ || (requests_closed_ && kind == Kind::kRequest)) return 0;
  const std::uint64_t id = next_id_++;
  calls_.emplace(id, Call{kind, std::move(end)});
  return id;
}

void CallTracker::remove(std::uint64_t id) {
  core::MutexLock lock(mutex_);
  if (calls_.erase(id) > 0) idle_.notify_all();
}

void CallTracker::close() {
  core::MutexLock lock(mutex_);
  closed_ = true;
}

void CallTracker::close_requests() {
  core::MutexLock lock(mutex_);
  requests_closed_ = true;
}

bool CallTracker::none_locked(std::optional<Kind> kind) const {
  if (!kind) return calls_.empty();
  for (const auto& [id, call] : calls_) {
    if (call.kind == *kind) return false;
  }
  return true;
}

bool CallTracker::wait_idle(std::chrono::steady_clock::time_point deadline,
                            std::optional<Kind> kind) {
  core::MutexLock lock(mutex_);
  return idle_.wait_until(lock, deadline,
                          [&]() LIPSYNC_REQUIRES(mutex_) { return none_locked(kind); });
}

void CallTracker::end_all(const grpc::Status& status, std::optional<Kind> kind) {
  std::vector<EndFunction> ends;
  {
    core::MutexLock lock(mutex_);
    for (auto& [id, call] : calls_) {
      if (!kind || call.kind == *kind) ends.push_back(call.end);
    }
  }
  for (auto& end : ends) end(status);
}

int CallTracker::active() const {
  core::MutexLock lock(mutex_);
  return static_cast<int>(calls_.size());
}

}  // namespace lipsync::server
