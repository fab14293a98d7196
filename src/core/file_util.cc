#include "core/file_util.h"

#include <fstream>
#include <string>
#include <system_error>

#include "core/error.h"

namespace lipsync::core {

void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::string where = "'" + path.string() + "'";
  std::filesystem::path tmp = path;
  tmp += ".partial";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error::invalid_input(where + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw Error::invalid_input(where + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error::invalid_input(where + ": cannot create: " + ec.message());
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
  write_file_atomically(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

}  // namespace lipsync::core
