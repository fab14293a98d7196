#include "pipeline/live_session.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <opencv2/core.hpp>

#include "avatar/template_walk.h"
#include "core/check.h"
#include "core/error.h"
#include "core/mutex.h"
#include "render/compositor.h"
#include "render/image_encoder.h"

namespace lipsync::pipeline {
namespace {

using std::chrono::milliseconds;

using timeline::kTick;
// Frame 0 is due this long after start(), so that its picture can be prepared.
// Idle and fade pictures are prepared this many ticks ahead.
constexpr std::int64_t kPrefetchTicks = 8;
// A frame's job is due this long before its tick, for compositing and encoding.
constexpr auto kOutputMargin = milliseconds(20);
// What a frame needs past its own start (REFERENCE.md §4: frame i needs feature i + 6), and the
// generator time assumed before a model has run a batch.
constexpr int kLookaheadMs = 460;
constexpr int kUnknownBatchMs = 200;
// From frame 0's picture being ready to its tick: time for the next ones to be drawn.
constexpr auto kStartLead = milliseconds(80);
// An utterance that starts within this many ticks of the last speech shown goes on that speech
// run (its seniority under overload, batch_policy.h); a longer pause starts a new run.
constexpr std::int64_t kRunGapTicks = 25;
// A queued utterance is scheduled (its producer started) only once the one before it ends within
// this many ticks: the producers that run at once, and the generator output they keep, are
// bounded by time, not by how many utterances are queued.
constexpr std::int64_t kScheduleAheadTicks = 75;
// Idle pictures kept per session (one per template frame of the walk).
// A session's own idle pictures when the server shares none.
constexpr std::size_t kOwnIdlePicturesBytes = 32u << 20;

std::int16_t to_s16(float v) {
  const float scaled = std::round(v * 32768.0f);
  return static_cast<std::int16_t>(std::clamp(scaled, -32768.0f, 32767.0f));
}

// Hands a producer's frames of one utterance to the session.
class UtteranceConsumer final : public FrameConsumer {
 public:
  UtteranceConsumer(std::weak_ptr<LiveSession> session,
                    std::weak_ptr<LiveSession::Utterance> utterance)
      : session_(std::move(session)), utterance_(std::move(utterance)) {}
  void on_frame(ProducedFrame frame) override {
    auto s = session_.lock();
    auto u = utterance_.lock();
    if (s && u) s->on_speech_frame(u, std::move(frame));
  }
  void on_finished() override {}
  void on_failed(const Error& error) override {
    if (auto s = session_.lock()) s->on_utterance_failed(error);
  }

 private:
  std::weak_ptr<LiveSession> session_;
  std::weak_ptr<LiveSession::Utterance> utterance_;
};

}  // namespace

const core::ConfigTable<LiveOptions>& LiveOptions::config() {
  static const auto table =
      core::ConfigTable<LiveOptions>("live")
          .integer("max_sessions", &LiveOptions::max_sessions, 1, 10000,
                   "live sessions at once; more get RESOURCE_EXHAUSTED")
          .integer("max_buffered_s", &LiveOptions::max_buffered_s, 1, 3600,
                   "speech queued and not yet played per session; when full the session stops "
                   "reading (flow control)")
          .integer("latency_ms", &LiveOptions::latency_ms, 0, 10000,
                   "how long after it could first be shown speech is shown; 0 = the model's "
                   "lookahead plus one generator batch, computed")
          .integer("crossfade_frames", &LiveOptions::crossfade_frames, 0, 25,
                   "frames blending template and generated crops at speech start and end")
          .integer("interrupt_fade_frames", &LiveOptions::interrupt_fade_frames, 0, 25,
                   "frames fading the last speech frame back to idle after an interrupt")
          .integer("idle_cache_mb", &LiveOptions::idle_cache_mb, 1, 1048576,
                   "encoded idle (template) frames kept for all sessions of the server; idling "
                   "then costs no encoding")
          .integer("session_idle_timeout_s", &LiveOptions::session_idle_timeout_s, 0, 604800,
                   "an HTTP session with no viewer, socket, attached call, speech or request for "
                   "this long ends (expired); POST /v1/sessions/ID/keepalive resets it; 0 = "
                   "never")
          .integer("utterance_idle_timeout_s", &LiveOptions::utterance_idle_timeout_s, 0, 3600,
                   "an utterance left open (?continue=1, a Live call without segment_end, a "
                   "WebSocket that stops sending) ends after this long without audio; 0 = never");
  return table;
}

void LiveOptions::validate() const {
  config().validate(*this);
}

std::string_view to_string(LiveState state) {
  switch (state) {
    case LiveState::kIdle:
      return "idle";
    case LiveState::kSpeaking:
      return "speaking";
    case LiveState::kFading:
      return "fading";
  }
  return "idle";
}

// One utterance: its audio as played (input plus inserted silence), its place on the timeline
// and its producer. Its samples are kept once, here: the producer reads them as it needs them
// (its source) and each tick copies its own; what both are past is dropped. Guarded by the
// session's mutex.
struct LiveSession::Utterance {
  int number = 0;
  SteadyTime first_audio{};      // its first sample's arrival
  SteadyTime last_audio{};       // its last sample's (or its opening)
  std::int64_t start_tick = -1;  // the tick of its frame 0, once scheduled
  SteadyTime run_since{};        // when its speech run began, once scheduled
  int frames = -1;               // ticks it plays for, once ended
  bool ended = false;
  std::int64_t received = 0;  // input samples
  // Played positions [base, base + audio.size()): input samples and inserted silence.
  std::vector<float> audio;
  std::int64_t base = 0;
  std::int64_t read = 0;  // the producer has read the positions before this
  std::vector<std::pair<std::int64_t, std::int64_t>> gaps;  // inserted silence: (position, length)
  std::shared_ptr<FrameProducer> producer;
  std::shared_ptr<FrameConsumer> consumer;
  // What its emitted frames carried: whether one was shown, the input samples heard, and the
  // underrun going on (its first tick and inserted samples so far).
  bool started = false;
  bool reported = false;  // its playback_finished is out
  std::int64_t heard = 0;
  std::int64_t underrun_tick = -1;
  std::int64_t underrun_samples = 0;

