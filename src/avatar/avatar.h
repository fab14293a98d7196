// Avatar: a template video (one BGR image per frame, 25 fps) with one square face crop per frame
// (REFERENCE.md §5), read from an avatar folder:
//   avatar.json      {"name", "fps": 25, "frames": "frames/%05d.png", "frame_count": N,
//                     "crop_rects": "crop_rects.json", "width": W, "height": H}
//   crop_rects.json  [[x1, y1, x2, y2], ...], one per frame
// Frames are decoded on demand into a byte-budgeted cache, and each frame's 328 x 328 cubic
// resize of its crop (the ROI source, also the compositing canvas) into a second one, so an
// avatar of thousands of 1080p frames never needs its frames all in memory.
// Thread contract: immutable after open(); every method may be called from many threads.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <span>
#include <string>
#include <vector>

#include "avatar/crop_rect.h"
#include "core/config_table.h"
#include "core/lru_cache.h"

namespace lipsync::avatar {

inline constexpr int kAvatarFps = 25;
inline constexpr int kCanvasSize = 328;  // the cubic-resized crop (REFERENCE.md §5)
inline constexpr int kRoiOffset = 4;     // ROI = canvas rows/cols 4..323
inline constexpr const char* kAvatarFileName = "avatar.json";
inline constexpr const char* kCropRectsFileName = "crop_rects.json";

// What a live session shows while nobody speaks (avatar.idle).
enum class IdleMode {
  kSilence,   // the frames the model makes for silent audio: the avatar listens, mouth closed
  kTemplate,  // the template frames themselves (the mouth moves as in the recording)
};

struct AvatarOptions {
  // Config key avatar.frame_cache_mb: budget for decoded template frames (1..1048576).
  int frame_cache_mb = 512;
  // Config key avatar.roi_cache_mb: budget for the per-frame 328 x 328 crops (1..1048576).
  int roi_cache_mb = 256;
  // Config key avatar.jpeg_cache_mb: budget for JPEG frames kept per template frame, so that the
  // next frames on it re-encode only the face's region (render/jpeg_splice.h); 0 = none kept,
  // every frame is encoded whole (0..1048576).
  int jpeg_cache_mb = 64;
  // Config key avatar.idle: silence | template (pipeline/silence_idle.h).
  IdleMode idle = IdleMode::kSilence;
  // Throws Error::Code::kInvalidInput naming the key.
  void validate() const;
  // The `avatar.*` config keys.
  static const core::ConfigTable<AvatarOptions>& config();
};

// The contents of avatar.json.
struct AvatarManifest {
  std::string name;
  int fps = kAvatarFps;
  std::string frames;  // printf-style pattern with one integer field, relative to the folder
  int frame_count = 0;
  std::string crop_rects = kCropRectsFileName;
  int width = 0;
  int height = 0;

  // Reads and checks avatar.json (unknown keys, types, fps 25, the pattern). Throws
  // Error::Code::kNotFound / kInvalidInput naming the file and key.
  static AvatarManifest load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;
};

// Formats a frame pattern ("frames/%05d.png") for index i. The pattern must have exactly one
// %d / %0Nd field ("%%" is a literal %); validate_frame_pattern throws kInvalidInput otherwise.
void validate_frame_pattern(const std::string& pattern);
std::string format_frame_pattern(const std::string& pattern, int index);

class Avatar {
 public:
  // Opens and checks an avatar folder: the manifest, one valid crop rect per frame (square,
  // non-empty, inside the frame), and the first frame's size. Later frames are checked when
  // first decoded. Throws kNotFound / kInvalidInput naming the file, the frame and the problem.
  static std::shared_ptr<const Avatar> open(const std::filesystem::path& dir,
                                            const AvatarOptions& options);

  const std::string& name() const { return manifest_.name; }
  const std::filesystem::path& dir() const { return dir_; }
  int frame_count() const { return manifest_.frame_count; }
  int width() const { return manifest_.width; }
  int height() const { return manifest_.height; }
  const CropRect& crop_rect(int frame) const { return rects_[frame]; }
  std::filesystem::path frame_path(int frame) const;

  // Template frame i, BGR 8-bit (decoded or cached). Throws kInvalidInput naming the file when it
  // cannot be decoded or has another size.
  std::shared_ptr<const cv::Mat> frame(int index) const;
  // The 328 x 328 INTER_CUBIC resize of frame i's crop (cached).
  std::shared_ptr<const cv::Mat> canvas(int index) const;
  // Writes frame i's generator image input [6][320][320]: ROI and masked ROI, BGR, CHW,
  // float(v) / 255.0f, mask rectangle x 5..314, y 5..309 set to 0 (REFERENCE.md §5).
  void pack_generator_input(int index, std::span<float> out) const;

  // Decodes the first template frames and their canvases, as many as both cache budgets hold,
  // on the task arena, so that the first pass of a session's template walk decodes nothing on
  // its frames' critical path. Returns how many. Throws like frame() for a bad frame.
  int warm_caches() const;

  // Bytes held by the two caches (for tests and metrics).
  std::size_t cached_bytes() const;
  // avatar.jpeg_cache_mb in bytes: what the JPEG splice cache of this avatar may hold.
  std::size_t jpeg_cache_bytes() const { return jpeg_cache_bytes_; }
  const core::LruCache<int, cv::Mat>& frame_cache() const { return *frames_; }
  const core::LruCache<int, cv::Mat>& canvas_cache() const { return *canvases_; }

 private:
  Avatar() = default;
  std::shared_ptr<const cv::Mat> decode(int index) const;

  std::filesystem::path dir_;
  AvatarManifest manifest_;
  std::vector<CropRect> rects_;
  std::unique_ptr<core::LruCache<int, cv::Mat>> frames_;
  std::unique_ptr<core::LruCache<int, cv::Mat>> canvases_;
  std::size_t jpeg_cache_bytes_ = 0;
};

// The crop rect as an OpenCV rectangle (x1, y1, width, height).
inline cv::Rect as_cv_rect(const CropRect& r) {
  return {r.x1, r.y1, r.width(), r.height()};
}

// Packs a 328 x 328 canvas into the generator input [6][320][320] (see pack_generator_input).
void pack_canvas(const cv::Mat& canvas, std::span<float> out);

}  // namespace lipsync::avatar
