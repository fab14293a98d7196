#include "avatar/avatar_import.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <vector>

#include "avatar/avatar.h"
#include "avatar/crop_rect.h"
#include "avatar/video_reader.h"
#include "contract/demo_mouth.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/task_arena.h"
#include "core/text.h"

namespace lipsync::avatar {
namespace {

namespace fs = std::filesystem;

// The avatar folder's staging folder, with its frames/ made.
struct Staging : core::StagingFolder {
  explicit Staging(const fs::path& out) : core::StagingFolder(out, "avatar output") {
    make_subfolder("frames");
  }
};

// Decodes every frame (in parallel) to check it reads and that all share one size.
cv::Size check_frames(const std::vector<fs::path>& files) {
  std::vector<cv::Size> sizes(files.size());
  std::vector<std::string> errors(files.size());
  core::TaskArena::global().parallel_for(files.size(), 4, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) {
      const cv::Mat m = cv::imread(files[i].string(), cv::IMREAD_COLOR);
      if (m.empty()) {
        errors[i] = "frame " + std::to_string(i) + " (" + files[i].string() +
                    ") cannot be decoded as an image";
      }
      sizes[i] = m.size();
    }
  });
  for (const auto& e : errors) {
    if (!e.empty()) throw Error::invalid_input(e);
  }
  for (std::size_t i = 1; i < files.size(); ++i) {
    if (sizes[i] != sizes[0]) {
      throw Error::invalid_input("frame " + std::to_string(i) + " (" + files[i].string() + ") is " +
                                 std::to_string(sizes[i].width) + " x " +
                                 std::to_string(sizes[i].height) + "; frame 0 is " +
                                 std::to_string(sizes[0].width) + " x " +
                                 std::to_string(sizes[0].height));
    }
  }
  return sizes.empty() ? cv::Size() : sizes[0];
}

void check_rects(const std::vector<CropRect>& rects, int frames, cv::Size size) {
  if (static_cast<int>(rects.size()) != frames) {
    throw Error::invalid_input(std::to_string(frames) + " frames but " +
                               std::to_string(rects.size()) + " crop rects");
  }
  for (int i = 0; i < frames; ++i) {
    validate_crop_rect(rects[i], size.width, size.height, "frame " + std::to_string(i));
  }
}

bool is_image_extension(const std::string& ext) {
  static const char* kKnown[] = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"};
  return std::any_of(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return ext == k; });
}

// Copies the ordered frame files into staging/frames/%05d<ext> and writes the manifest and rects.
ImportSummary finish(Staging& staging, const std::vector<fs::path>& files, const std::string& ext,
                     const std::vector<CropRect>& rects, cv::Size size, const std::string& name) {
  for (std::size_t i = 0; i < files.size(); ++i) {
    const fs::path to = staging.dir() / format_frame_pattern("frames/%05d" + ext, int(i));
    std::error_code ec;
    fs::copy_file(files[i], to, ec);
    if (ec) throw Error::invalid_input("cannot copy " + files[i].string() + ": " + ec.message());
  }
  AvatarManifest m;
  m.name = name;
  m.frames = "frames/%05d" + ext;
  m.frame_count = static_cast<int>(files.size());
  m.width = size.width;
  m.height = size.height;
  save_crop_rects(staging.dir() / kCropRectsFileName, rects);
  m.save(staging.dir() / kAvatarFileName);
  staging.commit();
  return {m.frame_count, m.width, m.height};
}

}  // namespace

ImportSummary import_synctalk(const fs::path& dir, const fs::path& out, const std::string& name) {
  const std::string where = "synctalk folder " + dir.string();
  std::error_code ec;
  if (!fs::is_directory(dir / "full_body_img", ec) || !fs::is_directory(dir / "landmarks", ec)) {
    throw Error::not_found(where + ": expected full_body_img/ and landmarks/ inside it");
  }
  int n = 0;
  while (fs::exists(dir / "full_body_img" / (std::to_string(n) + ".jpg"), ec)) ++n;
  if (n == 0) throw Error::invalid_input(where + ": full_body_img/0.jpg is missing");
  std::vector<fs::path> files;
  std::vector<CropRect> rects;
  for (int i = 0; i < n; ++i) {
    files.push_back(dir / "full_body_img" / (std::to_string(i) + ".jpg"));
    rects.push_back(crop_from_landmarks(dir / "landmarks" / (std::to_string(i) + ".lms")));
  }
  try {
    const cv::Size size = check_frames(files);
    check_rects(rects, n, size);
    Staging staging(out);
    return finish(staging, files, ".jpg", rects, size, name);
  } catch (const Error& e) {
    throw e.with_context(where);
  }
}

