// BufferPool: reusable float buffers for model inputs and outputs, so a steady stream of batches
// does not allocate. Each acquire() hands out a buffer that belongs to that caller alone until its
// Lease is destroyed; a buffer is never shared between two live leases.
// Thread contract: acquire() and lease destruction may happen on any threads at once. The pool
// must outlive its leases.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/mutex.h"

namespace lipsync::core {

class BufferPool {
 public:
  // Keeps at most max_cached released buffers for reuse; more are freed.
  explicit BufferPool(std::size_t max_cached = 8) : max_cached_(max_cached) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Exclusive use of one buffer of a given size; returns it to the pool when destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    std::span<float> span() { return {buffer_.data(), size_}; }
    std::span<const float> span() const { return {buffer_.data(), size_}; }
    float* data() { return buffer_.data(); }
    std::size_t size() const { return size_; }

   private:
    friend class BufferPool;
    Lease(BufferPool* pool, std::vector<float> buffer, std::size_t size)
        : pool_(pool), buffer_(std::move(buffer)), size_(size) {}
    void release();
    BufferPool* pool_ = nullptr;
    std::vector<float> buffer_;
    std::size_t size_ = 0;
  };

  // A buffer of `size` floats (contents unspecified). Reuses the smallest cached buffer that is
  // large enough.
  Lease acquire(std::size_t size);

  // Buffers currently cached (for tests).
  std::size_t cached() const;

 private:
  void give_back(std::vector<float> buffer);

  const std::size_t max_cached_;
  mutable core::Mutex mutex_;
  std::vector<std::vector<float>> free_ LIPSYNC_GUARDED_BY(mutex_);
};

}  // namespace lipsync::core
