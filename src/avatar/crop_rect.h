// CropRect: the square face crop of one template frame (REFERENCE.md §5), [x1, y1, x2, y2] with
// x2 and y2 exclusive, and its files: crop_rects.json (a JSON array of [x1, y1, x2, y2]) and
// SyncTalk_2D landmark files (.lms).
// Thread contract: plain values and stateless functions.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lipsync::avatar {

struct CropRect {
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int width() const { return x2 - x1; }
  int height() const { return y2 - y1; }
  bool operator==(const CropRect&) const = default;
};

// Throws Error::Code::kInvalidInput naming `what` unless the rect is square, non-empty and
// inside a frame of the given size.
void validate_crop_rect(const CropRect& rect, int frame_width, int frame_height,
                        const std::string& what);

// Reads crop_rects.json. Throws kNotFound for a missing file and kInvalidInput naming the entry
// for malformed JSON or entries that are not four integers.
std::vector<CropRect> load_crop_rects(const std::filesystem::path& path);
// Writes crop_rects.json atomically, one rect per line.
void save_crop_rects(const std::filesystem::path& path, const std::vector<CropRect>& rects);

// The SyncTalk_2D crop of one landmark file (110 lines "x y"; values parsed as float32, then
// truncated to int as upstream does): x1 = p[1].x, y1 = p[52].y, x2 = p[31].x,
// y2 = y1 + (x2 - x1). Throws kInvalidInput naming the file and line for a malformed file.
CropRect crop_from_landmarks(const std::filesystem::path& lms);

}  // namespace lipsync::avatar
