#include "core/check.h"

namespace lipsync::detail {

void fail_check(const char* file, int line, const std::string& what) {
  std::ostringstream os;
  os << "internal check failed at " << file << ":" << line << ": " << what;
  throw Error::internal(os.str());
}

}  // namespace lipsync::detail