  // The played positions it has: input and inserted silence.
  std::int64_t end() const { return base + static_cast<std::int64_t>(audio.size()); }

  // Drops the positions before `pos` once they are half of what it keeps.
  void forget_before(std::int64_t pos) {
    const std::int64_t n = std::min(pos, end()) - base;
    if (n > 0 && static_cast<std::size_t>(n) >= audio.size() / 2) {
      audio.erase(audio.begin(), audio.begin() + n);
      base += n;
    }
  }

  // The inserted samples (an underrun's silence) among played positions [pos, pos + n).
  std::int64_t inserted_in(std::int64_t pos, std::int64_t n) const {
    std::int64_t inside = 0;
    for (const auto& [at, length] : gaps) {
      inside += std::max<std::int64_t>(0, std::min(at + length, pos + n) - std::max(at, pos));
    }
    return inside;
  }

  // The input samples among played positions [pos, pos + n): not inserted silence, and not the
  // padding past what was received.
  std::int64_t input_samples_in(std::int64_t pos, std::int64_t n) const {
    std::int64_t before = 0;  // inserted samples before pos
    std::int64_t inside = 0;  // and inside the range
    for (const auto& [at, length] : gaps) {
      before += std::clamp<std::int64_t>(pos - at, 0, length);
      inside += std::max<std::int64_t>(0, std::min(at + length, pos + n) - std::max(at, pos));
    }
    const std::int64_t first = pos - before;
    return std::max<std::int64_t>(0, std::min(first + n - inside, received) - first);
  }