ImportSummary import_frames(const fs::path& frames, const fs::path& rects_file, const fs::path& out,
                            const std::string& name) {
  const std::vector<CropRect> rects = load_crop_rects(rects_file);
  std::error_code ec;
  if (fs::is_directory(frames, ec)) {
    const std::string where = "frames folder " + frames.string();
    // Order by the last number in each file name.
    std::map<long long, fs::path> ordered;
    std::string ext;
    for (const auto& entry : fs::directory_iterator(frames)) {
      if (!entry.is_regular_file()) continue;
      const std::string e = core::to_lower_ascii(entry.path().extension().string());
      if (!is_image_extension(e)) continue;
      const std::string stem = entry.path().stem().string();
      const auto last = stem.find_last_of("0123456789");
      if (last == std::string::npos) {
        throw Error::invalid_input(where + ": " + entry.path().filename().string() +
                                   " has no frame number in its name");
      }
      auto first = stem.find_last_not_of("0123456789", last);
      first = first == std::string::npos ? 0 : first + 1;
      std::string digits = stem.substr(first, last - first + 1);
      digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size() - 1));
      if (digits.size() > 18) {  // more than a long long holds
        throw Error::invalid_input(where + ": " + core::quote(entry.path().filename().string()) +
                                   " has a frame number of " + std::to_string(digits.size()) +
                                   " digits; at most 18");
      }
      const long long number = std::stoll(digits);
      if (!ordered.emplace(number, entry.path()).second) {
        throw Error::invalid_input(where + ": " + entry.path().filename().string() + " and " +
                                   ordered[number].filename().string() +
                                   " have the same frame number");
      }
      if (!ext.empty() && e != ext) {
        throw Error::invalid_input(where + ": mixed image types (" + ext + " and " + e +
                                   "); convert them to one format");
      }
      ext = e;
    }
    if (ordered.empty()) throw Error::invalid_input(where + ": no image files");
    std::vector<fs::path> files;
    for (auto& [number, path] : ordered) files.push_back(path);
    try {
      const cv::Size size = check_frames(files);
      check_rects(rects, static_cast<int>(files.size()), size);
      Staging staging(out);
      return finish(staging, files, ext, rects, size, name);
    } catch (const Error& e) {
      throw e.with_context(where);
    }
  }
  // A video file: decode every frame to PNG.
  const std::string where = "video " + frames.string();
  if (!fs::exists(frames, ec)) throw Error::not_found(where + ": no such file or folder");
  VideoReader reader(frames);
  Staging staging(out);
  cv::Mat frame;
  int n = 0;
  const std::vector<int> png{cv::IMWRITE_PNG_COMPRESSION, 1};
  while (reader.read(frame)) {
    if (n >= static_cast<int>(rects.size())) {
      throw Error::invalid_input(where + ": more frames than the " + std::to_string(rects.size()) +
                                 " crop rects");
    }
    validate_crop_rect(rects[n], frame.cols, frame.rows, where + ", frame " + std::to_string(n));
    const fs::path to = staging.dir() / format_frame_pattern("frames/%05d.png", n);
    if (!cv::imwrite(to.string(), frame, png)) {
      throw Error::invalid_input("cannot write " + to.string());
    }
    ++n;
  }
  if (n == 0) throw Error::invalid_input(where + ": no frames");
  check_rects(rects, n, {reader.width(), reader.height()});
  AvatarManifest m;
  m.name = name;
  m.frames = "frames/%05d.png";
  m.frame_count = n;
  m.width = reader.width();
  m.height = reader.height();
  save_crop_rects(staging.dir() / kCropRectsFileName, rects);
  m.save(staging.dir() / kAvatarFileName);
  staging.commit();
  return {n, m.width, m.height};
}

// The demo avatar ---------------------------------------------------------------------------

