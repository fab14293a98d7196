// Quoting text that came from outside (a model id, a file name, a config value) inside an error
// message: bounded in length and with control bytes escaped, so a hostile 100 KB string can
// neither blow up a reply's metadata nor garble a log line. Also the small ASCII text helpers
// parsers share (case, blanks, separated lists), and the nearest word for "did you mean".
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

// Edit distance from a to b: single-byte insertions, deletions and substitutions, and two
// neighbours swapped, each counting 1 (optimal string alignment: the usual typos).
std::size_t edit_distance(std::string_view a, std::string_view b);
// The candidate nearest to `word`, when it is near enough to be a typo of it (at most a third of
// its letters off, and at least 1); "" when none is. Ties: the first candidate.
std::string nearest_word(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace lipsync::core
