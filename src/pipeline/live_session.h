// LiveSession: a continuous 25 fps avatar on one media clock. Frame k is due at t0 + 40 ms x k and
// is emitted on its tick, exactly once, never early, never skipped, for as long as the session
// lives; a picture not ready on its tick is replaced by the last one, flagged late, and the
// timeline does not move. With nothing to say the frame is the avatar's idle frame on its
// template frame (the walk goes on): the frame made for silence (pipeline/silence_idle.h), or the
// template frame itself with avatar.idle: template; speech is queued as utterances and played back
// to back at real time, each shown `latency_ms` after it could first be (the model's lookahead plus
// a batch of generator time), audio and video delayed together. Every frame carries its own 640
// samples (the speech heard during it, silence otherwise), so a client that plays each frame with
// its samples stays in sync for as long as it runs.
//
// - Speech frames are those of the reference pipeline for the utterance's audio on the template
//   frames the walk gives their ticks (a FrameProducer per utterance, each job with its tick as
//   deadline). The first and last `crossfade_frames` blend the idle and the generated frame,
//   so the mouth does not pop.
// - Underrun: when an utterance runs dry before its end, silence is inserted where its audio is
//   needed (the mouth closes, the audio has a gap), flagged and counted; the playhead never waits.
// - Interrupt: queued speech, queued generator work and speech frames not yet emitted are dropped;
//   the next frames emitted (interrupt_fade_frames) fade the last speech frame to idle (FADING,
//   silent). When the
//   interrupt comes too close to that tick to draw it, the tick holds the last speech picture
//   (FADING, silent, on time) and the fade starts on the next.
// - An utterance of N samples plays for clip_frames(N) ticks (the reference's L + 2); the few
//   samples past the last frame (at most about 30 ms, usually the utterance's trailing silence)
//   are not heard.
//
// Knows nothing of gRPC or WebRTC: speech comes in through open_utterance() (its one inbox) from
// any source; frames go out to a LiveSink. An utterance's samples are kept once, in the session:
// its producer reads them from there as its window has room, each tick copies its own. The
// session's upkeep and its producers' audio work run on one strand; flow control is the
// session's buffered seconds (live.max_buffered_s) and the producer's window, nothing else.
// Thread contract: every public method may be called from any thread; tick() is for the Ticker.
// Sink callbacks: on_live_frame on the ticker thread (must be quick), the others from the
// session's strand or the workers.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "audio/video_frames.h"
#include "core/config_table.h"
#include "core/mutex.h"
#include "core/shared_bytes.h"
#include "core/strand.h"
#include "pipeline/frame_producer.h"
#include "pipeline/idle_pictures.h"
#include "pipeline/live_timeline.h"
#include "pipeline/silence_idle.h"
#include "pipeline/ticker.h"

