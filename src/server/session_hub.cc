#include "server/session_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <random>

#include "core/mutex.h"

namespace lipsync::server {
namespace {

// 128 bits from the system's entropy source, as hex: a secret no other output predicts.
std::string random_secret() {
  std::random_device entropy;
  std::string text;
  for (int i = 0; i < 4; ++i) {
    char word[9];
    std::snprintf(word, sizeof word, "%08x", static_cast<unsigned>(entropy()));
    text += word;
  }
  return text;
}

std::string random_id() {
  static core::Mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  core::MutexLock lock(mutex);
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return text;
}

// Counts one emitted live frame in the metrics (state, late, underruns, jitter, speech latency);
// `last_underrun` is the caller's per-session memory of the previous frame's flag.
void record_live_frame(ServerMetrics& metrics, const std::string& model,
                       const pipeline::LiveFrame& f, bool& last_underrun) {
  const bool underrun_starts = f.underrun && !last_underrun;
  last_underrun = f.underrun;
  metrics.count_live_frame(model, std::string(pipeline::to_string(f.state)), f.late,
                           underrun_starts);
  metrics.observe_live_jitter_ms(
      std::chrono::duration<double, std::milli>(f.emitted - f.due).count());
  if (f.speech_latency_ms) metrics.observe_speech_latency_ms(*f.speech_latency_ms);
}

}  // namespace

// SessionHub ----------------------------------------------------------------------------------

SessionHub::SessionHub(const ServiceContext& context, webrtc::WebRtcOptions options)
    : context_(context),
      options_(std::move(options)),
      ice_servers_(options_),
      instance_(context.server.resolved_instance_id()) {
  if (context_.live.session_idle_timeout_s > 0) {
    reaper_ = std::thread([this] {
      core::MutexLock lock(mutex_);
      while (!stopped_) {
        if (reaper_wake_.wait_for(lock, std::chrono::seconds(1),
                                  [this]() LIPSYNC_REQUIRES(mutex_) { return stopped_; })) {
          break;
        }
        lock.unlock();
        try {
          expire_idle();
        } catch (const std::exception& e) {
          spdlog::error("live: expiring idle sessions failed: {}", e.what());
        }
        lock.lock();
      }
    });
  }
}

SessionHub::~SessionHub() {
  stop();
}

std::shared_ptr<HubSession> SessionHub::create(const NewSession& spec) {
  const std::string& model = spec.model;
  {
    core::MutexLock lock(mutex_);
    if (stopped_) throw Error::unavailable("the server is shutting down");
    if (draining_) {
      throw Error::unavailable("instance " + instance_ +
                               " is draining (leaving): create the session on another instance");
    }
  }
  context_.registry->check_configured(model);
  std::atomic<int>& count = *context_.live_sessions;
  if (++count > context_.live.max_sessions) {
    --count;
    throw Error::resource_exhausted("too many live sessions (live.max_sessions = " +
                                    std::to_string(context_.live.max_sessions) + ")");
  }
  std::shared_ptr<HubSession> session;
  std::shared_ptr<const pipeline::SilenceIdle> silence_idle;
  try {
    Registry::Lease lease = context_.registry->acquire(model);
    silence_idle = lease.model->silence_idle;
    session = std::make_shared<HubSession>(*this, instance_ + "." + random_id(), model, spec.origin,
                                           std::move(lease));
  } catch (...) {
    --count;  // from here on the session gives its place back when it is destroyed
    throw;
  }
  {
    pipeline::LiveSettings settings;
    settings.encoding = spec.encoding;
    settings.start_frame = spec.start_frame;
    settings.latency_ms = spec.latency_ms;
    settings.jpeg_quality = context_.output.jpeg_quality;
    settings.blend = context_.output.blend_options();
    settings.live = context_.live;
    settings.idle_pictures = context_.idle_pictures;
    settings.silence_idle = std::move(silence_idle);
    settings.pipeline = context_.pipeline;
    settings.audio = context_.audio;
    settings.observe = [metrics = context_.metrics](std::string_view stage, double ms) {
      metrics->observe_ms(std::string(stage), ms);
    };
    session->start(settings);
  }
  core::MutexLock lock(mutex_);
  if (stopped_) {
    session->close();
    throw Error::unavailable("the server is shutting down");
  }
  sessions_[session->id()] = session;
  return session;
}

std::shared_ptr<HubSession> SessionHub::find(const std::string& id) const {
  core::MutexLock lock(mutex_);
  const auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

bool SessionHub::remove(const std::string& id, std::optional<Error> reason,
                        const std::string& why) {
  std::shared_ptr<HubSession> session;
  {
    core::MutexLock lock(mutex_);
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) return false;
    session = it->second;
  }
  session->close(std::move(reason), why);
  forget(id);
  return true;
}

void SessionHub::forget(const std::string& id) {
  core::MutexLock lock(mutex_);
  sessions_.erase(id);
}

std::vector<SessionInfo> SessionHub::list() const {
  std::vector<std::shared_ptr<HubSession>> all;
  {
    core::MutexLock lock(mutex_);
    for (const auto& [id, s] : sessions_) all.push_back(s);
  }
  std::vector<SessionInfo> out;
  for (const auto& s : all) out.push_back(s->info());
  return out;
}

int SessionHub::sessions() const {
  core::MutexLock lock(mutex_);
  return static_cast<int>(sessions_.size());
}

void SessionHub::stop() {
  std::map<std::string, std::shared_ptr<HubSession>> all;
  {
    core::MutexLock lock(mutex_);
    stopped_ = true;
    all.swap(sessions_);
  }
  reaper_wake_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  // Their calls are told why (UNAVAILABLE): a client starts again on another instance.
  for (auto& [id, s] : all) s->close(Error::unavailable("the server is shutting down"), "shutdown");
}

void SessionHub::drain() {
  core::MutexLock lock(mutex_);
  draining_ = true;
}

bool SessionHub::draining() const {
  core::MutexLock lock(mutex_);
  return draining_;
}

int SessionHub::expire_idle() {
  const int timeout = context_.live.session_idle_timeout_s;
  if (timeout <= 0) return 0;
  std::vector<std::shared_ptr<HubSession>> all;
  {
    core::MutexLock lock(mutex_);
    for (const auto& [id, s] : sessions_) {
      if (s->origin() == "http") all.push_back(s);  // a gRPC session ends with its call
    }
  }
  int expired = 0;
  for (const auto& s : all) {
    if (s->in_use()) {
      s->touch();  // the clock starts when the last use ends
      continue;
    }
    if (s->idle_s() < timeout) continue;
    spdlog::info("live: session {} expired ({} s unused, live.session_idle_timeout_s)", s->id(),
                 timeout);
    expired +=
        remove(s->id(),
               Error::unavailable("session " + s->id() + " expired: unused for " +
                                  std::to_string(timeout) + " s (live.session_idle_timeout_s)"),
               "expired");
  }
  return expired;
}

// HubSession ----------------------------------------------------------------------------------

HubSession::HubSession(SessionHub& hub, std::string id, std::string model, std::string origin,
                       Registry::Lease lease)
    : hub_(hub),
      id_(std::move(id)),
      model_(std::move(model)),
      origin_(std::move(origin)),
      viewer_token_(random_secret()),
      lease_(std::move(lease)) {
  touch();
}

HubSession::~HubSession() {
  if (session_) session_->close(true);
  --*hub_.context().live_sessions;
}

void HubSession::start(const pipeline::LiveSettings& settings) {
  const pipeline::LiveSettings& s = settings;
  encoding_ = s.encoding;
  width_ = lease_.model->avatar->width();
  height_ = lease_.model->avatar->height();
  session_ =
      pipeline::LiveSession::create(hub_.context().target(*lease_.model), s, weak_from_this());
  session_->start(*hub_.context().ticker);
}

void HubSession::touch() {
  last_used_ = std::chrono::steady_clock::now().time_since_epoch().count();
}

bool HubSession::in_use() const {
  core::MutexLock lock(mutex_);
  if (!viewers_.empty() || events_.subscribers() > 0) return true;
  if (session_ && session_->taking_speech()) return true;
  if (state_.load() != static_cast<int>(pipeline::LiveState::kIdle)) return true;
  return std::any_of(sinks_.begin(), sinks_.end(),
                     [](const std::weak_ptr<pipeline::LiveSink>& w) { return !w.expired(); });
}

double HubSession::idle_s() const {
  const std::chrono::steady_clock::duration since(last_used_.load());
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch() - since)
      .count();
}

