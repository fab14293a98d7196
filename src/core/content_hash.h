// ContentHash: a 64-bit fingerprint of bytes and files, for cache keys and for telling a damaged
// cache file from a good one. Not cryptographic: it guards against accidents (a changed model
// file, a truncated or flipped cache entry), not against an attacker who can write the cache.
// Thread contract: plain value; one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace lipsync::core {

class ContentHash {
 public:
  // Each call mixes in the length too, so ("ab", "c") and ("a", "bc") differ.
  ContentHash& add(std::span<const std::byte> bytes);
  ContentHash& add(std::string_view text);
  ContentHash& add(std::uint64_t value);
  // The file's bytes (and size). Throws Error::Code::kInvalidInput naming an unreadable file.
  ContentHash& add_file(const std::filesystem::path& path);

  std::uint64_t value() const;
  std::string hex() const;  // 16 lower-case hex digits

 private:
  void mix(std::uint64_t word);
  std::uint64_t state_ = 0x6a09e667f3bcc908ull;
};

}  // namespace lipsync::core
