// The limits every front end puts on what a client sends, defined once (issue 25): a speech
// sample rate, a live session's start frame and latency. HTTP, the agent's WebSocket, gRPC Stream,
// Live and the monolithic API check the same numbers and answer in the same words:
// "<field>: <value> is out of range; expected <lo> to <hi>".
// Thread contract: pure functions.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string_view>

namespace lipsync::server::limits {

struct Limit {
  long long lo;
  long long hi;
  const char* unit;  // after the range: " Hz", " ms", ""
};
inline constexpr Limit kSpeechRate{8000, 192000, " Hz"};  // resampled to 16 kHz
inline constexpr Limit kStartFrame{0, 1000000, ""};       // the walk wraps it onto the avatar
inline constexpr Limit kLatencyMs{0, 10000, " ms"};       // 0: the server's

// `value` when it is within `limit`; else throws Error::Code::kInvalidInput naming `field` and
// the value as the client wrote it (`written`; default: the number).
long long checked(const Limit& limit, std::string_view field, long long value,
                  std::string_view written = {});
// The same for a JSON value as written: only an integer within the limit passes (2^64 - 1 is
// not -1, 16000.5 is not 16000, "16000" is not a number).
long long checked_json(const Limit& limit, std::string_view field, const nlohmann::json& value);

}  // namespace lipsync::server::limits
