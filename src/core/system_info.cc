#include "core/system_info.h"

#include <cstdint>
#include <fstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace lipsync::core {

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string build_type() {
#ifdef LIPSYNC_BUILD_TYPE
  return LIPSYNC_BUILD_TYPE;
#else
  return "unknown";
#endif
}

bool timings_are_unoptimised() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
  return true;
#else
  return false;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
namespace {

// The OS saves the register state these extensions need (XCR0 via xgetbv), as ONNX Runtime's
// MLAS checks before it picks a kernel.
std::uint64_t xcr0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

}  // namespace

std::string cpu_int8_instructions() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return "none";
  const bool osxsave = (c & (1u << 27)) != 0;
  const bool avx = (c & (1u << 28)) != 0;
  if (!osxsave || !avx || (xcr0() & 0x6) != 0x6) return "none";
  const bool avx512_state = (xcr0() & 0xE6) == 0xE6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "none";
  const bool avx2 = (b & (1u << 5)) != 0;
  const bool avx512_vnni = (c & (1u << 11)) != 0 && (b & (1u << 16)) != 0;  // and AVX512F
  if (avx512_vnni && avx512_state) return "avx512-vnni";
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)) != 0 && avx2) return "avx-vnni";
  return avx2 ? "avx2" : "none";
}

bool int8_pairs_saturate() {
  const std::string s = cpu_int8_instructions();
  return s != "avx512-vnni" && s != "avx-vnni";
}
#else
std::string cpu_int8_instructions() {
  return "not x86";
}

bool int8_pairs_saturate() {
  return false;
}
#endif

}  // namespace lipsync::core