namespace lipsync::pipeline {

// The `live.*` config keys.
struct LiveOptions {
  int max_sessions = 16;          // live.max_sessions: sessions at once; more: RESOURCE_EXHAUSTED
  int max_buffered_s = 30;        // live.max_buffered_s: speech queued and not yet played
  int latency_ms = 0;             // live.latency_ms: 0 = lookahead + one generator batch, computed
  int crossfade_frames = 3;       // live.crossfade_frames: frames blended at speech start and end
  int interrupt_fade_frames = 1;  // live.interrupt_fade_frames: frames back to idle after one
  int idle_cache_mb = 64;         // live.idle_cache_mb: encoded template frames, server-wide
  int session_idle_timeout_s = 300;  // live.session_idle_timeout_s: an unused HTTP session ends
  int utterance_idle_timeout_s = 5;  // live.utterance_idle_timeout_s: an open utterance ends
  void validate() const;
  static const core::ConfigTable<LiveOptions>& config();
};

// What the session tells its clients about its speech, on the tick it describes (issue 25 §2).
// The session makes the first five; the rest are its owner's (server::HubSession), which also
// numbers every event (`seq`) and writes it as the JSON its clients get (`json`).
struct LiveEvent {
  enum class Type {
    kUtteranceQueued,   // the utterance has all come in: `samples` received
    kPlaybackStarted,   // this tick shows its first frame
    kPlaybackFinished,  // the tick after its last frame (or the first after an interrupt)
    kUnderrun,          // an underrun of it ended: `samples` of inserted silence from `tick`
    kState,             // this tick's state differs from the last one's
    kViewerJoined,
    kViewerLeft,
    kSessionEnded,
  };
  Type type = Type::kState;
  std::int64_t tick = 0;  // the tick it describes
  int utterance = -1;
  // Queued: samples received; finished: the utterance's input samples its frames carried (what
  // a viewer heard of it); underrun: samples of inserted silence.
  std::int64_t samples = 0;
  bool interrupted = false;  // finished: cut by interrupt()
  LiveState state = LiveState::kIdle;
  int count = 0;         // viewers now (viewer_joined, viewer_left)
  std::string reason;    // session_ended: deleted, expired, shutdown, error, closed
  std::string message;   // session_ended: the error, if any
  std::int64_t seq = 0;  // session-wide, from 1
  std::string json;      // the event as its clients get it
};

// One tick's frame.
struct LiveFrame {
  std::int64_t index = 0;
  SteadyTime due{};      // t0 + 40 ms x index
  SteadyTime emitted{};  // when the ticker handed it over
  LiveState state = LiveState::kIdle;
  bool late = false;      // the picture repeats the last one
  bool underrun = false;  // the samples are inserted silence
  // The picture: JPEG/PNG bytes, or BGR bytes for FrameEncoding::kNone. Shared: a late frame
  // carries the previous frame's picture.
  std::shared_ptr<const core::SharedBytes> picture;
  std::array<std::int16_t, audio::kSamplesPerFrame> samples{};
  int utterance = -1;        // 0, 1, ... for speech frames
  std::int64_t sample = -1;  // input sample of that utterance the frame's samples start at
  // For an utterance's first frame: ms from its first speech sample's arrival to this tick.
  std::optional<double> speech_latency_ms;
  // The events of this tick (and those that happened since the last one), in order.
  std::vector<LiveEvent> events;
};

// One utterance being written into a session (an upload, a text being spoken, an agent's
// stream): the session's one speech inbox. Samples are the session's own (16 kHz, checked where
// they came off the wire); they go straight to the utterance, in order.
// Thread contract: any thread, one writer at a time.
class SpeechInput {
 public:
  virtual ~SpeechInput() = default;
  // Adds samples. Returns false when the session holds live.max_buffered_s of speech after this:
  // add no more until `wanted` (given when it was opened) is called. Ignored once closed().
  virtual bool add(std::vector<float> samples) = 0;
  // The utterance is complete; `keep_open`: more of it follows from the next input opened.
  virtual void end(bool keep_open = false) = 0;
  // The writer goes away: what it added plays, the session takes another utterance.
  virtual void abandon() = 0;
  enum class State {
    kOpen,
    kEnded,         // by end() or abandon()
    kInterrupted,   // the session was interrupted while it was open
    kTimedOut,      // no audio for live.utterance_idle_timeout_s
    kSessionEnded,  // closed, deleted, failed
  };
  virtual State state() = 0;
  // It takes nothing more: ended, interrupted, timed out, or the session has ended.
  bool closed() { return state() != State::kOpen; }
  // The samples the session took from it (what add() brought before it closed).
  virtual std::int64_t taken() const = 0;
  // The utterance's number on the session's events.
  virtual int utterance() const = 0;
};

class LiveSink {
 public:
  virtual ~LiveSink() = default;
  // One per tick, in order, on the ticker thread; must not block.
  virtual void on_live_frame(LiveFrame frame) = 0;
  // The speech buffer has room again after an input's add() said it was full.
  virtual void on_speech_wanted() {}
  // The session is over: closed and played out (error empty), or failed.
  virtual void on_live_ended(const std::optional<Error>& error) = 0;
};

struct LiveSettings {
  int start_frame = 0;                            // the template walk's start
  FrameEncoding encoding = FrameEncoding::kJpeg;  // kNone: BGR bytes
  int jpeg_quality = 75;
  render::BlendOptions blend;  // render.blend, render.color_match (ProducerSettings::blend)
  int latency_ms = 0;          // 0: live.latency_ms, else the computed default
  // Shared idle pictures (the server's); null: the session keeps its own.
  std::shared_ptr<IdlePictureCache> idle_pictures;
  // avatar.idle: silence: the frames idle shows and cross-fades blend with (the avatar listening,
  // its mouth closed); null, or another avatar's: the template frames (avatar.idle: template).
  std::shared_ptr<const SilenceIdle> silence_idle;
  LiveOptions live;
  PipelineOptions pipeline;
  audio::AudioOptions audio;
  // Each utterance's stage timings (mel, windows, encoder, generator's neighbours: what
  // ProducerSettings::observe gets), for the server's metrics; may be empty.
  std::function<void(std::string_view stage, double ms)> observe;
};

class LiveSession final : public TickClient, public std::enable_shared_from_this<LiveSession> {
 public:
  // Throws Error::Code::kInvalidInput for a start frame outside the avatar or bad options.
  static std::shared_ptr<LiveSession> create(FrameTarget target, LiveSettings settings,
                                             std::weak_ptr<LiveSink> sink);
  ~LiveSession() override;

