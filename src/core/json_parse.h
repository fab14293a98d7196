// Parsing JSON that came from outside (request bodies, model.json, avatar.json, crop rects):
// nlohmann::json keeps the last of two equal keys, so `{"model": "a", "model": "b"}` would mean
// "b" without a word; here it is an error naming the key.
// Thread contract: stateless; call from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lipsync::core {

// Parses `text`. Throws Error::Code::kInvalidInput, starting with `what`, when it is not JSON or
// an object has a key twice.
nlohmann::json parse_json(std::string_view text, std::string_view what);

}  // namespace lipsync::core
