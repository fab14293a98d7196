#include "pipeline/idle_pictures.h"

#include "core/mutex.h"

namespace lipsync::pipeline {

std::size_t IdlePictureCache::KeyHash::operator()(const Key& k) const {
  std::size_t h = std::hash<const void*>()(k.avatar) ^ (std::hash<const void*>()(k.source) << 1);
  for (int v : {k.frame, k.encoding, k.quality}) {
    h = h * 1000003u ^ std::hash<int>()(v);
  }
  return h;
}

IdlePictureCache::Key IdlePictureCache::key_of(const avatar::Avatar* avatar, int frame,
                                               FrameEncoding encoding, int jpeg_quality,
                                               const void* source) {
  return {avatar, source, frame, static_cast<int>(encoding),
          encoding == FrameEncoding::kJpeg ? jpeg_quality : 0};
}

IdlePictureCache::Bytes IdlePictureCache::find(const std::shared_ptr<const avatar::Avatar>& avatar,
                                               int frame, FrameEncoding encoding, int jpeg_quality,
                                               const void* source) {
  const auto entry = cache_.find(key_of(avatar.get(), frame, encoding, jpeg_quality, source));
  if (!entry || entry->avatar.lock() != avatar) return nullptr;
  return entry->bytes;
}

// Sessions that start together want the same pictures at the same time: one makes each, the
// others wait for it.
IdlePictureCache::Bytes IdlePictureCache::make_once(const Key& key,
                                                    const std::function<Bytes()>& make) {
  std::promise<Bytes> promise;
  std::shared_future<Bytes> future;
  {
    core::MutexLock lock(mutex_);
    const auto it = making_.find(key);
    if (it != making_.end()) {
      future = it->second;
    } else {
      making_.emplace(key, promise.get_future().share());
    }
  }
  if (future.valid()) return future.get();
  try {
    Bytes bytes = make();
    promise.set_value(bytes);
    core::MutexLock lock(mutex_);
    making_.erase(key);
    return bytes;
  } catch (...) {
    promise.set_exception(std::current_exception());
    core::MutexLock lock(mutex_);
    making_.erase(key);
    throw;
  }
}

IdlePictureCache::Bytes IdlePictureCache::get(const std::shared_ptr<const avatar::Avatar>& avatar,
                                              int frame, FrameEncoding encoding, int jpeg_quality,
                                              const std::function<Bytes()>& make,
                                              const void* source) {
  const Key key = key_of(avatar.get(), frame, encoding, jpeg_quality, source);
  const auto make_entry = [&] {
    auto e = std::make_shared<Entry>(Entry{avatar, make_once(key, make)});
    const std::size_t bytes = e->bytes->size();
    return std::pair<std::shared_ptr<const Entry>, std::size_t>{std::move(e), bytes};
  };
  auto entry = cache_.get_or_make(key, make_entry);
  if (entry->avatar.lock() != avatar) {  // an earlier avatar's, at the same address
    cache_.erase(key);
    entry = cache_.get_or_make(key, make_entry);
  }
  return entry->bytes;
}

}  // namespace lipsync::pipeline
