#include "core/system_info.h"

#include <fstream>

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

}  // namespace lipsync::core
