#include "pipeline/silence_idle.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>

#include "contract/model_family.h"
#include "core/check.h"
#include "core/content_hash.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/mutex.h"
#include "core/stopwatch.h"
#include "pipeline/feature_track.h"
#include "render/compositor.h"

namespace lipsync::pipeline {

namespace {

namespace fs = std::filesystem;

// File layout (native byte order, this machine's cache): magic, key (u32 length + bytes), frame
// count (u32), per frame width and height (u32 each) and its BGR bytes, then the ContentHash of
// everything before it (u64).
constexpr char kMagic[8] = {'L', 'S', 'I', 'D', 'L', 'E', '0', '1'};

// Runs every template frame's silent job and keeps its face.
class IdleBuild final : public BatchClient {
 public:
  IdleBuild(const avatar::Avatar& avatar, std::vector<float> audio, std::vector<cv::Mat>& faces,
            const std::function<void(int, int)>& progress)
      : avatar_(avatar),
        audio_(std::move(audio)),
        faces_(faces),
        progress_(progress),
        left_(static_cast<int>(faces.size())) {}

  void fill(std::int64_t tag, std::span<float> image, std::span<float> audio) override {
    avatar_.pack_generator_input(static_cast<int>(tag), image);
    std::copy(audio_.begin(), audio_.end(), audio.begin());
  }
  void done(std::int64_t tag, std::shared_ptr<const infer::GeneratorBatch> batch,
            int slot) override {
    try {
      render::make_face(avatar_, static_cast<int>(tag), batch->output(slot),
                        faces_[static_cast<std::size_t>(tag)]);
      finished(std::nullopt);
    } catch (const Error& e) {
      finished(e);
    } catch (const std::exception& e) {
      finished(Error::internal(std::string("idle frame: ") + e.what()));
    }
  }
  void failed(std::int64_t /*tag*/, const Error& error) override { finished(error); }

  // Waits for every job; throws the first failure.
  void wait() {
    core::MutexLock lock(mutex_);
    all_done_.wait(lock, [&]() LIPSYNC_REQUIRES(mutex_) { return left_ == 0; });
    if (error_) throw *error_;
  }

 private:
  void finished(const std::optional<Error>& error) {
    const int total = static_cast<int>(faces_.size());
    core::MutexLock lock(mutex_);
    if (error && !error_) error_ = error;
    --left_;
    if (progress_ && !error_) progress_(total - left_, total);
    if (left_ == 0) all_done_.notify_all();
  }

  const avatar::Avatar& avatar_;
  const std::vector<float> audio_;
  std::vector<cv::Mat>& faces_;  // each job writes its own element
  const std::function<void(int, int)>& progress_;
  core::Mutex mutex_;
  core::CondVar all_done_;
  int left_ LIPSYNC_GUARDED_BY(mutex_);
  std::optional<Error> error_ LIPSYNC_GUARDED_BY(mutex_);
};

void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

// Reads from a byte buffer; every read checks the bounds.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  bool take(void* dst, std::size_t n) {
    if (n > bytes_.size() - at_) return false;
    std::memcpy(dst, bytes_.data() + at_, n);
    at_ += n;
    return true;
  }
  bool u32(std::uint32_t& v) { return take(&v, sizeof v); }
  bool at_end() const { return at_ == bytes_.size(); }

 private:
  std::span<const std::byte> bytes_;
  std::size_t at_ = 0;
};

}  // namespace

std::vector<float> silence_frame_audio(const infer::AudioEncoder& encoder) {
  // One second of digital silence: 22 windows, so frame 10's rows A[2..17] are all inside.
  const std::vector<float> zeros(16000, 0.0f);
  const FeatureTrack track =
      FeatureTrack::from_features(encode_clip_features(zeros, encoder, audio::AudioOptions{}));
  std::vector<float> audio(contract::kAudioInputSize);
  track.frame_audio(10, audio);
  return audio;
}

std::string SilenceIdle::key(const avatar::Avatar& avatar, const infer::Models& models) {
  core::ContentHash h;
  h.add("lipsync silence idle v1");
  h.add_file(models.dir() / infer::kGeneratorFileName);
  h.add_file(models.dir() / infer::kEncoderFileName);
  for (const auto& p : models.generator().session().providers()) h.add(p);
  h.add_file(avatar.dir() / avatar::kAvatarFileName);
  h.add(static_cast<std::uint64_t>(avatar.frame_count()));
  for (int t = 0; t < avatar.frame_count(); ++t) {
    const avatar::CropRect& r = avatar.crop_rect(t);
    for (int v : {r.x1, r.y1, r.x2, r.y2}) h.add(static_cast<std::uint64_t>(v));
    h.add_file(avatar.frame_path(t));
  }
  return h.hex();
}

fs::path SilenceIdle::cache_file(const fs::path& cache_dir, const std::string& key) {
  return cache_dir / ("idle-" + key + ".bin");
}

