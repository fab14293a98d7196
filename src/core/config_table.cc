#include "core/config_table.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/text.h"

namespace lipsync::core {

void config_error(const std::string& key, const std::string& what) {
  throw Error::invalid_input(key + ": " + what);
}

bool parse_config_bool(const std::string& text, const std::string& key) {
  const std::string t = to_lower_ascii(text);
  if (t == "true" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "no" || t == "off") return false;
  config_error(key, "'" + text + "' is not a boolean; expected true or false");
}

std::int64_t parse_config_int(const std::string& text, const std::string& key) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range) config_error(key, "'" + text + "' is out of range");
  if (ec != std::errc() || ptr != end || text.empty()) {
    config_error(key, "'" + text + "' is not an integer");
  }
  return value;
}

double parse_config_number(const std::string& text, const std::string& key) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty() || !std::isfinite(value)) {
    config_error(key, "'" + text + "' is not a number");
  }
  return value;
}

std::string config_number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace lipsync::core