  // The input sample that played position `pos` holds (or that follows a gap there), and
  // whether `pos` is inserted silence.
  std::pair<std::int64_t, bool> input_position(std::int64_t pos) const {
    std::int64_t shift = 0;
    for (const auto& [at, length] : gaps) {
      if (pos < at) break;
      if (pos < at + length) return {at - shift, true};
      shift += length;
    }
    return {pos - shift, false};
  }
};

// A prepared picture for one tick.
struct LiveSession::Picture {
  LiveState kind = LiveState::kIdle;
  int utterance = -1;
  std::shared_ptr<const core::SharedBytes> bytes;
  // Speech pictures: the generator output (for a later fade) and the window slot to release.
  std::shared_ptr<const infer::GeneratorBatch> batch;
  int slot = 0;
  std::shared_ptr<FrameProducer> producer;
};

// What a tick shows.
struct LiveSession::Segment {
  LiveState state = LiveState::kIdle;
  std::shared_ptr<Utterance> utterance;
  int frame = -1;  // the utterance's frame, or the fade's step
  int template_frame = 0;
};

LiveSession::LiveSession(FrameTarget target, LiveSettings settings, std::weak_ptr<LiveSink> sink)
    : target_(std::move(target)),
      settings_(std::move(settings)),
      sink_(std::move(sink)),
      strand_(std::make_shared<core::Strand>(*target_.workers)) {
  LIPSYNC_CHECK(target_.avatar && target_.scheduler && target_.workers && target_.encoder);
  settings_.live.validate();
  settings_.pipeline.validate();
  settings_.audio.validate();
  const int n = target_.avatar->frame_count();
  if (settings_.start_frame < 0 || settings_.start_frame >= n) {
    throw Error::invalid_input("start_frame " + std::to_string(settings_.start_frame) +
                               " is out of range; the avatar has " + std::to_string(n) + " frames");
  }
  latency_ms_ = settings_.latency_ms > 0 ? settings_.latency_ms : settings_.live.latency_ms;
  if (latency_ms_ <= 0) {
    const auto batch =
        std::chrono::duration_cast<milliseconds>(target_.scheduler->expected_batch_time()).count();
    latency_ms_ =
        kLookaheadMs + static_cast<int>(batch > 0 ? batch : kUnknownBatchMs) + audio::kMsPerFrame;
  }
  // Whole ticks.
  idle_pictures_ = settings_.idle_pictures
                       ? settings_.idle_pictures
                       : std::make_shared<IdlePictureCache>(kOwnIdlePicturesBytes);
  latency_ticks_ = timeline::latency_ticks(latency_ms_);
  latency_ms_ = latency_ticks_ * audio::kMsPerFrame;
}

LiveSession::~LiveSession() = default;

std::shared_ptr<LiveSession> LiveSession::create(FrameTarget target, LiveSettings settings,
                                                 std::weak_ptr<LiveSink> sink) {
  return std::shared_ptr<LiveSession>(
      new LiveSession(std::move(target), std::move(settings), std::move(sink)));
}

void LiveSession::start(Ticker& ticker) {
  {
    core::MutexLock lock(mutex_);
    LIPSYNC_CHECK(!started_);
    started_ = true;
  }
  // The clock starts once frame 0's picture is ready (plus a lead for the next ones), so that
  // the first frames are not late when many sessions start at once: each start waits for the
  // work queued before it.
  target_.workers->post([self = shared_from_this(), ticker = &ticker] {
    Segment first;
    {
      core::MutexLock lock(self->mutex_);
      first = self->segment_locked(0);
      self->preparing_[0] = true;
    }
    self->prepare_picture(0, first);
    {
      core::MutexLock lock(self->mutex_);
      if (self->ended_) return;
      self->t0_ = SteadyClock::now() + kStartLead;
      self->clock_running_ = true;
      self->prefetch_locked(0);
    }
    ticker->add(self);
    self->strand_->post([self] { self->maintain(); });
  });
}

SteadyTime LiveSession::due(std::int64_t tick) const {
  return timeline::due(t0_, tick);
}

SteadyTime LiveSession::next_tick() const {
  core::MutexLock lock(mutex_);
  return due(next_index_);
}

LiveSession::Segment LiveSession::segment_locked(std::int64_t tick) {
  Segment s;
  s.template_frame = avatar::template_frame_for(
      static_cast<int>(tick % (1LL << 30)), target_.avatar->frame_count(), settings_.start_frame);
  std::vector<timeline::Placement> queue;
  queue.reserve(utterances_.size());
  for (const auto& u : utterances_) queue.push_back({u->start_tick, u->frames});
  const timeline::Shows shows =
      timeline::what_tick_shows(tick, queue, fade_, last_output_ != nullptr);
  s.state = shows.state;
  s.frame = shows.frame;  // kFading: -1 is the hold
  if (shows.utterance >= 0) s.utterance = utterances_[static_cast<std::size_t>(shows.utterance)];
  return s;
}

// The handle of the session's current utterance; its calls go to the session under its lock.
class LiveSession::Writer final : public SpeechInput {
 public:
  Writer(std::weak_ptr<LiveSession> session, std::uint64_t id, int utterance)
      : session_(std::move(session)), id_(id), utterance_(utterance) {}
  bool add(std::vector<float> samples) override {
    auto s = session_.lock();
    if (!s) return true;
    const auto n = static_cast<std::int64_t>(samples.size());
    bool room = true;
    if (s->write(id_, std::move(samples), room)) taken_ += n;
    return room;
  }
  void end(bool keep_open) override {
    if (auto s = session_.lock()) s->end_writer(id_, keep_open);
  }
  void abandon() override { end(false); }
  State state() override {
    const auto why = static_cast<State>(state_.load());
    if (why != State::kOpen) return why;
    return session_.expired() ? State::kSessionEnded : State::kOpen;
  }
  std::int64_t taken() const override { return taken_.load(); }
  int utterance() const override { return utterance_; }
  // The session's: it takes nothing more, for this reason.
  void close(State why) {
    int open = static_cast<int>(State::kOpen);
    state_.compare_exchange_strong(open, static_cast<int>(why));
  }

