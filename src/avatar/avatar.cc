#include "avatar/avatar.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "contract/model_family.h"
#include "core/check.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json_parse.h"
#include "core/json_text.h"
#include "core/task_arena.h"

namespace lipsync::avatar {
namespace {

// The masked half: cv2.rectangle(roi, (5, 5, 310, 305), 0, -1) fills x 5..314, y 5..309.
constexpr int kMaskX0 = 5, kMaskX1 = 314, kMaskY0 = 5, kMaskY1 = 309;
constexpr int kRoi = contract::kRoiSize;

struct PatternParts {
  std::string prefix;
  int width = 0;
  bool zero_pad = false;
  std::string suffix;
};

PatternParts parse_pattern(const std::string& pattern) {
  PatternParts parts;
  bool found = false;
  std::string* out = &parts.prefix;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      *out += pattern[i];
      continue;
    }
    if (i + 1 < pattern.size() && pattern[i + 1] == '%') {
      *out += '%';
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    const bool zero = j < pattern.size() && pattern[j] == '0';
    std::string digits;
    while (j < pattern.size() && std::isdigit(static_cast<unsigned char>(pattern[j]))) {
      digits += pattern[j++];
    }
    if (j >= pattern.size() || pattern[j] != 'd' || found || digits.size() > 2) {
      throw Error::invalid_input("frame pattern '" + pattern +
                                 "': expected exactly one %d or %0Nd field (and %% for a %)");
    }
    found = true;
    parts.zero_pad = zero;
    parts.width = digits.empty() ? 0 : std::stoi(digits);
    out = &parts.suffix;
    i = j;
  }
  if (!found) {
    throw Error::invalid_input("frame pattern '" + pattern + "': no %d or %0Nd field");
  }
  return parts;
}

std::string read_text_file(const std::filesystem::path& path, const std::string& where) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::not_found(where + ": cannot open");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

const core::ConfigTable<AvatarOptions>& AvatarOptions::config() {
  static const auto table =
      core::ConfigTable<AvatarOptions>("avatar")
          .integer("frame_cache_mb", &AvatarOptions::frame_cache_mb, 1, 1048576,
                   "budget for decoded template frames (least recently used go first)")
          .integer("roi_cache_mb", &AvatarOptions::roi_cache_mb, 1, 1048576,
                   "budget for the per-frame 328 x 328 crops the ROIs come from")
          .integer("jpeg_cache_mb", &AvatarOptions::jpeg_cache_mb, 0, 1048576,
                   "budget for JPEG frames kept per template frame: later JPEG frames on it "
                   "re-encode only the face's region (the same bytes); 0 = every frame whole")
          .choice("idle", &AvatarOptions::idle,
                  {{"silence", IdleMode::kSilence}, {"template", IdleMode::kTemplate}},
                  "what a live session shows while nobody speaks: silence, the frames the model "
                  "makes for silent audio (the avatar listens with its mouth closed; computed "
                  "once per model and avatar at load, kept in the cache folder), or template, "
                  "the template frames themselves (the mouth moves as in the recording)");
  return table;
}

void AvatarOptions::validate() const {
  config().validate(*this);
}

void validate_frame_pattern(const std::string& pattern) {
  (void)parse_pattern(pattern);
}

std::string format_frame_pattern(const std::string& pattern, int index) {
  const PatternParts p = parse_pattern(pattern);
  std::string number = std::to_string(index);
  if (static_cast<int>(number.size()) < p.width) {
    number.insert(0, static_cast<std::size_t>(p.width) - number.size(), p.zero_pad ? '0' : ' ');
  }
  return p.prefix + number + p.suffix;
}

AvatarManifest AvatarManifest::load(const std::filesystem::path& path) {
  const std::string where = "avatar " + path.string();
  const nlohmann::json j = core::parse_json(read_text_file(path, where), where);
  if (!j.is_object()) throw Error::invalid_input(where + ": expected a JSON object");
  AvatarManifest m;
  bool has_frames = false;
  for (const auto& [key, value] : j.items()) {
    auto bad = [&](const char* expected) {
      return Error::invalid_input(where + ": key '" + key + "' is " + core::json_text(value) +
                                  "; expected " + expected);
    };
    auto positive = [&]() {
      if (!value.is_number_integer() || value.get<long long>() < 1 ||
          value.get<long long>() > 1000000000) {
        throw bad("a positive integer");
      }
      return value.get<int>();
    };
    if (key == "name") {
      if (!value.is_string()) throw bad("a string");
      m.name = value.get<std::string>();
    } else if (key == "fps") {
      if (!value.is_number() || value.get<double>() != kAvatarFps) {
        throw bad("25 (SyncTalk_2D avatars are 25 fps)");
      }
    } else if (key == "frames") {
      if (!value.is_string()) throw bad("a frame pattern such as \"frames/%05d.png\"");
      m.frames = value.get<std::string>();
      try {
        validate_frame_pattern(m.frames);
      } catch (const Error& e) {
        throw e.with_context(where + ": key 'frames'");
      }
      has_frames = true;
    } else if (key == "frame_count") {
      m.frame_count = positive();
    } else if (key == "crop_rects") {
      if (!value.is_string()) throw bad("a file name");
      m.crop_rects = value.get<std::string>();
    } else if (key == "width") {
      m.width = positive();
    } else if (key == "height") {
      m.height = positive();
    } else {
      throw Error::invalid_input(where + ": unknown key '" + key +
                                 "' (known: name, fps, frames, frame_count, crop_rects, width, "
                                 "height)");
    }
  }
  for (auto [key, ok] :
       {std::pair{"frames", has_frames}, std::pair{"frame_count", m.frame_count > 0},
        std::pair{"width", m.width > 0}, std::pair{"height", m.height > 0}}) {
    if (!ok) throw Error::invalid_input(where + ": key '" + key + "' is missing");
  }
  return m;
}

void AvatarManifest::save(const std::filesystem::path& path) const {
  const nlohmann::json j{{"name", name},
                         {"fps", fps},
                         {"frames", frames},
                         {"frame_count", frame_count},
                         {"crop_rects", crop_rects},
                         {"width", width},
                         {"height", height}};
  core::write_file_atomically(path, core::json_text(j, 2) + "\n");
}

std::shared_ptr<const Avatar> Avatar::open(const std::filesystem::path& dir,
                                           const AvatarOptions& options) {
  options.validate();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw Error::not_found("avatar " + dir.string() + ": no such folder");
  }
  std::shared_ptr<Avatar> a(new Avatar());
  a->dir_ = dir;
  a->manifest_ = AvatarManifest::load(dir / kAvatarFileName);
  a->rects_ = load_crop_rects(dir / a->manifest_.crop_rects);
  const int n = a->manifest_.frame_count;
  if (static_cast<int>(a->rects_.size()) != n) {
    throw Error::invalid_input("avatar " + dir.string() + ": " + std::to_string(n) +
                               " frames but " + std::to_string(a->rects_.size()) +
                               " crop rects in " + a->manifest_.crop_rects);
  }
  for (int i = 0; i < n; ++i) {
    validate_crop_rect(a->rects_[i], a->manifest_.width, a->manifest_.height,
                       "avatar " + dir.string() + ", frame " + std::to_string(i));
  }
  a->frames_ = std::make_unique<core::LruCache<int, cv::Mat>>(
      static_cast<std::size_t>(options.frame_cache_mb) << 20);
  a->canvases_ = std::make_unique<core::LruCache<int, cv::Mat>>(
      static_cast<std::size_t>(options.roi_cache_mb) << 20);
  a->jpeg_cache_bytes_ = static_cast<std::size_t>(options.jpeg_cache_mb) << 20;
  (void)a->frame(0);  // the first frame must decode and have the stated size
  return a;
}

