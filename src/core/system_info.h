// Facts about the machine and the build, printed by every benchmark.
// Thread contract: stateless functions.
#pragma once

#include <string>

namespace lipsync::core {

// The CPU model name from /proc/cpuinfo, or "unknown".
std::string cpu_model_name();
// "Release", "Debug", ... as configured; "unknown" when not set.
std::string build_type();
// True when assertions or sanitizers make timings meaningless.
bool timings_are_unoptimised();

// The int8 dot-product instructions ONNX Runtime's CPU kernels use here: "avx512-vnni",
// "avx-vnni", "avx2" (no VNNI: uint8 x int8 products are summed in pairs into 16 bits, which
// overflows with full-range weights), "none" (x86 without AVX2), or "not x86".
std::string cpu_int8_instructions();
// True on x86 without VNNI: pairs of uint8 x int8 products saturate at 16 bits there.
bool int8_pairs_saturate();

}  // namespace lipsync::core
