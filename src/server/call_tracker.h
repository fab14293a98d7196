// CallTracker: the gRPC calls in progress, so that shutdown can wait for them for the grace
// period and then end every one that is left with a status of its choosing (UNAVAILABLE), rather
// than leave them to gRPC's own forced cancellation. A drain does the same for the request calls
// (unary, Stream) alone: the Live calls are sessions, which a drain lets go on.
// Thread contract: every method may be called from any thread; the end functions are called
// without the tracker's lock held and may call remove().
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>

#include "core/mutex.h"

namespace lipsync::server {

class CallTracker {
 public:
  using EndFunction = std::function<void(const grpc::Status&)>;
  enum class Kind {
    kRequest,  // a unary or Stream call
    kSession,  // a Live call: a live session's
  };

  // Registers a call; `end` finishes it with a status (idempotent on the call's side). Returns
  // 0 when the tracker is closed to its kind (shutting down, or draining for a request): the
  // call must be refused.
  std::uint64_t add(EndFunction end, Kind kind = Kind::kRequest);
  void remove(std::uint64_t id);
  // Refuses later calls; close_requests() only the request calls (a drain).
  void close();
  void close_requests();
  // Waits until no call (of `kind`, if given) is left or `deadline`; true when none is left.
  bool wait_idle(std::chrono::steady_clock::time_point deadline,
                 std::optional<Kind> kind = std::nullopt);
  // Ends every call (of `kind`, if given) still registered.
  void end_all(const grpc::Status& status, std::optional<Kind> kind = std::nullopt);
  int active() const;

 private:
  struct Call {
    Kind kind;
    EndFunction end;
  };
  bool none_locked(std::optional<Kind> kind) const LIPSYNC_REQUIRES(mutex_);

  mutable core::Mutex mutex_;
  core::CondVar idle_;
  std::map<std::uint64_t, Call> calls_ LIPSYNC_GUARDED_BY(mutex_);
  std::uint64_t next_id_ LIPSYNC_GUARDED_BY(mutex_) = 1;
  bool closed_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool requests_closed_ LIPSYNC_GUARDED_BY(mutex_) = false;
};

}  // namespace lipsync::server
