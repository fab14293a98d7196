#include "avatar/crop_rect.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "core/json_parse.h"
#include "core/json_text.h"
#include "core/text.h"

namespace lipsync::avatar {
namespace {

constexpr int kLandmarkCount = 110;  // SyncTalk_2D .lms files

std::string rect_text(const CropRect& r) {
  return "[" + std::to_string(r.x1) + ", " + std::to_string(r.y1) + ", " + std::to_string(r.x2) +
         ", " + std::to_string(r.y2) + "]";
}

}  // namespace

void validate_crop_rect(const CropRect& r, int frame_width, int frame_height,
                        const std::string& what) {
  const std::string prefix = what + ": crop rect " + rect_text(r);
  if (r.width() <= 0 || r.height() <= 0) throw Error::invalid_input(prefix + " is empty");
  if (r.width() != r.height()) {
    throw Error::invalid_input(prefix + " is " + std::to_string(r.width()) + " x " +
                               std::to_string(r.height()) + "; expected a square");
  }
  if (r.x1 < 0 || r.y1 < 0 || r.x2 > frame_width || r.y2 > frame_height) {
    throw Error::invalid_input(prefix + " is not inside the " + std::to_string(frame_width) +
                               " x " + std::to_string(frame_height) + " frame");
  }
}

std::vector<CropRect> load_crop_rects(const std::filesystem::path& path) {
  const std::string where = "crop rects " + path.string();
  std::ifstream in(path);
  if (!in) throw Error::not_found(where + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json j = core::parse_json(text, where);
  if (!j.is_array()) throw Error::invalid_input(where + ": expected a JSON array of [x1,y1,x2,y2]");
  std::vector<CropRect> rects;
  rects.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    // Pixels: integers far inside int, so that widths and heights cannot overflow.
    constexpr std::int64_t kMostCoordinate = 1000000;
    bool ok = e.is_array() && e.size() == 4;
    for (std::size_t k = 0; ok && k < 4; ++k) {
      ok = e[k].is_number_integer() &&
           (e[k].is_number_unsigned() ? e[k].get<std::uint64_t>() <= kMostCoordinate
                                      : std::llabs(e[k].get<std::int64_t>()) <= kMostCoordinate);
    }
    if (!ok) {
      throw Error::invalid_input(where + ": entry " + std::to_string(i) + " is " +
                                 core::quote(core::json_text(e)) +
                                 "; expected four integers [x1, y1, x2, y2] of at most 1e6");
    }
    rects.push_back({e[0].get<int>(), e[1].get<int>(), e[2].get<int>(), e[3].get<int>()});
  }
  return rects;
}

void save_crop_rects(const std::filesystem::path& path, const std::vector<CropRect>& rects) {
  std::string text = "[\n";
  for (std::size_t i = 0; i < rects.size(); ++i) {
    text += "  " + rect_text(rects[i]) + (i + 1 < rects.size() ? ",\n" : "\n");
  }
  text += "]\n";
  core::write_file_atomically(path, text);
}

CropRect crop_from_landmarks(const std::filesystem::path& lms) {
  const std::string where = "landmarks " + lms.string();
  std::error_code ec;
  if (!std::filesystem::exists(lms, ec)) throw Error::not_found(where + ": no such file");
  if (!std::filesystem::is_regular_file(lms, ec)) {
    throw Error::invalid_input(where + ": not a file");
  }
  // 110 lines of two numbers are a few kB; anything far bigger is not a landmarks file.
  constexpr std::uintmax_t kMostBytes = 1 << 20;
  const std::uintmax_t bytes = std::filesystem::file_size(lms, ec);
  if (ec || bytes > kMostBytes) {
    throw Error::invalid_input(where + ": " + std::to_string(bytes) +
                               " bytes; a SyncTalk_2D .lms file (110 lines 'x y') is a few kB");
  }
  std::ifstream in(lms);
  if (!in) throw Error::not_found(where + ": cannot open");
  std::vector<std::pair<int, int>> points;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream s(line);
    float x = 0, y = 0;
    if (!(s >> x >> y)) {
      throw Error::invalid_input(where + ": line " + std::to_string(line_no) + " is " +
                                 core::quote(line) + "; expected two numbers 'x y'");
    }
    // Pixel coordinates: finite and far inside int (the cast below is undefined outside it).
    constexpr float kMostCoordinate = 1e6f;
    if (!std::isfinite(x) || !std::isfinite(y) || std::fabs(x) > kMostCoordinate ||
        std::fabs(y) > kMostCoordinate) {
      throw Error::invalid_input(where + ": line " + std::to_string(line_no) + " is " +
                                 core::quote(line) + "; coordinates are pixels (at most 1e6)");
    }
    // Upstream: np.loadtxt(dtype=float32) then astype(int32), i.e. truncation toward zero.
    points.emplace_back(static_cast<int>(x), static_cast<int>(y));
  }
  if (points.size() != kLandmarkCount) {
    throw Error::invalid_input(where + ": " + std::to_string(points.size()) + " points; expected " +
                               std::to_string(kLandmarkCount));
  }
  CropRect r;
  r.x1 = points[1].first;
  r.y1 = points[52].second;
  r.x2 = points[31].first;
  r.y2 = r.y1 + (r.x2 - r.x1);
  return r;
}

}  // namespace lipsync::avatar
