#include "server/server_metrics.h"

#include <charconv>
#include <cmath>

namespace lipsync::server {

std::string metric_value_text(double value) {
  // 2^53: every whole number up to it is a double, and prints as one.
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) <= 9007199254740992.0)
    return std::to_string(static_cast<std::int64_t>(value));
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  return ec == std::errc() ? std::string(text, end) : std::string("NaN");
}

}  // namespace lipsync::server