SessionInfo HubSession::info() const {
  SessionInfo i;
  i.id = id_;
  i.model = model_;
  i.origin = origin_;
  i.format = encoding_ == pipeline::FrameEncoding::kNone  ? "raw"
             : encoding_ == pipeline::FrameEncoding::kPng ? "png"
                                                          : "jpeg";
  {
    core::MutexLock lock(mutex_);
    i.viewers = static_cast<int>(viewers_.size());
  }
  i.state = std::string(pipeline::to_string(static_cast<pipeline::LiveState>(state_.load())));
  i.frames = frames_.load();
  i.late_frames = late_.load();
  i.speech_frames = speech_frames_.load();
  i.speech_late_frames = speech_late_.load();
  const double latency = speech_latency_ms_.load();
  if (latency >= 0) i.speech_latency_ms = latency;
  i.latency_ms = session_ ? session_->latency_ms() : 0;
  i.width = width_;
  i.height = height_;
  i.age_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count();
  const int timeout = hub_.context().live.session_idle_timeout_s;
  if (origin_ == "http" && timeout > 0) {
    i.expires_in_s = in_use() ? timeout : std::max(0.0, timeout - idle_s());
  }
  return i;
}

bool HubSession::attach(const std::shared_ptr<pipeline::LiveSink>& sink) {
  core::MutexLock lock(mutex_);
  if (ended_) return false;
  sinks_.push_back(sink);
  return true;
}

