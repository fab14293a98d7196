#include "core/json_parse.h"

#include <set>
#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace lipsync::core {

nlohmann::json parse_json(std::string_view text, std::string_view what) {
  using nlohmann::json;
  std::vector<std::set<std::string>> keys;  // of the objects open now, innermost last
  std::string duplicate;
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    // nlohmann quotes the last token it read, which may be the whole input: its start only.
    constexpr std::size_t kMostChars = 200;
    std::string message = e.what();
    if (message.size() > kMostChars) message = message.substr(0, kMostChars) + "...";
    throw Error::invalid_input(std::string(what) + ": not valid JSON: " + message);
  }
  if (!duplicate.empty()) {
    throw Error::invalid_input(std::string(what) + ": the key " + quote(duplicate) +
                               " is given twice");
  }
  return j;
}

}  // namespace lipsync::core
