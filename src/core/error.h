// lipsync::Error: the one exception type of the project, carrying a Code that front ends map
// to gRPC status codes and process exit codes (each mapped once, never by message text).
// Thread contract: immutable value type; safe to copy and read from any thread.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace lipsync {

// An error with a category and a message that names the field or file, the value and what was
// expected.
class Error : public std::exception {
 public:
  enum class Code {
    kInvalidInput,       // bad input from outside: a file, a request field, a config key
    kNotFound,           // a named model, avatar or file does not exist
    kResourceExhausted,  // a bounded queue or budget is full; try again later
    kUnavailable,        // the component is stopping or not ready
    kConflict,           // busy with another request of the same kind (an utterance coming in)
    kInternal,           // a broken invariant inside lipsync (a bug)
  };

  Error(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Error invalid_input(std::string message) {
    return {Code::kInvalidInput, std::move(message)};
  }
  static Error not_found(std::string message) { return {Code::kNotFound, std::move(message)}; }
  static Error resource_exhausted(std::string message) {
    return {Code::kResourceExhausted, std::move(message)};
  }
  static Error unavailable(std::string message) { return {Code::kUnavailable, std::move(message)}; }
  static Error conflict(std::string message) { return {Code::kConflict, std::move(message)}; }
  static Error internal(std::string message) { return {Code::kInternal, std::move(message)}; }

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const char* what() const noexcept override { return message_.c_str(); }

  // Returns a copy whose message is "<context>: <message>", same code.
  Error with_context(std::string_view context) const;

 private:
  Code code_;
  std::string message_;
};

// Throws Error::Code::kInvalidInput "<key>: <value> is out of range; expected <lo> to <hi>"
// unless lo <= value <= hi. The one range check of every options struct.
void require_in_range(std::string_view key, long long value, long long lo, long long hi);

// Stable lower-case name of a code ("invalid_input", ...), for logs and JSON.
std::string_view to_string(Error::Code code);

// Process exit status for an error code (the CLI's one table): 2 for bad input, 3 not found,
// 4 resource exhausted, 5 unavailable, 6 conflict, 70 internal.
int exit_code_for(Error::Code code);

}  // namespace lipsync