void HubSession::detach(const pipeline::LiveSink* sink) {
  core::MutexLock lock(mutex_);
  std::erase_if(sinks_, [sink](const std::weak_ptr<pipeline::LiveSink>& w) {
    auto s = w.lock();
    return !s || s.get() == sink;
  });
}

struct HubSession::MediaSlot {
  explicit MediaSlot(std::shared_ptr<HubSession> s) : session(std::move(s)) {}
  ~MediaSlot() { --session->media_jobs_; }
  MediaSlot(const MediaSlot&) = delete;
  MediaSlot& operator=(const MediaSlot&) = delete;
  const std::shared_ptr<HubSession> session;
};

std::shared_ptr<HubSession::MediaSlot> HubSession::media_slot() {
  if (++media_jobs_ > kMaxMediaJobsPerSession) {
    --media_jobs_;
    return nullptr;
  }
  return std::make_shared<MediaSlot>(shared_from_this());
}

std::pair<std::string, std::string> HubSession::add_viewer(const std::string& offer) {
  if (encoding_ != pipeline::FrameEncoding::kNone) {
    throw Error::invalid_input("session " + id_ +
                               " makes encoded frames for its gRPC client; WebRTC viewers watch "
                               "sessions created over HTTP (POST /v1/sessions)");
  }
  std::string viewer;
  {
    core::MutexLock lock(mutex_);
    if (ended_) throw Error::unavailable("the session has ended");
    viewer = "v" + std::to_string(next_viewer_++);
  }
  std::atomic<int>& count = hub_.viewer_count();
  const int limit = hub_.webrtc_options().max_viewers;
  if (++count > limit) {
    --count;
    throw Error::resource_exhausted(
        "too many viewers (webrtc.max_viewers = " + std::to_string(limit) + ")");
  }
  std::shared_ptr<webrtc::WhepSender> sender;
  try {
    const std::weak_ptr<HubSession> weak = weak_from_this();
    core::WorkerPool* workers = &hub_.control();  // a viewer gone: its teardown
    sender = webrtc::WhepSender::create(
        offer, hub_.webrtc_options(), width_, height_,
        [weak, viewer, workers] {
          workers->post([weak, viewer] {
            if (auto self = weak.lock()) self->drop_viewer(viewer);
          });
        },
        hub_.ice_servers().for_agent(id_));
  } catch (...) {
    --count;
    throw;
  }
  {
    core::MutexLock lock(mutex_);
    if (!ended_) {
      viewers_[viewer] = sender;
      viewers_changed(true, static_cast<int>(viewers_.size()));
      return {viewer, sender->answer()};
    }
  }
  sender->close();
  --count;
  throw Error::unavailable("the session has ended");
}

bool HubSession::remove_viewer(const std::string& viewer) {
  {
    core::MutexLock lock(mutex_);
    if (viewers_.find(viewer) == viewers_.end()) return false;
  }
  drop_viewer(viewer);
  return true;
}

void HubSession::drop_viewer(const std::string& viewer) {
  std::shared_ptr<webrtc::WhepSender> sender;
  {
    core::MutexLock lock(mutex_);
    const auto it = viewers_.find(viewer);
    if (it == viewers_.end()) return;
    sender = std::move(it->second);
    viewers_.erase(it);
    viewers_changed(false, static_cast<int>(viewers_.size()));
  }
  sender->close();
  --hub_.viewer_count();
}

void HubSession::viewers_changed(bool joined, int count) {
  pipeline::LiveEvent e;
  e.type =
      joined ? pipeline::LiveEvent::Type::kViewerJoined : pipeline::LiveEvent::Type::kViewerLeft;
  e.count = count;
  events_.publish(e);
  if (e.seq != 0) between_ticks_.push_back(std::move(e));
}

void HubSession::ended_event(const std::string& why, const std::optional<Error>& error) {
  pipeline::LiveEvent e;
  e.type = pipeline::LiveEvent::Type::kSessionEnded;
  e.reason = why;
  if (error) e.message = error->message();
  events_.publish(e);
  if (e.seq != 0) ended_json_ = e.json;
}

std::string HubSession::ended_json() const {
  core::MutexLock lock(mutex_);
  return ended_json_;
}

