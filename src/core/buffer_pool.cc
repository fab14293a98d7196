#include "core/buffer_pool.h"

#include <algorithm>
#include <utility>

#include "core/mutex.h"

namespace lipsync::core {

BufferPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      buffer_(std::move(other.buffer_)),
      size_(std::exchange(other.size_, 0)) {}

BufferPool::Lease& BufferPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    buffer_ = std::move(other.buffer_);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

BufferPool::Lease::~Lease() {
  release();
}

void BufferPool::Lease::release() {
  if (pool_ != nullptr) pool_->give_back(std::move(buffer_));
  pool_ = nullptr;
  buffer_ = {};
  size_ = 0;
}

BufferPool::Lease BufferPool::acquire(std::size_t size) {
  std::vector<float> buffer;
  {
    core::MutexLock lock(mutex_);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->size() >= size && (best == free_.end() || it->size() < best->size())) best = it;
    }
    if (best != free_.end()) {
      buffer = std::move(*best);
      free_.erase(best);
    }
  }
  if (buffer.size() < size) buffer.resize(size);
  return Lease(this, std::move(buffer), size);
}

void BufferPool::give_back(std::vector<float> buffer) {
  core::MutexLock lock(mutex_);
  if (free_.size() < max_cached_) {
    free_.push_back(std::move(buffer));
    return;
  }
  // Keep the larger buffers: replace the smallest cached one when this one is bigger.
  auto smallest = std::min_element(
      free_.begin(), free_.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
  if (smallest != free_.end() && smallest->size() < buffer.size()) *smallest = std::move(buffer);
}

std::size_t BufferPool::cached() const {
  core::MutexLock lock(mutex_);
  return free_.size();
}

}  // namespace lipsync::core
