// BoundedQueue: a blocking FIFO with a fixed capacity, for handing batches between pipeline
// stages. push() waits while the queue is full (back-pressure keeps memory flat); pop() waits
// while it is empty; close() wakes everyone: later pushes fail and pops drain what is left.
// Thread contract: any number of producers and consumers at once.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>

#include "core/mutex.h"

namespace lipsync::core {

template <class T>
class BoundedQueue {
 public:
  // Requires: capacity >= 1.
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  // Waits for room; returns false (dropping item) when the queue is closed.
  bool push(T item) {
    core::MutexLock lock(mutex_);
    not_full_.wait(lock,
                   [&]() LIPSYNC_REQUIRES(mutex_) { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  // Waits for an item; nullopt once the queue is closed and empty.
  std::optional<T> pop() {
    core::MutexLock lock(mutex_);
    not_empty_.wait(lock, [&]() LIPSYNC_REQUIRES(mutex_) { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void close() {
    core::MutexLock lock(mutex_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  std::size_t size() const {
    core::MutexLock lock(mutex_);
    return items_.size();
  }

 private:
  const std::size_t capacity_;
  mutable core::Mutex mutex_;
  core::CondVar not_full_;
  core::CondVar not_empty_;
  std::deque<T> items_ LIPSYNC_GUARDED_BY(mutex_);
  bool closed_ LIPSYNC_GUARDED_BY(mutex_) = false;
};

}  // namespace lipsync::core