std::shared_ptr<const SilenceIdle> SilenceIdle::load_or_build(
    std::shared_ptr<const avatar::Avatar> avatar, const infer::Models& models, Scheduler& scheduler,
    const fs::path& cache_dir, const std::function<void(int, int)>& progress) {
  std::shared_ptr<SilenceIdle> idle(new SilenceIdle());
  idle->avatar_ = std::move(avatar);
  idle->key_ = key(*idle->avatar_, models);
  const fs::path file = cache_dir.empty() ? fs::path() : cache_file(cache_dir, idle->key_);
  std::error_code ec;
  const bool present = !file.empty() && fs::exists(file, ec);
  if (present && idle->read(file)) {
    idle->from_cache_ = true;
    return idle;
  }
  if (present) idle->cache_note_ = "the cache entry " + file.string() + " is damaged; recomputed";

  core::Stopwatch sw;
  const int n = idle->avatar_->frame_count();
  idle->faces_.assign(static_cast<std::size_t>(n), cv::Mat());
  auto build = std::make_shared<IdleBuild>(*idle->avatar_, silence_frame_audio(models.encoder()),
                                           idle->faces_, progress);
  std::vector<FrameJob> jobs;
  jobs.reserve(static_cast<std::size_t>(n));
  for (int t = 0; t < n; ++t) jobs.push_back(FrameJob{build, t, std::nullopt, {}});
  scheduler.submit(std::move(jobs));
  build->wait();
  idle->build_ms_ = sw.elapsed_ms();

  if (file.empty()) return idle;
  try {
    fs::create_directories(cache_dir, ec);
    const std::vector<std::byte> bytes = idle->serialise();
    core::write_file_atomically(file, bytes);
  } catch (const Error& e) {
    idle->cache_note_ += std::string(idle->cache_note_.empty() ? "" : "; ") +
                         "the idle frames were not kept: " + e.what();
  }
  return idle;
}

std::vector<std::byte> SilenceIdle::serialise() const {
  std::vector<std::byte> out;
  std::size_t payload = 0;
  for (const cv::Mat& f : faces_) payload += f.total() * f.elemSize() + 8;
  out.reserve(payload + key_.size() + 32);
  const auto* magic = reinterpret_cast<const std::byte*>(kMagic);
  out.insert(out.end(), magic, magic + sizeof kMagic);
  put_u32(out, static_cast<std::uint32_t>(key_.size()));
  const auto* k = reinterpret_cast<const std::byte*>(key_.data());
  out.insert(out.end(), k, k + key_.size());
  put_u32(out, static_cast<std::uint32_t>(faces_.size()));
  for (const cv::Mat& f : faces_) {
    LIPSYNC_CHECK(f.type() == CV_8UC3 && f.isContinuous());
    put_u32(out, static_cast<std::uint32_t>(f.cols));
    put_u32(out, static_cast<std::uint32_t>(f.rows));
    out.insert(out.end(), reinterpret_cast<const std::byte*>(f.data),
               reinterpret_cast<const std::byte*>(f.data) + f.total() * f.elemSize());
  }
  const std::uint64_t sum = core::ContentHash().add(out).value();
  const auto* s = reinterpret_cast<const std::byte*>(&sum);
  out.insert(out.end(), s, s + sizeof sum);
  return out;
}

bool SilenceIdle::read(const fs::path& file) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) return false;
  const std::streamoff size = in.tellg();
  if (size < static_cast<std::streamoff>(sizeof kMagic + 8)) return false;
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) return false;
  const std::span<const std::byte> body(bytes.data(), bytes.size() - 8);
  std::uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + body.size(), sizeof sum);
  if (core::ContentHash().add(body).value() != sum) return false;

  Reader r(body);
  char magic[sizeof kMagic];
  std::uint32_t key_size = 0;
  if (!r.take(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof kMagic) != 0 ||
      !r.u32(key_size) || key_size != key_.size()) {
    return false;
  }
  std::string key(key_size, '\0');
  std::uint32_t count = 0;
  if (!r.take(key.data(), key_size) || key != key_ || !r.u32(count) ||
      count != static_cast<std::uint32_t>(avatar_->frame_count())) {
    return false;
  }
  std::vector<cv::Mat> faces(count);
  for (std::uint32_t t = 0; t < count; ++t) {
    const avatar::CropRect& rect = avatar_->crop_rect(static_cast<int>(t));
    std::uint32_t w = 0, h = 0;
    if (!r.u32(w) || !r.u32(h) || static_cast<int>(w) != rect.width() ||
        static_cast<int>(h) != rect.height()) {
      return false;
    }
    faces[t].create(static_cast<int>(h), static_cast<int>(w), CV_8UC3);
    if (!r.take(faces[t].data, faces[t].total() * faces[t].elemSize())) return false;
  }
  if (!r.at_end()) return false;
  faces_ = std::move(faces);
  return true;
}

void SilenceIdle::idle_frame(int template_frame, const render::BlendOptions& blend,
                             cv::Mat& dst) const {
  render::composite_face(*avatar_, template_frame, face(template_frame), blend, dst);
}

std::size_t SilenceIdle::bytes() const {
  std::size_t total = 0;
  for (const cv::Mat& f : faces_) total += f.total() * f.elemSize();
  return total;
}

}  // namespace lipsync::pipeline
