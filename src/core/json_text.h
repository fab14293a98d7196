// JSON text for output and files. Bytes that are not UTF-8 (a Linux file name may hold any, and
// a client may send any) become U+FFFD instead of making nlohmann::json throw at the last step,
// after the work the text reports on is done.
// Thread contract: stateless; call from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lipsync::core {

inline std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lipsync::core
