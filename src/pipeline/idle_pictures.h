// IdlePictureCache: what an idle live session shows, encoded once for every session (below).
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <unordered_map>

#include "avatar/avatar.h"
#include "core/lru_cache.h"
#include "core/mutex.h"
#include "core/shared_bytes.h"
#include "pipeline/frame_producer.h"

namespace lipsync::pipeline {

// Encoded template frames, shared by every session of a server: idling costs one encode per
// template frame and format, not one per session. Entries are byte-budgeted (least recently used
// go first) and belong to one avatar object: a reloaded avatar never sees another's pictures.
// Thread contract: any thread.
class IdlePictureCache {
 public:
  using Bytes = std::shared_ptr<const core::SharedBytes>;
  explicit IdlePictureCache(std::size_t budget_bytes) : cache_(budget_bytes) {}
  // The picture of `frame` of `avatar` in that encoding, or make()'s, cached. `source` tells
  // pictures of one frame apart that are made differently: null for the template frame itself,
  // the SilenceIdle for its idle frames (owned with the avatar).
  Bytes get(const std::shared_ptr<const avatar::Avatar>& avatar, int frame, FrameEncoding encoding,
            int jpeg_quality, const std::function<Bytes()>& make, const void* source = nullptr);
  // The cached picture, or null; never makes one (cheap enough for the session's lock).
  Bytes find(const std::shared_ptr<const avatar::Avatar>& avatar, int frame, FrameEncoding encoding,
             int jpeg_quality, const void* source = nullptr);
  std::size_t used_bytes() const { return cache_.used_bytes(); }

 private:
  struct Key;
  static Key key_of(const avatar::Avatar* avatar, int frame, FrameEncoding encoding,
                    int jpeg_quality, const void* source);
  struct Key {
    const void* avatar;
    const void* source;
    int frame;
    int encoding;
    int quality;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const;
  };
  struct Entry {
    std::weak_ptr<const avatar::Avatar> avatar;  // the owner, to tell a reused address apart
    Bytes bytes;
  };
  Bytes make_once(const Key& key, const std::function<Bytes()>& make);

  core::LruCache<Key, Entry, KeyHash> cache_;
  core::Mutex mutex_;
  std::unordered_map<Key, std::shared_future<Bytes>, KeyHash> making_ LIPSYNC_GUARDED_BY(mutex_);
};

}  // namespace lipsync::pipeline
