// MemoryTrimmer: gives freed heap memory back to the system some time after a large release.
// glibc keeps what a process frees for reuse: after a session's minutes of queued speech are
// dropped (an interrupt, a DELETE) its resident size stays where it was until malloc_trim, which
// walks the heap (milliseconds per GB). Requests coalesce: one trim runs `delay` after the first
// request of a burst, on the trimmer's own thread, never on the caller's.
// Thread contract: request() from any thread; the destructor joins.
#pragma once

#include <chrono>
#include <cstddef>
#include <thread>

#include "core/mutex.h"

namespace lipsync::core {

// Returns free heap memory to the system now (malloc_trim; nothing where the C library has none).
void release_free_memory();

// Sets the C library's heap up for a long-running process with many threads; call first thing in
// main, before any thread starts. glibc raises its mmap threshold each time a large block is
// freed, after which frames and audio buffers of megabytes come from the arenas instead of
// their own mappings and stay there, fragmented, when freed (a soak's resident size crept over
// the hour while its allocated bytes did not); and it gives each contending thread its own
// arena, up to 8 per core. A fixed 1 MB threshold sends large blocks back to the system as they
// are freed, and 4 arenas bound what the rest can hold free.
void tune_heap();

// The C library's heap: bytes allocated and bytes it holds free (all arenas and mappings).
// Resident size that grows while `in_use` does not is fragmentation, not a leak. Zero where the C
// library does not say.
struct HeapUsage {
  std::size_t in_use = 0;
  std::size_t free = 0;
};
HeapUsage heap_usage();

class MemoryTrimmer {
 public:
  explicit MemoryTrimmer(std::chrono::milliseconds delay = std::chrono::milliseconds(250));
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // Something large was freed (or is about to be, by another thread): trim soon.
  void request();
  // Trims done so far (for tests and metrics).
  int trims() const;

 private:
  void run();

  const std::chrono::milliseconds delay_;
  mutable core::Mutex mutex_;
  core::CondVar wake_;
  bool requested_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool stopping_ LIPSYNC_GUARDED_BY(mutex_) = false;
  int trims_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  std::thread thread_;
};

}  // namespace lipsync::core
