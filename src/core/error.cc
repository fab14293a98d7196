#include "core/error.h"

namespace lipsync {

Error Error::with_context(std::string_view context) const {
  std::string message(context);
  message += ": ";
  message += message_;
  return {code_, std::move(message)};
}

std::string_view to_string(Error::Code code) {
  switch (code) {
    case Error::Code::kInvalidInput:
      return "invalid_input";
    case Error::Code::kNotFound:
      return "not_found";
    case Error::Code::kResourceExhausted:
      return "resource_exhausted";
    case Error::Code::kUnavailable:
      return "unavailable";
    case Error::Code::kConflict:
      return "conflict";
    case Error::Code::kInternal:
      return "internal";
  }
  return "internal";
}

int exit_code_for(Error::Code code) {
  switch (code) {
    case Error::Code::kInvalidInput:
      return 2;
    case Error::Code::kNotFound:
      return 3;
    case Error::Code::kResourceExhausted:
      return 4;
    case Error::Code::kUnavailable:
      return 5;
    case Error::Code::kConflict:
      return 6;
    case Error::Code::kInternal:
      return 70;
  }
  return 70;
}

void require_in_range(std::string_view key, long long value, long long lo, long long hi) {
  if (value < lo || value > hi) {
    throw Error::invalid_input(std::string(key) + ": " + std::to_string(value) +
                               " is out of range; expected " + std::to_string(lo) + " to " +
                               std::to_string(hi));
  }
}

}  // namespace lipsync
