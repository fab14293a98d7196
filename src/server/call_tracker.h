// CallTracker: the gRPC calls in progress, so that shutdown can wait for them for the grace
// period and then end every one that is left with a status of its choosing (UNAVAILABLE), rather
// than leave them to gRPC's own forced cancellation.
// Thread contract: every method may be called from any thread; the end functions are called
// without the tracker's lock held and may call remove().
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace lipsync::server {

class CallTracker {
 public:
  using EndFunction = std::function<void(const grpc::Status&)>;

  // Registers a call; `end` finishes it with a status (idempotent on the call's side). Returns
  // 0 when the tracker is closed (shutting down): the call must be refused.
  std::uint64_t add(EndFunction end);
  void remove(std::uint64_t id);
  // Refuses later calls.
  void close();
  // Waits until no call is left or `deadline`; true when none is left.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  // Ends every call still registered.
  void end_all(const grpc::Status& status);
  int active() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::map<std::uint64_t, EndFunction> calls_;
  std::uint64_t next_id_ = 1;
  bool closed_ = false;
};

}  // namespace lipsync::server