  // Starts the clock on the ticker: frame 0 is due as soon as its picture is ready.
  void start(Ticker& ticker);

  // Opens an utterance to write to (the one left open by end(true) goes on, if any): null while
  // another input writes one ("one utterance arriving at a time"). `wanted` (any thread, may be
  // empty) is called when add() said full and there is room again, and once when the input is
  // closed by the session (interrupt, timeout, its end). Throws kUnavailable once the
  // session is closing or has ended. An open utterance that gets no audio for
  // live.utterance_idle_timeout_s ends by itself (its input is then closed).
  std::shared_ptr<SpeechInput> open_utterance(std::function<void()> wanted);
  // Whether an utterance is open (being written, or left open).
  bool taking_speech() const;
  // Stops speaking at once (see the header comment).
  void interrupt();
  // Ends the session once the speech queued so far has played (the open utterance is ended);
  // with `now`, at once.
  void close(bool now = false);
  // For an owner about to close the session at once: the events no tick has carried yet, then a
  // playback_finished (interrupted) for every utterance still held: the one playing with what
  // was heard of it, the ones waiting with nothing. The session reports none of them again.
  // Every utterance then has its playback_finished before session_ended, as a voice agent
  // waiting for each segment's end needs.
  std::vector<LiveEvent> cut_playback();

  // The speech latency in use.
  int latency_ms() const { return latency_ms_; }

  // TickClient.
  SteadyTime next_tick() const override;
  bool tick() override;

  // Called by the per-utterance consumers (see live_session.cc).
  struct Utterance;
  void on_speech_frame(const std::shared_ptr<Utterance>& u, ProducedFrame frame);
  void on_utterance_failed(const Error& error);

 private:
  LiveSession(FrameTarget target, LiveSettings settings, std::weak_ptr<LiveSink> sink);
  struct Picture;
  struct Segment;
  class Writer;

  // For Writer: the writer `id`'s calls (ignored unless it is the session's current writer).
  // write() returns whether the session took the samples, and in `room` whether it has room.
  bool write(std::uint64_t id, std::vector<float> samples, bool& room);
  void end_writer(std::uint64_t id, bool keep_open);
  // Closes the current writer, if any, saying why. Unless it closed itself
  // (kEnded), its `wanted` is kept for tell_closed(): a writer waiting for room finds out.
  void close_writer_locked(SpeechInput::State why) LIPSYNC_REQUIRES(mutex_);
  // Calls the `wanted` of the writers closed meanwhile (not under mutex_).
  void tell_closed();
  // Ends the open utterance (its writer, if any, is closed as `why`).
  void end_open_locked(SpeechInput::State why = SpeechInput::State::kEnded)
      LIPSYNC_REQUIRES(mutex_);

  SteadyTime due(std::int64_t tick) const LIPSYNC_REQUIRES(mutex_);
  Segment segment_locked(std::int64_t tick) LIPSYNC_REQUIRES(mutex_);
  void speak_locked(Utterance& u, int frame, std::int64_t k, LiveFrame& f) LIPSYNC_REQUIRES(mutex_);
  void picture_locked(const Segment& s, std::int64_t k, LiveFrame& f,
                      std::vector<std::shared_ptr<FrameProducer>>& releases)
      LIPSYNC_REQUIRES(mutex_);
  void maintain();  // on the strand: scheduling, feeding, underruns, prefetch, the end
  void schedule_locked(const std::shared_ptr<Utterance>& u, SteadyTime now)
      LIPSYNC_REQUIRES(mutex_);
  void start_producer(const std::shared_ptr<Utterance>& u) LIPSYNC_EXCLUDES(mutex_);
  // The source of `u`'s producer (ProducerSettings::source).
  std::size_t read_speech(Utterance& u, std::int64_t from, std::span<float> out, bool& ended);
  void prefetch_locked(std::int64_t from) LIPSYNC_REQUIRES(mutex_);
  void prepare_picture(std::int64_t tick, Segment segment);
  // `image` in the session's encoding. A JPEG of a picture of template frame `template_frame`
  // that differs from it only in its crop rect (a blend) is spliced (render/jpeg_splice.h).
  std::shared_ptr<const core::SharedBytes> encode(const cv::Mat& image,
                                                  int template_frame = -1) const;
  std::shared_ptr<const core::SharedBytes> idle_picture(int template_frame);
  // What idle shows on template frame t (the template frame, or its silent frame): fades and
  // cross-fades blend toward it.
  cv::Mat idle_image(int template_frame) const;
  // `generated` (a composite on template frame t) weighted by `a` against idle_image(t), in
  // its crop rect (the rest of the two frames is the template's).
  cv::Mat blend(int template_frame, const cv::Mat& generated, double a) const;
  const SilenceIdle* silence() const;  // settings_.silence_idle when it is this avatar's
  double buffered_seconds_locked() const LIPSYNC_REQUIRES(mutex_);
  // The events of utterance `u` ending at tick `k` (its underrun, if one is
  // open, then playback_finished).
  void finished_locked(Utterance& u, std::int64_t k, bool interrupted,
                       std::vector<LiveEvent>& out) const LIPSYNC_REQUIRES(mutex_);
  void finish(const std::optional<Error>& error);

