#include "core/content_hash.h"

#include <array>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace lipsync::core {

namespace {

constexpr std::uint64_t kMulA = 0x9e3779b97f4a7c15ull;
constexpr std::uint64_t kMulB = 0xbf58476d1ce4e5b9ull;

std::uint64_t rotl(std::uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

// A strong 64-bit finaliser (every input bit reaches every output bit).
std::uint64_t finish(std::uint64_t z) {
  z = (z ^ (z >> 30)) * kMulB;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

void ContentHash::mix(std::uint64_t word) {
  state_ = rotl(state_ ^ (word * kMulA), 27) * kMulB + 0x52dce729;
}

ContentHash& ContentHash::add(std::span<const std::byte> bytes) {
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, bytes.data() + i, 8);
    mix(w);
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  mix(tail);
  mix(bytes.size());
  return *this;
}

ContentHash& ContentHash::add(std::string_view text) {
  return add(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

ContentHash& ContentHash::add(std::uint64_t value) {
  mix(value);
  return *this;
}

ContentHash& ContentHash::add_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::invalid_input("cannot read " + path.string());
  std::array<char, 1 << 16> buffer{};
  std::uint64_t total = 0;
  while (in) {
    in.read(buffer.data(), buffer.size());
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    add(std::as_bytes(std::span<const char>(buffer.data(), n)));
    total += n;
  }
  if (in.bad()) throw Error::invalid_input("cannot read " + path.string());
  mix(total);
  return *this;
}

std::uint64_t ContentHash::value() const {
  return finish(state_);
}

std::string ContentHash::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  std::uint64_t v = value();
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kDigits[v & 15];
  return out;
}

}  // namespace lipsync::core
