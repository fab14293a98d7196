#include "core/memory_trimmer.h"

#if defined(__GLIBC__)
#include <malloc.h>

#include "core/mutex.h"
#endif

namespace lipsync::core {

void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void tune_heap() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_ARENA_MAX, 4);
#endif
}

HeapUsage heap_usage() {
  HeapUsage usage;
#if defined(__GLIBC__)
  const struct mallinfo2 info = mallinfo2();
  usage.in_use = info.uordblks + info.hblkhd;  // small and large (mmapped) blocks
  usage.free = info.fordblks;
#endif
  return usage;
}

MemoryTrimmer::MemoryTrimmer(std::chrono::milliseconds delay)
    : delay_(delay), thread_([this] { run(); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  {
    core::MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void MemoryTrimmer::request() {
  {
    core::MutexLock lock(mutex_);
    requested_ = true;
  }
  wake_.notify_all();
}

int MemoryTrimmer::trims() const {
  core::MutexLock lock(mutex_);
  return trims_;
}

void MemoryTrimmer::run() {
  core::MutexLock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this]() LIPSYNC_REQUIRES(mutex_) { return stopping_ || requested_; });
    if (stopping_) return;
    // Let the burst finish (the freeing may still be under way on other threads).
    if (wake_.wait_for(lock, delay_, [this]() LIPSYNC_REQUIRES(mutex_) { return stopping_; }))
      return;
    requested_ = false;
    lock.unlock();
    release_free_memory();
    lock.lock();
    ++trims_;
  }
}

}  // namespace lipsync::core
