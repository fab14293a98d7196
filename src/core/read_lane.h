// ReadLane: what a reader does with the bytes it reads, done off its thread, in order, on a
// strand: the HTTP server's I/O thread only moves a connection's bytes, and decoding its speech,
// resampling it and handing it to a session happen here. The reader queues each piece and reads
// on while few bytes wait and the consumer (a session) has room; otherwise it pauses, and the
// lane resumes it once the work has caught up and the consumer wants more. So one connection's
// work never holds up another's I/O, and what waits is bounded (kMaxWaitingBytes) whatever the
// client sends.
// Thread contract: queue() and then() from one thread at a time (the reader's); wanted() from
// any thread. Work runs on the pool, one task at a time, in order; it must not throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/mutex.h"
#include "core/strand.h"
#include "core/worker_pool.h"

namespace lipsync::core {

class ReadLane final : public std::enable_shared_from_this<ReadLane> {
 public:
  // Bytes queued and not yet handled past which the reader pauses.
  static constexpr std::size_t kMaxWaitingBytes = 256u << 10;

  // `resume` (any thread) reads on after queue() said to pause.
  ReadLane(WorkerPool& pool, std::function<void()> resume);

  // Queues `work` for a piece of `bytes` bytes; it returns whether the session has room for more
  // (a speech input's add()). Returns whether the reader may read on now.
  bool queue(std::size_t bytes, std::function<bool()> work);
  // Queues `work` after everything queued so far (the end of the body, the close).
  void then(std::function<void()> work);
  // The session has room again (the speech input's `wanted`).
  void wanted();

 private:
  // Whether a paused reader may read on now (then it is no longer paused).
  bool resume_locked() LIPSYNC_REQUIRES(mutex_);

  Strand strand_;
  const std::function<void()> resume_;
  core::Mutex mutex_;
  std::size_t waiting_ LIPSYNC_GUARDED_BY(mutex_) = 0;        // bytes queued and not yet handled
  bool full_ LIPSYNC_GUARDED_BY(mutex_) = false;              // the session said it has no room
  bool paused_ LIPSYNC_GUARDED_BY(mutex_) = false;            // the reader was told to pause
  std::uint64_t wanted_seen_ LIPSYNC_GUARDED_BY(mutex_) = 0;  // wanted() calls so far
};

}  // namespace lipsync::core
