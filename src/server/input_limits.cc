#include "server/input_limits.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace lipsync::server::limits {

namespace {

[[noreturn]] void out_of_range(const Limit& limit, std::string_view field,
                               std::string_view written) {
  throw Error::invalid_input(std::string(field) + ": " + std::string(written.substr(0, 40)) +
                             " is out of range; expected " + std::to_string(limit.lo) + " to " +
                             std::to_string(limit.hi) + limit.unit);
}

}  // namespace

long long checked(const Limit& limit, std::string_view field, long long value,
                  std::string_view written) {
  if (value < limit.lo || value > limit.hi) {
    const std::string number = std::to_string(value);
    out_of_range(limit, field, written.empty() ? std::string_view(number) : written);
  }
  return value;
}

long long checked_json(const Limit& limit, std::string_view field, const nlohmann::json& value) {
  const bool in_range =
      value.is_number_unsigned()
          ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(limit.hi) &&
                value.get<std::uint64_t>() >= static_cast<std::uint64_t>(std::max(0LL, limit.lo))
          : value.is_number_integer() && value.get<std::int64_t>() >= limit.lo &&
                value.get<std::int64_t>() <= limit.hi;
  if (!in_range) out_of_range(limit, field, value.dump());
  return value.get<long long>();
}

}  // namespace lipsync::server::limits
