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

}  // namespace lipsync::core
