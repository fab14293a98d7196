#include "core/lru_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace lipsync {
namespace {

using Cache = core::LruCache<int, std::string>;

std::pair<std::shared_ptr<const std::string>, std::size_t> make(const std::string& s) {
  return {std::make_shared<const std::string>(s), s.size()};
}

TEST(LruCache, KeepsWhatFitsAndEvictsTheLeastRecentlyUsed) {
  Cache cache(10);
  EXPECT_EQ(*cache.get_or_make(1, [] { return make("aaaa"); }), "aaaa");
  EXPECT_EQ(*cache.get_or_make(2, [] { return make("bbbb"); }), "bbbb");
  // A hit: make() is not called, and 1 becomes the most recent.
  EXPECT_EQ(*cache.get_or_make(1, [] { return make("not called"); }), "aaaa");
  EXPECT_EQ(cache.hits(), 1u);
  // 3 needs room: 2 goes.
  const auto three = cache.get_or_make(3, [] { return make("cccc"); });
  EXPECT_EQ(cache.used_bytes(), 8u);
  EXPECT_EQ(*cache.get_or_make(2, [] { return make("BBBB"); }), "BBBB");  // made again
  // Too big for the budget: handed out, not kept.
  EXPECT_EQ(*cache.get_or_make(4, [] { return make("0123456789ab"); }), "0123456789ab");
  EXPECT_LE(cache.used_bytes(), 10u);
  EXPECT_EQ(*three, "cccc");  // a holder keeps an evicted value
}

TEST(LruCache, EraseDropsOneKeyAndItsBytes) {
  Cache cache(100);
  cache.get_or_make(1, [] { return make("aaaa"); });
  cache.get_or_make(2, [] { return make("bb"); });
  cache.erase(1);
  cache.erase(7);  // absent: nothing
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.used_bytes(), 2u);
  EXPECT_EQ(*cache.get_or_make(1, [] { return make("AAAA"); }), "AAAA");
}

}  // namespace
}  // namespace lipsync