std::filesystem::path Avatar::frame_path(int index) const {
  return dir_ / format_frame_pattern(manifest_.frames, index);
}

std::shared_ptr<const cv::Mat> Avatar::decode(int index) const {
  const auto path = frame_path(index);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error::not_found("avatar " + dir_.string() + ": frame " + std::to_string(index) + " (" +
                           path.string() + ") is missing");
  }
  auto mat = std::make_shared<cv::Mat>(cv::imread(path.string(), cv::IMREAD_COLOR));
  if (mat->empty()) {
    throw Error::invalid_input("avatar " + dir_.string() + ": frame " + std::to_string(index) +
                               " (" + path.string() + ") cannot be decoded as an image");
  }
  if (mat->cols != manifest_.width || mat->rows != manifest_.height) {
    throw Error::invalid_input(
        "avatar " + dir_.string() + ": frame " + std::to_string(index) + " (" + path.string() +
        ") is " + std::to_string(mat->cols) + " x " + std::to_string(mat->rows) + "; expected " +
        std::to_string(manifest_.width) + " x " + std::to_string(manifest_.height));
  }
  return mat;
}

std::shared_ptr<const cv::Mat> Avatar::frame(int index) const {
  LIPSYNC_CHECK(index >= 0 && index < frame_count());
  return frames_->get_or_make(index, [&] {
    auto mat = decode(index);
    return std::pair{mat, mat->total() * mat->elemSize()};
  });
}

