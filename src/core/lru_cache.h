// LruCache: a thread-safe, byte-budgeted cache of immutable values shared by pointer. Used for
// decoded avatar frames and per-frame ROIs: values are computed outside the lock, evicted least
// recently used first, and stay alive for any holder after eviction.
// Thread contract: every method may be called from many threads at once.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <unordered_map>

#include "core/mutex.h"

namespace lipsync::core {

template <class Key, class Value, class Hash = std::hash<Key>>
class LruCache {
 public:
  explicit LruCache(std::size_t budget_bytes) : budget_(budget_bytes) {}
  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  // The cached value for key, or make()'s result, cached when it fits the budget. make() runs
  // without the lock (two threads may both make the same key once; one result is kept) and
  // returns the value and its size in bytes. Exceptions from make() propagate; nothing is cached.
  std::shared_ptr<const Value> get_or_make(
      const Key& key,
      const std::function<std::pair<std::shared_ptr<const Value>, std::size_t>()>& make) {
    {
      core::MutexLock lock(mutex_);
      auto it = index_.find(key);
      if (it != index_.end()) {
        ++hits_;
        order_.splice(order_.begin(), order_, it->second);
        return it->second->value;
      }
      ++misses_;
    }
    auto [value, bytes] = make();
    core::MutexLock lock(mutex_);
    auto it = index_.find(key);
    if (it != index_.end()) return it->second->value;
    if (bytes > budget_) return value;  // too big to keep: hand it out uncached
    while (used_ + bytes > budget_ && !order_.empty()) {
      used_ -= order_.back().bytes;
      index_.erase(order_.back().key);
      order_.pop_back();
    }
    order_.push_front({key, value, bytes});
    index_[key] = order_.begin();
    used_ += bytes;
    return value;
  }

  // The cached value for key, or null (nothing is made).
  std::shared_ptr<const Value> find(const Key& key) {
    core::MutexLock lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    ++hits_;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value;
  }

  // Drops key's value (holders keep theirs).
  void erase(const Key& key) {
    core::MutexLock lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return;
    used_ -= it->second->bytes;
    order_.erase(it->second);
    index_.erase(it);
  }

  std::size_t used_bytes() const {
    core::MutexLock lock(mutex_);
    return used_;
  }
  std::size_t budget_bytes() const { return budget_; }
  std::size_t size() const {
    core::MutexLock lock(mutex_);
    return index_.size();
  }
  std::size_t hits() const {
    core::MutexLock lock(mutex_);
    return hits_;
  }
  std::size_t misses() const {
    core::MutexLock lock(mutex_);
    return misses_;
  }

 private:
  struct Entry {
    Key key;
    std::shared_ptr<const Value> value;
    std::size_t bytes;
  };
  const std::size_t budget_;
  mutable core::Mutex mutex_;
  std::list<Entry> order_ LIPSYNC_GUARDED_BY(mutex_);  // most recent first
  std::unordered_map<Key, typename std::list<Entry>::iterator, Hash> index_
      LIPSYNC_GUARDED_BY(mutex_);
  std::size_t used_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  std::size_t hits_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  std::size_t misses_ LIPSYNC_GUARDED_BY(mutex_) = 0;
};

}  // namespace lipsync::core
