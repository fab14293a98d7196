// Quoting text that came from outside (a model id, a file name, a config value) inside an error
// message: bounded in length and with control bytes escaped, so a hostile 100 KB string can
// neither blow up a reply's metadata nor garble a log line. Also the small ASCII text helpers
// parsers share (case, blanks, separated lists).
// Thread contract: stateless functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lipsync::core {

// 'text' with bytes outside printable ASCII as \xNN; longer than max_chars: the first max_chars
// characters, then "...' (N bytes)".
std::string quote(std::string_view text, std::size_t max_chars = 64);

// 'text' with ASCII letters in lower case (other bytes as they are).
std::string to_lower_ascii(std::string text);
// 'text' without leading and trailing spaces and tabs.
std::string trim(std::string_view text);
// The pieces of 'text' between `separator`s, each trimmed; empty pieces are dropped.
std::vector<std::string> split_trimmed(std::string_view text, char separator);

}  // namespace lipsync::core