std::shared_ptr<SpeechInput> HubSession::begin_speech(std::function<void()> wanted) {
  if (ended()) throw Error::unavailable("the session has ended");
  return session_->open_utterance(std::move(wanted));
}

void HubSession::interrupt(bool again) {
  if (!again) interrupted_at_ = std::chrono::steady_clock::now().time_since_epoch().count();
  session_->interrupt();
  if (!again) hub_.context().metrics->count_interrupt();
  hub_.trim_memory_soon();
}

void HubSession::close(std::optional<Error> reason, const std::string& why) {
  std::map<std::string, std::shared_ptr<webrtc::WhepSender>> viewers;
  // The speech held ends here: its playback_finished events come before session_ended. Taken
  // outside mutex_ (the session's own lock); a second close finds nothing left to cut.
  std::vector<pipeline::LiveEvent> cut = session_->cut_playback();
  {
    core::MutexLock delivery(delivery_mutex_);
    core::MutexLock lock(mutex_);
    if (ended_) return;
    ended_ = true;
    for (auto& e : cut) events_.publish(e);
    // Told first: a socket or an event stream closes once it has sent it.
    ended_event(why, reason);
    close_reason_ = std::move(reason);
    viewers.swap(viewers_);
  }
  session_->close(true);  // the session's on_live_ended tells the attached calls
  for (auto& [id, v] : viewers) {
    v->close();
    --hub_.viewer_count();
  }
  hub_.trim_memory_soon();
}

bool HubSession::ended() const {
  core::MutexLock lock(mutex_);
  return ended_;
}

void HubSession::on_live_frame(pipeline::LiveFrame frame) {
  core::MutexLock delivery(delivery_mutex_);
  ++frames_;
  if (frame.late) ++late_;
  if (frame.state == pipeline::LiveState::kSpeaking) {
    ++speech_frames_;
    if (frame.late) ++speech_late_;
  }
  state_ = static_cast<int>(frame.state);
  if (frame.speech_latency_ms) speech_latency_ms_ = *frame.speech_latency_ms;
  {
    core::MutexLock lock(mutex_);  // the events of no tick are numbered before, or after, all
    for (auto& e : frame.events) events_.publish(e);  // numbered before any client sees them
    if (!between_ticks_.empty()) {
      frame.events.insert(frame.events.begin(), std::make_move_iterator(between_ticks_.begin()),
                          std::make_move_iterator(between_ticks_.end()));
      between_ticks_.clear();
    }
  }
  for (auto& e : frame.events) {
    if (e.type == pipeline::LiveEvent::Type::kPlaybackFinished && e.interrupted) {
      const auto at = interrupted_at_.exchange(0);
      if (at != 0) {
        const std::chrono::steady_clock::duration since(at);
        hub_.context().metrics->observe_interrupt_ack_ms(
            std::chrono::duration<double, std::milli>(frame.emitted.time_since_epoch() - since)
                .count());
      }
    }
  }
  record_live_frame(*hub_.context().metrics, model_, frame, last_underrun_);
  std::vector<std::shared_ptr<pipeline::LiveSink>> sinks;
  {
    core::MutexLock lock(mutex_);
    for (auto& [id, v] : viewers_) v->push(frame.index, frame.picture, frame.samples);
    for (const auto& w : sinks_) {
      if (auto s = w.lock()) sinks.push_back(std::move(s));
    }
  }
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    sinks[i]->on_live_frame(i + 1 == sinks.size() ? std::move(frame) : frame);
  }
}

void HubSession::on_speech_wanted() {
  std::vector<std::shared_ptr<pipeline::LiveSink>> sinks;
  {
    core::MutexLock lock(mutex_);
    for (const auto& w : sinks_) {
      if (auto s = w.lock()) sinks.push_back(std::move(s));
    }
  }
  for (auto& s : sinks) s->on_speech_wanted();
}

void HubSession::on_live_ended(const std::optional<Error>& error) {
  if (error) spdlog::warn("live session {} failed: {}", id_, error->what());
  std::vector<std::shared_ptr<pipeline::LiveSink>> sinks;
  std::optional<Error> told = error;
  {
    core::MutexLock lock(mutex_);
    ended_event(error ? "error" : "closed", error);
    for (const auto& w : sinks_) {
      if (auto s = w.lock()) sinks.push_back(std::move(s));
    }
    sinks_.clear();
    if (!told) told = close_reason_;
  }
  for (auto& s : sinks) s->on_live_ended(told);
  // Viewer teardown blocks: not on the ticker or a session thread.
  hub_.control().post([weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self) return;
    self->close();
    self->hub_.forget(self->id_);
  });
}

}  // namespace lipsync::server
