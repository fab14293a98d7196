// Small file helpers shared by the front ends.
// Thread contract: stateless functions; concurrent calls must use different paths.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string_view>

namespace lipsync::core {

// Writes bytes to path through a temporary file in the same folder and a rename, so a failure
// never leaves a partial file at path. Throws Error::Code::kInvalidInput naming the path.
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);
// The same for text.
void write_file_atomically(const std::filesystem::path& path, std::string_view text);

}  // namespace lipsync::core
