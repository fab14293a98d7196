// Quoting text that came from outside (a model id, a file name, a config value) inside an error
// message: bounded in length and with control bytes escaped, so a hostile 100 KB string can
// neither blow up a reply's metadata nor garble a log line.
// Thread contract: stateless functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lipsync::core {

// 'text' with bytes outside printable ASCII as \xNN; longer than max_chars: the first max_chars
// characters, then "...' (N bytes)".
std::string quote(std::string_view text, std::size_t max_chars = 64);

}  // namespace lipsync::core