 private:
  const std::weak_ptr<LiveSession> session_;
  const std::uint64_t id_;
  const int utterance_;
  std::atomic<int> state_{static_cast<int>(State::kOpen)};
  std::atomic<std::int64_t> taken_{0};
};

std::shared_ptr<SpeechInput> LiveSession::open_utterance(std::function<void()> wanted) {
  core::MutexLock lock(mutex_);
  if (ended_ || closing_) throw Error::unavailable("the session has ended");
  if (writer_ != 0) return nullptr;  // another input writes the open one
  if (!open_) {
    auto u = std::make_shared<Utterance>();
    u->number = next_utterance_++;
    utterances_.push_back(u);
    open_ = true;
  }
  writer_ = ++last_writer_;
  wanted_ = std::move(wanted);
  utterances_.back()->last_audio = SteadyClock::now();
  auto writer = std::make_shared<Writer>(weak_from_this(), writer_, utterances_.back()->number);
  writer_handle_ = writer;
  return writer;
}

void LiveSession::close_writer_locked(SpeechInput::State why) {
  if (writer_ == 0) return;
  if (auto w = writer_handle_.lock()) w->close(why);
  writer_ = 0;
  writer_handle_.reset();
  if (why != SpeechInput::State::kEnded && wanted_) closed_wanted_.push_back(std::move(wanted_));
  wanted_ = {};
}

void LiveSession::tell_closed() {
  std::vector<std::function<void()>> told;
  {
    core::MutexLock lock(mutex_);
    told.swap(closed_wanted_);
  }
  for (auto& f : told) f();
}

bool LiveSession::taking_speech() const {
  core::MutexLock lock(mutex_);
  return open_;
}

bool LiveSession::write(std::uint64_t id, std::vector<float> samples, bool& room) {
  room = true;
  bool full = false;
  {
    core::MutexLock lock(mutex_);
    if (ended_ || id != writer_) return false;  // closed: dropped
    if (samples.empty()) return true;
    auto& u = *utterances_.back();
    const SteadyTime now = SteadyClock::now();
    if (u.received == 0) u.first_audio = now;
    u.last_audio = now;
    u.received += static_cast<std::int64_t>(samples.size());
    u.audio.insert(u.audio.end(), samples.begin(), samples.end());
    if (u.producer) u.producer->audio_available();
    full = buffered_seconds_locked() > settings_.live.max_buffered_s;
    speech_full_ = full;
  }
  strand_->post([self = shared_from_this()] { self->maintain(); });
  room = !full;
  return true;
}

void LiveSession::end_writer(std::uint64_t id, bool keep_open) {
  {
    core::MutexLock lock(mutex_);
    if (id != writer_) return;
    close_writer_locked(SpeechInput::State::kEnded);
    if (keep_open) return;  // the next input opened writes on
    end_open_locked();
  }
  strand_->post([self = shared_from_this()] { self->maintain(); });
}

void LiveSession::end_open_locked(SpeechInput::State why) {
  close_writer_locked(why);
  if (!open_) return;
  open_ = false;
  auto& u = *utterances_.back();
  u.ended = true;
  if (u.received == 0) {
    // Nothing was said: it is finished (on the next tick), and never plays.
    finished_locked(u, next_index_, false, pending_events_);
    utterances_.pop_back();
    return;
  }
  // A clip needs at least 3000 samples; a shorter utterance is padded with silence.
  if (u.end() < audio::kMinSamples) u.audio.resize(u.audio.size() + (audio::kMinSamples - u.end()));
  u.frames = audio::clip_frames_for_samples(static_cast<std::size_t>(u.end()));
  LiveEvent queued;
  queued.type = LiveEvent::Type::kUtteranceQueued;
  queued.tick = next_index_;
  queued.utterance = u.number;
  queued.samples = u.received;
  pending_events_.push_back(std::move(queued));
  if (u.producer) u.producer->audio_available();
}

void LiveSession::interrupt() {
  std::vector<std::shared_ptr<FrameProducer>> cancelled;
  {
    core::MutexLock lock(mutex_);
    if (ended_) return;
    for (auto& u : utterances_) {
      if (u->producer) cancelled.push_back(u->producer);
    }
    const bool speaking = !utterances_.empty() && utterances_.front()->start_tick >= 0 &&
                          utterances_.front()->start_tick < next_index_;
    // Every utterance it drops is finished, on the next tick (none of it is shown after).
    for (auto& u : utterances_) finished_locked(*u, next_index_, true, pending_events_);
    utterances_.clear();
    open_ = false;
    close_writer_locked(SpeechInput::State::kInterrupted);
    underrunning_ = false;
    for (auto it = pictures_.begin(); it != pictures_.end();) {
      it = it->second->kind == LiveState::kSpeaking ? pictures_.erase(it) : std::next(it);
    }
    if (speaking && last_output_) {
      // Too close to the next tick to draw the fade's first picture: that tick holds the last
      // speech picture (silent) and the fade starts on the one after.
      fade_ = timeline::fade_after_interrupt(t0_, next_index_, SteadyClock::now(),
                                             settings_.live.interrupt_fade_frames);
    }
    prefetch_locked(next_index_);
  }
  for (auto& p : cancelled) p->cancel();
  tell_closed();
  strand_->post([self = shared_from_this()] { self->maintain(); });
}

void LiveSession::close(bool now) {
  {
    core::MutexLock lock(mutex_);
    if (!now) end_open_locked(SpeechInput::State::kSessionEnded);
    closing_ = true;
  }
  tell_closed();
  if (now) {
    finish(std::nullopt);
    return;
  }
  strand_->post([self = shared_from_this()] { self->maintain(); });
}

// The producer's source (its strand): copies the utterance's next samples from `from` on.
std::size_t LiveSession::read_speech(Utterance& u, std::int64_t from, std::span<float> out,
                                     bool& ended) {
  core::MutexLock lock(mutex_);
  LIPSYNC_CHECK_LE(u.base, from);
  const auto n = static_cast<std::size_t>(
      std::clamp<std::int64_t>(u.end() - from, 0, static_cast<std::int64_t>(out.size())));
  std::copy_n(u.audio.begin() + (from - u.base), n, out.begin());
  u.read = from + static_cast<std::int64_t>(n);
  ended = u.ended && u.read == u.end();
  return n;
}

double LiveSession::buffered_seconds_locked() const {
  std::int64_t samples = 0;
  for (const auto& u : utterances_) {
    std::int64_t left = u->end();
    if (u->start_tick >= 0 && next_index_ > u->start_tick) {
      left -= audio::samples_for_frames(next_index_ - u->start_tick);
    }
    samples += std::max<std::int64_t>(0, left);
  }
  return audio::seconds_for_samples(samples);
}

// Places the utterance on the timeline.
void LiveSession::schedule_locked(const std::shared_ptr<Utterance>& u, SteadyTime now) {
  std::int64_t after = -1;  // the end of the one before it
  SteadyTime since = u->first_audio;
  const Utterance* before = nullptr;
  for (const auto& other : utterances_) {
    if (other == u) break;
    after = std::max(after, other->start_tick + other->frames);
    since = now;  // it waited for the one before: count from now
    before = other.get();
  }
  u->start_tick = timeline::start_tick(t0_, next_index_, after, since, latency_ms_);
  if (before != nullptr) {
    u->run_since = before->run_since;
  } else if (last_speech_tick_ >= 0 && u->start_tick - last_speech_tick_ <= kRunGapTicks) {
    u->run_since = last_run_since_;
  } else {
    u->run_since = due(u->start_tick);
  }
}

void LiveSession::start_producer(const std::shared_ptr<Utterance>& u) {
  ProducerSettings s;
  s.walk_start = settings_.start_frame;
  s.walk_offset = static_cast<int>(u->start_tick % (1LL << 30));
  s.encoding = settings_.encoding;
  s.jpeg_quality = settings_.jpeg_quality;
  s.blend = settings_.blend;
  // RAW pictures are the image itself. Encoded ones come from the producer's encoding (a JPEG
  // splice of the face alone); the few cross-fade pictures are composited again from the kept
  // output, so no frame allocates and faults in a whole picture it does not need.
  s.keep_image = settings_.encoding == FrameEncoding::kNone;
  s.keep_output = true;  // for the cross-fades and the fade after an interrupt
  s.window_frames = settings_.pipeline.window_frames;
  s.audio = settings_.audio;
  s.observe = settings_.observe;
  SteadyTime first_due;
  {
    core::MutexLock lock(mutex_);
    first_due = due(u->start_tick);
  }
  s.deadline = [first_due](int frame) -> std::optional<SteadyTime> {
    return first_due + kTick * frame - kOutputMargin;
  };
  s.since = u->run_since;
  s.source = [session = weak_from_this(), weak = std::weak_ptr<Utterance>(u)](
                 std::int64_t from, std::span<float> out, bool& ended) -> std::size_t {
    auto self = session.lock();
    auto utterance = weak.lock();
    ended = true;  // the session or the utterance is gone (the producer is cancelled)
    return self && utterance ? self->read_speech(*utterance, from, out, ended) : 0;
  };
  s.strand = strand_;
  auto consumer = std::make_shared<UtteranceConsumer>(weak_from_this(), u);
  auto producer = FrameProducer::streaming(target_, s, consumer);
  {
    core::MutexLock lock(mutex_);
    if (std::find(utterances_.begin(), utterances_.end(), u) == utterances_.end()) return;
    u->producer = producer;
    u->consumer = consumer;
  }
  producer->start();
}

// On the strand, after every tick and every change: schedules utterances, inserts silence where
// the playing one ran dry, prepares idle and fade pictures, and ends the session when it is due.
void LiveSession::maintain() {
  std::vector<std::shared_ptr<Utterance>> to_start;
  bool done = false;
  {
    core::MutexLock lock(mutex_);
    if (ended_ || !clock_running_) return;  // start() calls again once the clock runs
    const SteadyTime now = SteadyClock::now();
    const std::int64_t k = next_index_;
    const int idle_s = settings_.live.utterance_idle_timeout_s;
    // (Not while its writer waits for room: that wait is the session's.)
    if (open_ && idle_s > 0 && !speech_full_ &&
        now - utterances_.back()->last_audio > std::chrono::seconds(idle_s)) {
      // Its writer stopped sending: what came plays, the rest is not waited for.
      end_open_locked(SpeechInput::State::kTimedOut);
    }
    for (std::size_t i = 0; i < utterances_.size(); ++i) {
      auto& u = utterances_[i];
      if (u->start_tick >= 0) continue;
      if (u->received == 0 && !u->ended) break;
      if (i > 0 && utterances_[i - 1]->frames < 0) break;  // its start depends on that one's end
      if (i > 0 && utterances_[i - 1]->start_tick + utterances_[i - 1]->frames >
                       k + latency_ticks_ + kScheduleAheadTicks) {
        break;  // not yet: see kScheduleAheadTicks
      }
      schedule_locked(u, now);
      to_start.push_back(u);
    }
    // The utterance now playing (or about to) must have audio up to latency ahead of the tick.
    bool padding = false;
    for (auto& u : utterances_) {
      if (u->start_tick < 0 || u->ended || !u->producer) continue;
      const std::int64_t have = u->end();
      if (const std::int64_t gap = timeline::underrun_gap(k, latency_ticks_, u->start_tick, have);
          gap > 0) {
        if (!u->gaps.empty() && u->gaps.back().first + u->gaps.back().second == have) {
          u->gaps.back().second += gap;  // the same underrun, longer
        } else {
          u->gaps.emplace_back(have, gap);
        }
        u->audio.resize(u->audio.size() + static_cast<std::size_t>(gap), 0.0f);
        u->producer->audio_available();
        padding = true;
      }
      break;  // only the first unended one can run dry
    }
    underrunning_ = padding;
    prefetch_locked(k);
    const int n = settings_.live.interrupt_fade_frames;
    const bool fading = fade_.start >= 0 && k < fade_.start + n;
    done = closing_ && utterances_.empty() && !fading;
  }
  tell_closed();
  for (auto& u : to_start) start_producer(u);
  if (done) finish(std::nullopt);
}

// Queues the preparation of idle and fade pictures for the next ticks.
void LiveSession::prefetch_locked(std::int64_t from) {
  for (std::int64_t t = from; t < from + kPrefetchTicks; ++t) {
    const Segment s = segment_locked(t);
    if (s.state == LiveState::kSpeaking || (s.state == LiveState::kFading && s.frame < 0)) {
      continue;  // the producer's, or the hold's (the last picture)
    }
    const auto it = pictures_.find(t);
    if (it != pictures_.end() && it->second->kind == s.state) continue;
    if (preparing_.count(t) != 0) continue;
    if (s.state == LiveState::kIdle) {
      // Once every template frame has been drawn, idling needs no worker (so it never waits
      // behind speech work there).
      auto bytes = idle_pictures_->find(target_.avatar, s.template_frame, settings_.encoding,
                                        settings_.jpeg_quality, silence());
      if (bytes) {
        auto picture = std::make_shared<Picture>();
        picture->kind = LiveState::kIdle;
        picture->bytes = std::move(bytes);
        pictures_[t] = std::move(picture);
        continue;
      }
    }
    preparing_[t] = true;
    target_.workers->post([self = shared_from_this(), t, s] { self->prepare_picture(t, s); });
  }
}

void LiveSession::prepare_picture(std::int64_t tick, Segment segment) {
  auto picture = std::make_shared<Picture>();
  picture->kind = segment.state;
  try {
    if (segment.state == LiveState::kFading) {
      std::shared_ptr<const infer::GeneratorBatch> batch;
      int slot = 0;
      {
        core::MutexLock lock(mutex_);
        batch = last_output_;
        slot = last_output_slot_;
      }
      cv::Mat generated;
      render::composite(*target_.avatar, segment.template_frame, batch->output(slot),
                        settings_.blend, generated);
      const double a = timeline::fade_weight(segment.frame, settings_.live.interrupt_fade_frames);
      picture->bytes = encode(blend(segment.template_frame, generated, a), segment.template_frame);
    } else {
      picture->bytes = idle_picture(segment.template_frame);
    }
  } catch (const std::exception&) {
    picture.reset();  // the tick repeats the last picture (late); the avatar's errors surface there
  }
  core::MutexLock lock(mutex_);
  preparing_.erase(tick);
  if (picture && tick >= next_index_ && !ended_) pictures_[tick] = std::move(picture);
}

std::shared_ptr<const core::SharedBytes> LiveSession::encode(const cv::Mat& image,
                                                             int template_frame) const {
  if (settings_.encoding != FrameEncoding::kNone) {
    return std::make_shared<const core::SharedBytes>(
        encode_frame(image, settings_.encoding, settings_.jpeg_quality,
                     template_frame >= 0 ? target_.splices() : nullptr, template_frame));
  }
  // The pixels themselves, shared (every caller hands over a picture nothing writes again).
  auto pixels = std::make_shared<const cv::Mat>(image.isContinuous() ? image : image.clone());
  return std::make_shared<const core::SharedBytes>(pixels->data,
                                                   pixels->total() * pixels->elemSize(), pixels);
}

const SilenceIdle* LiveSession::silence() const {
  const SilenceIdle* idle = settings_.silence_idle.get();
  return idle != nullptr && idle->avatar() == target_.avatar ? idle : nullptr;
}

cv::Mat LiveSession::idle_image(int template_frame) const {
  if (const SilenceIdle* idle = silence()) {
    cv::Mat image;
    idle->idle_frame(template_frame, settings_.blend, image);
    return image;
  }
  return *target_.avatar->frame(template_frame);  // shared, never written
}

cv::Mat LiveSession::blend(int template_frame, const cv::Mat& generated, double a) const {
  const cv::Mat base = idle_image(template_frame);
  cv::Mat out = base.clone();
  const cv::Rect box = avatar::as_cv_rect(target_.avatar->crop_rect(template_frame));
  cv::addWeighted(generated(box), a, base(box), 1.0 - a, 0.0, out(box));
  return out;
}

std::shared_ptr<const core::SharedBytes> LiveSession::idle_picture(int template_frame) {
  return idle_pictures_->get(
      target_.avatar, template_frame, settings_.encoding, settings_.jpeg_quality,
      [&] { return encode(idle_image(template_frame), silence() ? template_frame : -1); },
      silence());
}

void LiveSession::on_speech_frame(const std::shared_ptr<Utterance>& u, ProducedFrame frame) {
  std::int64_t tick = 0;
  double weight = 1.0;
  std::shared_ptr<FrameProducer> producer;
  {
    core::MutexLock lock(mutex_);
    producer = u->producer;
    const bool current = std::find(utterances_.begin(), utterances_.end(), u) != utterances_.end();
    tick = u->start_tick + frame.index;
    // Too late, interrupted, or skipped by the scheduler (it could not be on time): not shown;
    // its tick repeats the last picture, flagged late.
    if (ended_ || !current || tick < next_index_ || frame.skipped) {
      if (producer) producer->release(1);
      return;
    }
    weight = timeline::speech_weight(frame.index, u->frames, settings_.live.crossfade_frames);
  }
  auto picture = std::make_shared<Picture>();
  picture->kind = LiveState::kSpeaking;
  picture->utterance = u->number;
  picture->batch = std::move(frame.batch);
  picture->slot = frame.slot;
  picture->producer = producer;
  if (weight < 1.0) {
    if (frame.image.empty()) {
      render::composite(*target_.avatar, frame.template_frame,
                        picture->batch->output(picture->slot), settings_.blend, frame.image);
    }
    picture->bytes = encode(blend(frame.template_frame, frame.image, weight), frame.template_frame);
  } else if (settings_.encoding == FrameEncoding::kNone) {
    picture->bytes = encode(frame.image);
  } else {
    picture->bytes = std::make_shared<const core::SharedBytes>(std::move(frame.encoded));
  }
  bool late = false;
  {
    core::MutexLock lock(mutex_);
    late = ended_ || tick < next_index_;
    if (!late) pictures_[tick] = picture;
  }
  if (late && producer) producer->release(1);
}

void LiveSession::on_utterance_failed(const Error& error) {
  finish(error);
}

// The speaking tick `k`, frame `frame` of utterance `u`: the frame's samples, its place in the
// input, its playback_started and underrun events; then what is heard is forgotten.
void LiveSession::speak_locked(Utterance& u, int frame, std::int64_t k, LiveFrame& f) {
  const std::int64_t pos = audio::samples_for_frames(frame);
  f.utterance = u.number;
  last_speech_tick_ = k;
  last_run_since_ = u.run_since;
  const auto [input, silence] = u.input_position(pos);
  f.sample = input;
  f.underrun = silence;
  if (!u.started) {
    u.started = true;
    LiveEvent started;
    started.type = LiveEvent::Type::kPlaybackStarted;
    started.tick = k;
    started.utterance = u.number;
    f.events.push_back(std::move(started));
  }
  u.heard += u.input_samples_in(pos, audio::kSamplesPerFrame);
  // The underrun event counts the silence inserted to the sample, also one that begins
  // inside a frame (the frame's `underrun` flag says whether its first sample is silence).
  if (const std::int64_t inserted = u.inserted_in(pos, audio::kSamplesPerFrame); inserted > 0) {
    if (u.underrun_tick < 0) u.underrun_tick = k;
    u.underrun_samples += inserted;
  } else if (u.underrun_tick >= 0) {
    LiveEvent underrun;
    underrun.type = LiveEvent::Type::kUnderrun;
    underrun.tick = u.underrun_tick;
    underrun.utterance = u.number;
    underrun.samples = u.underrun_samples;
    f.events.push_back(std::move(underrun));
    u.underrun_tick = -1;
    u.underrun_samples = 0;
  }
  for (int i = 0; i < audio::kSamplesPerFrame; ++i) {
    const std::int64_t at = pos + i - u.base;
    if (at >= 0 && at < static_cast<std::int64_t>(u.audio.size())) {
      f.samples[i] = to_s16(u.audio[static_cast<std::size_t>(at)]);
    }
  }
  // What is heard (and read by the producer) is gone: keep only what is still needed.
  u.forget_before(std::min(pos + audio::kSamplesPerFrame, u.read));
  if (frame == 0) {
    f.speech_latency_ms = std::chrono::duration<double, std::milli>(f.due - u.first_audio).count();
  }
}

// Tick `k`'s picture: the prepared one when it is this state's (and utterance's), else the last
// one shown (a late frame, or a fade's hold); the pictures of ticks up to `k` go, their producers
// into `releases`.
void LiveSession::picture_locked(const Segment& s, std::int64_t k, LiveFrame& f,
                                 std::vector<std::shared_ptr<FrameProducer>>& releases) {
  const auto it = pictures_.find(k);
  const bool hold = s.state == LiveState::kFading && s.frame < 0;
  const bool ready = it != pictures_.end() && it->second->kind == s.state &&
                     (s.state != LiveState::kSpeaking || it->second->utterance == f.utterance);
  if (hold) {
    f.picture = last_picture_;
  } else if (ready) {
    f.picture = it->second->bytes;
    last_picture_ = f.picture;
    if (s.state == LiveState::kSpeaking) {
      last_output_ = it->second->batch;
      last_output_slot_ = it->second->slot;
    }
  } else {
    f.late = true;
    f.picture = last_picture_;
  }
  // Pictures of this tick and earlier are done with.
  for (auto p = pictures_.begin(); p != pictures_.end() && p->first <= k;) {
    if (p->second->producer) releases.push_back(p->second->producer);
    p = pictures_.erase(p);
  }
}

bool LiveSession::tick() {
  LiveFrame f;
  std::vector<std::shared_ptr<FrameProducer>> releases;
  bool wanted = false;
  {
    core::MutexLock lock(mutex_);
    if (ended_) return false;
    const std::int64_t k = next_index_;
    f.index = k;
    f.due = due(k);
    f.events = std::move(pending_events_);
    pending_events_.clear();
    while (!utterances_.empty()) {  // played out
      const auto& u = utterances_.front();
      if (u->start_tick < 0 || u->frames < 0 || k < u->start_tick + u->frames) break;
      finished_locked(*u, k, false, f.events);
      utterances_.pop_front();
    }
    const Segment s = segment_locked(k);
    f.state = s.state;
    if (s.state != last_state_) {
      LiveEvent changed;
      changed.type = LiveEvent::Type::kState;
      changed.tick = k;
      changed.state = s.state;
      f.events.push_back(std::move(changed));
      last_state_ = s.state;
    }
    if (s.state == LiveState::kSpeaking) speak_locked(*s.utterance, s.frame, k, f);
    picture_locked(s, k, f, releases);
    next_index_ = k + 1;
    if (speech_full_ && buffered_seconds_locked() <= settings_.live.max_buffered_s) {
      speech_full_ = false;
      wanted = true;
      if (open_) utterances_.back()->last_audio = SteadyClock::now();  // its idle clock restarts
    }
  }
  for (auto& p : releases) p->release(1);
  f.emitted = SteadyClock::now();
  auto sink = sink_.lock();
  if (sink) sink->on_live_frame(std::move(f));
  if (wanted) {
    std::function<void()> writer_wanted;
    {
      core::MutexLock lock(mutex_);
      writer_wanted = wanted_;
    }
    if (writer_wanted) writer_wanted();
    if (sink) sink->on_speech_wanted();
  }
  strand_->post([self = shared_from_this()] { self->maintain(); });
  return true;
}

void LiveSession::finished_locked(Utterance& u, std::int64_t k, bool interrupted,
                                  std::vector<LiveEvent>& out) const {
  if (u.reported) return;  // once (cut_playback() may come before the tick that would)
  u.reported = true;
  if (u.underrun_tick >= 0) {
    LiveEvent underrun;
    underrun.type = LiveEvent::Type::kUnderrun;
    underrun.tick = u.underrun_tick;
    underrun.utterance = u.number;
    underrun.samples = u.underrun_samples;
    out.push_back(std::move(underrun));
    u.underrun_tick = -1;
  }
  LiveEvent finished;
  finished.type = LiveEvent::Type::kPlaybackFinished;
  finished.tick = k;
  finished.utterance = u.number;
  finished.samples = u.heard;
  finished.interrupted = interrupted;
  out.push_back(std::move(finished));
}

std::vector<LiveEvent> LiveSession::cut_playback() {
  core::MutexLock lock(mutex_);
  if (ended_) return {};
  // What no tick has carried yet (an interrupt's playback_finished, a queued utterance), then
  // every utterance still held, finished now: the one playing with what was heard of it, the
  // ones waiting with nothing.
  std::vector<LiveEvent> out = std::move(pending_events_);
  pending_events_.clear();
  for (auto& u : utterances_) finished_locked(*u, next_index_, true, out);
  return out;
}

void LiveSession::finish(const std::optional<Error>& error) {
  std::vector<std::shared_ptr<FrameProducer>> cancelled;
  {
    core::MutexLock lock(mutex_);
    if (ended_) return;
    ended_ = true;
    close_writer_locked(SpeechInput::State::kSessionEnded);
    for (auto& u : utterances_) {
      if (u->producer) cancelled.push_back(u->producer);
    }
    utterances_.clear();
    pictures_.clear();
  }
  for (auto& p : cancelled) p->cancel();
  tell_closed();
  strand_->close();
  if (auto sink = sink_.lock()) sink->on_live_ended(error);
}

}  // namespace lipsync::pipeline