namespace {

struct DemoPose {
  double cx, cy;      // head centre
  double eye_open;    // 0 closed .. 1 open
  double mouth_open;  // 0 closed (the smile) .. 1 as open as the demo generator's widest
};

DemoPose demo_pose(int i, int frames, int width, int height) {
  const double s = height / 720.0;
  const double t = frames > 1 ? double(i) / frames : 0.0;
  DemoPose p;
  p.cx = width / 2.0 + 6.0 * s * std::sin(2 * M_PI * t);
  p.cy = height * 0.45 + 3.0 * s * std::sin(4 * M_PI * t + 0.7);
  // One blink every 2 s (50 frames): 4 frames, as 0.6, 0.15, 0, 0.5.
  static const double kBlink[] = {0.6, 0.15, 0.0, 0.5};
  const int phase = i % 50;
  p.eye_open = (phase >= 22 && phase < 26) ? kBlink[phase - 22] : 1.0;
  // The template talks, as the video of a trained avatar does: in each second three syllables,
  // then a pause, so idling on the template itself shows a moving mouth (avatar.idle: template).
  static const double kTalk[] = {0.0, 0.35, 0.8, 0.5, 0.0, 0.3, 0.9, 1.0, 0.4, 0.0, 0.5, 0.7, 0.2,
                                 0.0, 0.0,  0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  p.mouth_open = kTalk[i % 25];
  return p;
}

cv::Point pt(double x, double y) {
  return {int(std::lround(x)), int(std::lround(y))};
}

void draw_demo_frame(cv::Mat& img, const DemoPose& p, double s) {
  const int w = img.cols, h = img.rows;
  // Background: a vertical gradient with soft diagonal stripes and a checkerboard panel.
  for (int y = 0; y < h; ++y) {
    auto* row = img.ptr<cv::Vec3b>(y);
    for (int x = 0; x < w; ++x) {
      const double g = double(y) / h;
      const int stripe = ((x + y) / int(24 * s + 1)) % 2 ? 8 : 0;
      row[x] =
          cv::Vec3b(uchar(150 - 60 * g + stripe), uchar(120 - 30 * g + stripe), uchar(90 + 40 * g));
    }
  }
  const int cell = int(20 * s) + 1;
  for (int y = int(60 * s); y < int(260 * s); ++y) {
    for (int x = int(40 * s); x < int(240 * s) && x < w; ++x) {
      if (((x / cell) + (y / cell)) % 2) img.at<cv::Vec3b>(y, x) = cv::Vec3b(200, 200, 210);
    }
  }
  const auto aa = cv::LINE_AA;
  const cv::Scalar skin(150, 190, 235), shade(120, 160, 210), dark(40, 40, 60);
  // Shoulders and neck.
  cv::ellipse(img, pt(p.cx, p.cy + 330 * s), cv::Size(int(260 * s), int(140 * s)), 0, 180, 360,
              cv::Scalar(90, 60, 40), -1, aa);
  cv::rectangle(img, pt(p.cx - 55 * s, p.cy + 120 * s), pt(p.cx + 55 * s, p.cy + 230 * s), shade,
                -1, aa);
  // Ears, head, hair.
  for (int side : {-1, 1}) {
    cv::ellipse(img, pt(p.cx + side * 150 * s, p.cy + 10 * s), cv::Size(int(22 * s), int(40 * s)),
                0, 0, 360, shade, -1, aa);
  }
  cv::ellipse(img, pt(p.cx, p.cy), cv::Size(int(150 * s), int(195 * s)), 0, 0, 360, skin, -1, aa);
  cv::ellipse(img, pt(p.cx, p.cy - 120 * s), cv::Size(int(160 * s), int(100 * s)), 0, 180, 360,
              cv::Scalar(40, 60, 90), -1, aa);
  // Eyebrows and eyes.
  for (int side : {-1, 1}) {
    const double ex = p.cx + side * 58 * s, ey = p.cy - 40 * s;
    cv::line(img, pt(ex - 28 * s, ey - 34 * s), pt(ex + 28 * s, ey - 38 * s), dark,
             std::max(1, int(6 * s)), aa);
    const int eh = std::max(1, int(18 * s * p.eye_open));
    cv::ellipse(img, pt(ex, ey), cv::Size(int(30 * s), eh), 0, 0, 360, cv::Scalar(250, 250, 250),
                -1, aa);
    if (p.eye_open > 0.3) {
      cv::circle(img, pt(ex, ey), std::max(1, int(11 * s * p.eye_open)), cv::Scalar(80, 50, 20), -1,
                 aa);
    }
    cv::ellipse(img, pt(ex, ey), cv::Size(int(30 * s), eh), 0, 0, 360, dark,
                std::max(1, int(2 * s)), aa);
  }
  // Nose, cheeks, the closed mouth.
  cv::line(img, pt(p.cx, p.cy - 10 * s), pt(p.cx - 10 * s, p.cy + 40 * s), shade,
           std::max(1, int(4 * s)), aa);
  cv::line(img, pt(p.cx - 10 * s, p.cy + 40 * s), pt(p.cx + 8 * s, p.cy + 42 * s), shade,
           std::max(1, int(4 * s)), aa);
  for (int side : {-1, 1}) {
    cv::circle(img, pt(p.cx + side * 85 * s, p.cy + 50 * s), int(20 * s), cv::Scalar(140, 160, 240),
               -1, aa);
  }
  const auto& lips = contract::kDemoLips;
  if (p.mouth_open > 0) {
    // The open mouth the demo generator paints for loud audio, as dark as its: the skin times
    // 1 - kDemoMouthDarkness, in an ellipse of the generator's size (ROI pixels to frame pixels).
    const double unit = s / contract::kDemoRoiPerUnit;
    const auto& m = contract::kDemoMouth;
    const double k = 1.0 - contract::kDemoMouthDarkness;
    cv::ellipse(img, pt(p.cx, p.cy + 95 * s),
                cv::Size(int(m.half_width * unit),
                         std::max(1, int(m.half_height_open * unit * p.mouth_open))),
                0, 0, 360, cv::Scalar(skin[0] * k, skin[1] * k, skin[2] * k), -1, aa);
  } else {
    cv::ellipse(img, pt(p.cx, p.cy + 95 * s),
                cv::Size(int(lips.half_width * s), int(lips.half_height * s)), 0, 0, 180,
                cv::Scalar(lips.blue, lips.green, lips.red), std::max(1, int(lips.stroke * s)), aa);
  }
}

}  // namespace

ImportSummary write_demo_avatar(const fs::path& out, int frames, int width, int height) {
  if (frames < 1 || frames > 100000) {
    throw Error::invalid_input("demo avatar: --frames " + std::to_string(frames) +
                               " is out of range; expected 1 to 100000");
  }
  if (width < 320 || height < 240 || width > 7680 || height > 4320) {
    throw Error::invalid_input("demo avatar: size " + std::to_string(width) + " x " +
                               std::to_string(height) +
                               " is out of range; expected 320 x 240 "
                               "to 7680 x 4320");
  }
  Staging staging(out);
  const double s = height / 720.0;
  // The crop: a square of side 200 s whose canvas puts the drawn mouth at the demo generator's
  // mouth centre. ROI (u, v) is canvas (u + 4, v + 4), which samples crop ((u + 4.5) S / 328 -
  // 0.5).
  const int side = std::max(40, int(std::lround(200 * s)));
  const auto& mouth = contract::kDemoMouth;
  const double mx = (mouth.centre_x + kRoiOffset + 0.5) * side / kCanvasSize - 0.5;
  const double my = (mouth.centre_y + kRoiOffset + 0.5) * side / kCanvasSize - 0.5;
  std::vector<CropRect> rects(frames);
  std::vector<std::string> errors(frames);
  core::TaskArena::global().parallel_for(std::size_t(frames), 4, [&](std::size_t b, std::size_t e) {
    cv::Mat img(height, width, CV_8UC3);
    for (std::size_t i = b; i < e; ++i) {
      const DemoPose p = demo_pose(int(i), frames, width, height);
      draw_demo_frame(img, p, s);
      const int x1 = int(std::lround(p.cx - mx));
      const int y1 = int(std::lround(p.cy + 95 * s - my));
      rects[i] = {x1, y1, x1 + side, y1 + side};
      const fs::path to = staging.dir() / format_frame_pattern("frames/%05d.png", int(i));
      if (!cv::imwrite(to.string(), img, {cv::IMWRITE_PNG_COMPRESSION, 1})) {
        errors[i] = "cannot write " + to.string();
      }
    }
  });
  for (const auto& e : errors) {
    if (!e.empty()) throw Error::invalid_input("demo avatar: " + e);
  }
  check_rects(rects, frames, {width, height});
  AvatarManifest m;
  m.name = "demo";
  m.frames = "frames/%05d.png";
  m.frame_count = frames;
  m.width = width;
  m.height = height;
  save_crop_rects(staging.dir() / kCropRectsFileName, rects);
  m.save(staging.dir() / kAvatarFileName);
  staging.commit();
  return {frames, width, height};
}

}  // namespace lipsync::avatar