std::shared_ptr<const cv::Mat> Avatar::canvas(int index) const {
  LIPSYNC_CHECK(index >= 0 && index < frame_count());
  return canvases_->get_or_make(index, [&] {
    const auto full = frame(index);
    const CropRect& r = rects_[index];
    auto out = std::make_shared<cv::Mat>();
    cv::resize((*full)(as_cv_rect(r)), *out, cv::Size(kCanvasSize, kCanvasSize), 0, 0,
               cv::INTER_CUBIC);
    return std::pair{std::shared_ptr<const cv::Mat>(out), out->total() * out->elemSize()};
  });
}

void Avatar::pack_generator_input(int index, std::span<float> out) const {
  pack_canvas(*canvas(index), out);
}

int Avatar::warm_caches() const {
  const auto frame_bytes = static_cast<std::size_t>(width()) * height() * 3;
  const auto canvas_bytes = static_cast<std::size_t>(kCanvasSize) * kCanvasSize * 3;
  const auto n =
      std::min({static_cast<std::size_t>(frame_count()), frames_->budget_bytes() / frame_bytes,
                canvases_->budget_bytes() / canvas_bytes});
  core::TaskArena::global().parallel_for(n, 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) (void)canvas(static_cast<int>(i));
  });
  return static_cast<int>(n);
}

std::size_t Avatar::cached_bytes() const {
  return frames_->used_bytes() + canvases_->used_bytes();
}

void pack_canvas(const cv::Mat& canvas, std::span<float> out) {
  LIPSYNC_CHECK(canvas.rows == kCanvasSize && canvas.cols == kCanvasSize &&
                canvas.type() == CV_8UC3);
  LIPSYNC_CHECK_EQ(out.size(), contract::kImageInputSize);
  constexpr std::size_t kPlane = static_cast<std::size_t>(kRoi) * kRoi;
  float* roi = out.data();
  float* masked = out.data() + 3 * kPlane;
  for (int y = 0; y < kRoi; ++y) {
    const unsigned char* src = canvas.ptr<unsigned char>(y + kRoiOffset) + kRoiOffset * 3;
    const bool mask_row = y >= kMaskY0 && y <= kMaskY1;
    for (int x = 0; x < kRoi; ++x) {
      const bool hidden = mask_row && x >= kMaskX0 && x <= kMaskX1;
      for (int c = 0; c < 3; ++c) {
        // A division, not a multiplication by 1/255: the reference's values (last bit).
        const float v = static_cast<float>(src[x * 3 + c]) / 255.0f;
        const std::size_t at = c * kPlane + static_cast<std::size_t>(y) * kRoi + x;
        roi[at] = v;
        masked[at] = hidden ? 0.0f : v;
      }
    }
  }
}

}  // namespace lipsync::avatar
