#include "core/text.h"

#include <cstdio>

namespace lipsync::core {

std::string quote(std::string_view text, std::size_t max_chars) {
  std::string out = "'";
  const std::size_t shown = text.size() > max_chars ? max_chars : text.size();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  if (shown < text.size()) return out + "...' (" + std::to_string(text.size()) + " bytes)";
  return out + "'";
}

}  // namespace lipsync::core