  const FrameTarget target_;
  const LiveSettings settings_;
  const std::weak_ptr<LiveSink> sink_;
  int latency_ms_ = 0;
  int latency_ticks_ = 0;
  // The session's one sequence of work: its upkeep (maintain) and its producers' audio.
  const std::shared_ptr<core::Strand> strand_;

  mutable core::Mutex mutex_;
  SteadyTime t0_ LIPSYNC_GUARDED_BY(mutex_){};
  bool started_ LIPSYNC_GUARDED_BY(mutex_) = false;  // start() was called
  bool clock_running_ LIPSYNC_GUARDED_BY(mutex_) =
      false;  // t0_ is set and the ticker has the session
  std::int64_t next_index_ LIPSYNC_GUARDED_BY(mutex_) = 0;  // the tick to emit next
  std::deque<std::shared_ptr<Utterance>> utterances_ LIPSYNC_GUARDED_BY(mutex_);  // playing first
  int next_utterance_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  bool open_ LIPSYNC_GUARDED_BY(mutex_) = false;  // the back utterance still takes speech
  std::uint64_t writer_ LIPSYNC_GUARDED_BY(mutex_) =
      0;  // the writer of the open utterance; 0: none
  std::uint64_t last_writer_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  std::weak_ptr<Writer> writer_handle_ LIPSYNC_GUARDED_BY(mutex_);
  std::function<void()> wanted_ LIPSYNC_GUARDED_BY(mutex_);  // the writer's
  std::vector<std::function<void()>> closed_wanted_
      LIPSYNC_GUARDED_BY(mutex_);  // for tell_closed()
  std::map<std::int64_t, std::shared_ptr<const Picture>> pictures_
      LIPSYNC_GUARDED_BY(mutex_);                                      // by tick
  std::map<std::int64_t, bool> preparing_ LIPSYNC_GUARDED_BY(mutex_);  // ticks in work
  std::shared_ptr<const core::SharedBytes> last_picture_ LIPSYNC_GUARDED_BY(mutex_);
  // The last emitted speech frame's generator output and tick, for the fade after an interrupt.
  std::shared_ptr<const infer::GeneratorBatch> last_output_ LIPSYNC_GUARDED_BY(mutex_);
  int last_output_slot_ LIPSYNC_GUARDED_BY(mutex_) = 0;
  timeline::Fade fade_ LIPSYNC_GUARDED_BY(mutex_);        // after an interrupt
  bool underrunning_ LIPSYNC_GUARDED_BY(mutex_) = false;  // the playing utterance is being padded
  // The last tick that showed speech, and when that speech run began (batch_policy.h).
  std::int64_t last_speech_tick_ LIPSYNC_GUARDED_BY(mutex_) = -1;
  SteadyTime last_run_since_ LIPSYNC_GUARDED_BY(mutex_){};
  bool speech_full_ LIPSYNC_GUARDED_BY(mutex_) = false;  // an add() said full
  // Events for the next tick (an interrupt's playback_finished, utterance_queued).
  std::vector<LiveEvent> pending_events_ LIPSYNC_GUARDED_BY(mutex_);
  LiveState last_state_ LIPSYNC_GUARDED_BY(mutex_) = LiveState::kIdle;  // the last emitted tick's
  bool closing_ LIPSYNC_GUARDED_BY(mutex_) = false;
  bool ended_ LIPSYNC_GUARDED_BY(mutex_) = false;
  std::shared_ptr<IdlePictureCache> idle_pictures_;
};

// The state name for logs and metrics: "idle", "speaking", "fading".
std::string_view to_string(LiveState state);

}  // namespace lipsync::pipeline
