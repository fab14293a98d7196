#include "server/http_api.h"

#include <spdlog/spdlog.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <span>

#include "audio/audio_file.h"
#include "core/json_parse.h"
#include "core/json_text.h"
#include "core/mutex.h"
#include "core/read_lane.h"
#include "core/text.h"
#include "server/agent_socket.h"
#include "server/input_limits.h"
#include "server/session_events.h"
#include "server/wire_audio.h"
#include "tts/text_to_speech.h"

namespace lipsync::server {

extern const unsigned char kDemoPageHtml[];
extern const std::size_t kDemoPageHtmlSize;

namespace {

using nlohmann::json;

HttpReply json_reply(int status, const json& body) {
  return {status, "application/json", core::json_text(body) + "\n", {}};
}

HttpReply error_reply(int status, const std::string& message) {
  return json_reply(status, {{"error", message}});
}

int status_for(const Error& e) {
  switch (e.code()) {
    case Error::Code::kInvalidInput:
      return 400;
    case Error::Code::kNotFound:
      return 404;
    case Error::Code::kResourceExhausted:
      return 429;
    case Error::Code::kUnavailable:
      return 503;
    case Error::Code::kConflict:
      return 409;
    case Error::Code::kInternal:
      break;
  }
  return 500;
}

// Another utterance is coming into the session (409).
Error busy() {
  return Error::conflict(
      "the session is taking another utterance (an upload, a text being spoken, a WebSocket or "
      "gRPC stream); send this one when it has ended");
}

HttpReply reply_for(const std::exception& e) {
  if (const auto* error = dynamic_cast<const Error*>(&e)) {
    return error_reply(status_for(*error), error->what());
  }
  return error_reply(500, e.what());
}

// The answer to an upload or a say once its speech is all in (`samples` of it, at 16 kHz): 200
// with what it brought, or, when it was cut, with what the session took of it and why; 410 when
// the session ended meanwhile (deleted, shut down).
HttpReply speech_reply(SpeechInput& input, std::int64_t samples, std::optional<bool> open) {
  const auto state = input.state();
  if (state == SpeechInput::State::kSessionEnded) {
    return error_reply(410, "the session ended while the speech was coming in; " +
                                std::to_string(input.taken()) + " of its " +
                                std::to_string(samples) + " samples were taken");
  }
  const bool cut =
      state == SpeechInput::State::kInterrupted || state == SpeechInput::State::kTimedOut;
  const std::int64_t used = cut ? input.taken() : samples;
  json j = {{"samples", used},
            {"seconds", static_cast<double>(used) / 16000.0},
            {"interrupted", state == SpeechInput::State::kInterrupted},
            {"utterance", input.utterance()}};
  if (state == SpeechInput::State::kTimedOut) j["timed_out"] = true;
  if (cut) j["samples_sent"] = samples;
  if (open) j["open"] = *open && !cut;
  return json_reply(200, j);
}

json info_json(const SessionInfo& i) {
  json j = {{"id", i.id},
            {"model", i.model},
            {"origin", i.origin},
            {"format", i.format},
            {"whep", "/v1/sessions/" + i.id + "/whep"},
            {"state", i.state},
            {"viewers", i.viewers},
            {"frames", i.frames},
            {"late_frames", i.late_frames},
            {"latency_ms", i.latency_ms},
            {"width", i.width},
            {"height", i.height},
            {"age_s", i.age_s}};
  j["speech_latency_ms"] = i.speech_latency_ms ? json(*i.speech_latency_ms) : json(nullptr);
  j["speech_frames"] = i.speech_frames;
  j["speech_late_frames"] = i.speech_late_frames;
  // The fraction of speaking frames shown on their tick (null before the first).
  j["speech_on_time"] = i.speech_frames > 0 ? json(1.0 - static_cast<double>(i.speech_late_frames) /
                                                             static_cast<double>(i.speech_frames))
                                            : json(nullptr);
  if (i.expires_in_s) j["expires_in_s"] = *i.expires_in_s;
  return j;
}

// RTCConfiguration.iceServers for a client of session `id` (empty without webrtc.stun_server
// and webrtc.turn_servers): what the page passes to its RTCPeerConnection.
json ice_servers_json(const SessionHub& hub, const std::string& id) {
  json out = json::array();
  for (const webrtc::IceServer& s : hub.ice_servers().for_client(id)) {
    json entry = {{"urls", s.urls}};
    if (!s.username.empty()) {
      entry["username"] = s.username;
      entry["credential"] = s.credential;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t at = 1;
  while (at <= path.size()) {
    const auto slash = path.find('/', at);
    const auto end = slash == std::string::npos ? path.size() : slash;
    out.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

// The /v1 routes, one table: a path's shape, the methods it takes, and those of them a
// session's viewer token may use (it watches: the session's state, its events, WHEP).
enum class Route {
  kNone,
  kDrain,
  kLoad,
  kSessions,
  kSession,
  kWhep,
  kWhepViewer,
  kKeepalive,
  kInterrupt,
  kSay,
  kSpeech,
  kEvents,
  kSocket,
};

struct RouteSpec {
  Route route;
  std::string_view tail;     // after /v1/sessions/ID: "" (the session), "say", "whep/*", ...
  std::string_view methods;  // as Allow lists them
  std::string_view watch;    // the viewer token's methods
};

constexpr RouteSpec kSessionsRoute{Route::kSessions, "", "GET, POST", ""};
// The instance's own routes (the path after /v1/): the API token only, never a viewer's.
constexpr RouteSpec kInstanceRoutes[] = {
    {Route::kDrain, "admin/drain", "POST", ""},
    {Route::kLoad, "load", "GET, HEAD", ""},
};
constexpr RouteSpec kSessionRoutes[] = {
    {Route::kSession, "", "GET, DELETE", "GET"},
    {Route::kWhep, "whep", "POST", "POST"},
    {Route::kWhepViewer, "whep/*", "DELETE", "DELETE"},
    {Route::kKeepalive, "keepalive", "POST", ""},
    {Route::kInterrupt, "interrupt", "POST", ""},
    {Route::kSay, "say", "POST", ""},
    {Route::kSpeech, "speech", "POST", ""},
    {Route::kEvents, "events", "GET", "GET"},
    {Route::kSocket, "ws", "GET", ""},
};

struct RouteMatch {
  const RouteSpec* spec = nullptr;  // null: no route
  std::string session;
  std::string viewer;  // kWhepViewer's
  Route route() const { return spec != nullptr ? spec->route : Route::kNone; }
};

RouteMatch match_route(const std::string& path) {
  const auto parts = split_path(path);  // v1, sessions, ID, ...
  RouteMatch m;
  if (path.starts_with("/v1/")) {
    for (const RouteSpec& spec : kInstanceRoutes) {
      if (path.substr(4) == spec.tail) m.spec = &spec;
    }
    if (m.spec != nullptr) return m;
  }
  if (parts.size() < 2 || parts[0] != "v1" || parts[1] != "sessions") return m;
  if (parts.size() == 2) {
    m.spec = &kSessionsRoute;
    return m;
  }
  m.session = parts[2];
  std::string tail;
  if (parts.size() == 4) {
    tail = parts[3];
  } else if (parts.size() == 5 && parts[3] == "whep") {
    tail = "whep/*";
    m.viewer = parts[4];
  } else if (parts.size() != 3) {
    return m;
  }
  for (const RouteSpec& spec : kSessionRoutes) {
    if (spec.tail == tail) m.spec = &spec;
  }
  return m;
}

// Calls f(method) for each of `methods` ("GET, POST").
template <class F>
void for_each_method(std::string_view methods, F f) {
  while (!methods.empty()) {
    const auto comma = methods.find(", ");
    f(methods.substr(0, comma));
    if (comma == std::string_view::npos) break;
    methods.remove_prefix(comma + 2);
  }
}

// Whether `methods` ("GET, POST") has `method`.
bool takes(std::string_view methods, std::string_view method) {
  bool found = false;
  for_each_method(methods, [&](std::string_view m) { found = found || m == method; });
  return found;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> v1_routes() {
  std::vector<std::pair<std::string, std::string>> out;
  const auto add = [&](const RouteSpec& spec, const std::string& path) {
    for_each_method(spec.methods, [&](std::string_view m) { out.emplace_back(m, path); });
  };
  add(kSessionsRoute, "/v1/sessions");
  for (const RouteSpec& spec : kInstanceRoutes) add(spec, "/v1/" + std::string(spec.tail));
  for (const RouteSpec& spec : kSessionRoutes) {
    std::string tail(spec.tail);
    if (tail.ends_with("/*")) tail.replace(tail.size() - 1, 1, "{viewer}");
    add(spec, "/v1/sessions/{id}" + (tail.empty() ? "" : "/" + tail));
  }
  return out;
}

namespace {

// The body of a speech upload: raw samples (which kind, at what rate) or a file.
struct SpeechFormat {
  enum class Kind { kS16le, kS16be, kF32le, kFile } kind = Kind::kFile;
  int rate = 16000;
};

SpeechFormat speech_format(const std::string& content_type) {
  const std::string ct = core::to_lower_ascii(content_type);
  const auto semi = ct.find(';');
  const std::string type = core::trim(std::string_view(ct).substr(0, semi));
  int rate = 0;
  bool has_rate = false;
  int channels = 1;
  const std::string params = semi == std::string::npos ? "" : ct.substr(semi + 1);
  for (const std::string& item : core::split_trimmed(params, ';')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = core::trim(std::string_view(item).substr(0, eq));
    const std::string value = core::trim(std::string_view(item).substr(eq + 1));
    if (key != "rate" && key != "channels") continue;
    const bool numeric =
        !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
    if (!numeric) {
      throw Error::invalid_input("Content-Type: " + key + "=" + value + " is not a number");
    }
    // Anything of 7 digits or more is out of range either way; keep it out of std::stoi.
    (key == "rate" ? rate : channels) = value.size() < 7 ? std::stoi(value) : 9999999;
    if (key == "rate") has_rate = true;
  }
  SpeechFormat f;
  if (type == "audio/l16" || type == "audio/s16le" || type == "audio/f32le") {
    if (!has_rate) {
      throw Error::invalid_input("Content-Type " + type + " needs a rate, e.g. " + type +
                                 ";rate=16000");
    }
    if (channels != 1) throw Error::invalid_input("raw speech must be mono (channels=1)");
    limits::checked(limits::kSpeechRate, "Content-Type rate", rate);
    f.kind = type == "audio/l16"     ? SpeechFormat::Kind::kS16be
             : type == "audio/s16le" ? SpeechFormat::Kind::kS16le
                                     : SpeechFormat::Kind::kF32le;
    f.rate = rate;
    return f;
  }
  // What libsndfile reads (MP3 through libmpg123), under the names browsers and tools give
  // them; octet-stream is told apart by its bytes.
  static const char* files[] = {"audio/wav",      "audio/x-wav",     "audio/wave",
                                "audio/vnd.wave", "audio/flac",      "audio/x-flac",
                                "audio/ogg",      "application/ogg", "audio/opus",
                                "audio/mpeg",     "audio/mp3",       "audio/x-mpeg",
                                "audio/mpeg3",    "audio/x-mp3",     "application/octet-stream"};
  for (const char* t : files) {
    if (type == t) return f;
  }
  const std::string what = core::trim(content_type).substr(0, 80);
  if (type == "audio/mp4" || type == "audio/x-m4a" || type == "audio/aac" || type == "audio/webm") {
    throw Error::invalid_input("Content-Type '" + what +
                               "': AAC, M4A and WebM audio cannot be decoded here; send WAV, "
                               "FLAC, OGG or MP3, or raw PCM");
  }
  throw Error::invalid_input(
      "Content-Type '" + what +
      "' is not speech; send a WAV/FLAC/OGG/MP3 file (audio/wav, audio/flac, audio/ogg, "
      "audio/mpeg) or raw mono PCM (audio/L16;rate=N big-endian, audio/s16le;rate=N, "
      "audio/f32le;rate=N)");
}

// What an input's `wanted` does, set later than the input is opened (the input comes first, then
// what feeds it). Any thread.
class WantedHook {
 public:
  void set(std::function<void()> f) {
    core::MutexLock lock(mutex_);
    f_ = std::move(f);
  }
  void fire() {
    std::function<void()> f;
    {
      core::MutexLock lock(mutex_);
      f = f_;
    }
    if (f) f();
  }
  // The callback to open the input with: the session holds it (and so the hook, and what the
  // hook calls) while the input is open.
  static std::function<void()> of(std::shared_ptr<WantedHook> hook) {
    return [hook = std::move(hook)] { hook->fire(); };
  }

 private:
  core::Mutex mutex_;
  std::function<void()> f_ LIPSYNC_GUARDED_BY(mutex_);
};

// Speech that is here whole but must not be queued whole (a decoded file, a synthesised text):
// its pieces (`next`, empty at the end) go into the input as fast as the session takes them
// (live.max_buffered_s), one step on the media threads each time it has room again. So what a
// session holds is bounded whatever the file or text: a file is decoded as it plays. `done`
// comes once: at the end, when the input was cut, or with what `next` threw.
class PacedFeed final : public std::enable_shared_from_this<PacedFeed> {
 public:
  PacedFeed(std::shared_ptr<SpeechInput> input, core::WorkerPool& pool,
            std::function<std::vector<float>()> next, std::function<void(std::exception_ptr)> done)
      : input_(std::move(input)), pool_(pool), next_(std::move(next)), done_(std::move(done)) {}

  // The callback for the input's wanted (WantedHook::set): it keeps the feed while the session
  // keeps the input's callback (until the input is closed and told).
  std::function<void()> wanted() {
    return [self = shared_from_this()] { self->pool_.post([self] { self->step(); }); };
  }

  void step() {
    core::MutexLock lock(mutex_);  // one step at a time (a wanted may come while one returns)
    if (!done_) return;
    try {
      for (;;) {
        if (input_->closed()) return finish(nullptr);  // cut: the answer says so
        std::vector<float> piece = next_();
        if (piece.empty()) return finish(nullptr);
        if (!input_->add(std::move(piece))) return;  // wanted() steps on
      }
    } catch (...) {
      finish(std::current_exception());
    }
  }

 private:
  void finish(std::exception_ptr error) LIPSYNC_REQUIRES(mutex_) {
    auto done = std::move(done_);
    auto next = std::move(next_);  // what it holds (the file, the samples) goes after `done`
    done_ = nullptr;
    next_ = nullptr;
    done(error);
  }

  const std::shared_ptr<SpeechInput> input_;
  core::WorkerPool& pool_;
  core::Mutex mutex_;
  std::function<std::vector<float>()> next_ LIPSYNC_GUARDED_BY(mutex_);
  std::function<void(std::exception_ptr)> done_ LIPSYNC_GUARDED_BY(mutex_);  // null once done
};

// One speech upload: decodes pieces as they arrive into the session's speech input, on its
// core::ReadLane (the I/O thread only queues them).
class SpeechUpload final : public HttpBodyStream {
 public:
  // `lane`: where its pieces are handled, in order. `media`: where a file is decoded, holding
  // `slot` (the session's place for it) until then. `out`: where the answer goes (with its CORS
  // headers; the server's responder of on_end is the same request's without them).
  SpeechUpload(SpeechFormat format, bool keep_open, std::shared_ptr<SpeechInput> input,
               std::shared_ptr<WantedHook> wanted, std::size_t max_file_bytes, int max_seconds,
               std::shared_ptr<core::ReadLane> lane, core::WorkerPool& media,
               std::shared_ptr<HubSession::MediaSlot> slot, HttpResponder out)
      : out_(std::move(out)),
        format_(format),
        keep_open_(keep_open),
        input_(std::move(input)),
        wanted_(std::move(wanted)),
        max_file_bytes_(max_file_bytes),
        max_seconds_(max_seconds),
        lane_(std::move(lane)),
        media_(media),
        slot_(std::move(slot)) {
    if (format_.kind != SpeechFormat::Kind::kFile) {
      audio_.configure(format_.kind != SpeechFormat::Kind::kF32le, format_.rate);
    }
  }

  bool on_piece(std::string piece) override {
    const std::size_t bytes = piece.size();
    return lane_->queue(bytes, [self = shared_self(), piece = std::move(piece)]() mutable {
      return self->take(std::move(piece));
    });
  }

  void on_end(bool complete, HttpResponder) override {
    // A body cut short frees the session at once: the client may send its next upload as soon
    // as it has the server's answer.
    if (!complete) input_->abandon();
    lane_->then([self = shared_self(), complete] {
      try {
        self->end_body(complete);
      } catch (const std::exception& e) {  // nothing leaves the lane: the client is told
        self->input_->abandon();
        self->out_.reply(reply_for(e));
      }
    });
  }

  void set_self(const std::shared_ptr<SpeechUpload>& self) { self_ = self; }

 private:
  std::shared_ptr<SpeechUpload> shared_self() { return self_.lock(); }

  // On the lane: one piece of the body; returns whether the session has room for more.
  bool take(std::string piece) {
    if (error_) return true;  // read on and drop: the reply says what was wrong
    try {
      if (format_.kind == SpeechFormat::Kind::kFile) {
        if (file_.size() + piece.size() > max_file_bytes_) {
          error_ =
              error_reply(413, "the file is larger than " + std::to_string(max_file_bytes_ >> 20) +
                                   " MB (server.max_message_mb); send raw PCM to stream it");
          input_->abandon();
          return true;
        }
        file_ += piece;
        return true;
      }
      if (format_.kind == SpeechFormat::Kind::kS16be) piece = swap_bytes(std::move(piece));
      std::vector<float> samples = audio_.decode(piece, "speech");
      count(samples.size());
      return input_->add(std::move(samples));
    } catch (const std::exception& e) {
      fail(e);
      return true;
    }
  }

  // On the lane: the body is complete (or `complete` false: the client went away).
  void end_body(bool complete) {
    const HttpResponder& responder = out_;
    if (!complete) {
      input_->abandon();
      return;
    }
    if (error_) {
      input_->abandon();
      return responder.reply(*error_);
    }
    if (format_.kind != SpeechFormat::Kind::kFile) {
      try {
        if (!carry_.empty()) {  // big-endian samples keep their odd byte here, not in audio_
          throw Error::invalid_input("the speech ends with 1 byte of an incomplete sample");
        }
        std::vector<float> tail = audio_.finish("speech");
        count(tail.size());
        input_->add(std::move(tail));
      } catch (const std::exception& e) {
        input_->abandon();
        return responder.reply(reply_for(e));
      }
      return finish(responder);
    }
    // A file: decoded off the I/O thread, as it plays (PacedFeed); its header's length is
    // checked against audio.max_seconds before a sample is decoded.
    media_.post([self = shared_self(), responder] {
      try {
        self->reader_ = std::make_unique<audio::AudioFileReader>(
            std::as_bytes(std::span(self->file_.data(), self->file_.size())), "the speech body",
            self->max_seconds_);
      } catch (const std::exception& e) {
        self->input_->abandon();
        self->slot_.reset();  // free before the reply: the client's next request may need it
        return responder.reply(reply_for(e));
      }
      self->slot_.reset();
      const std::weak_ptr<SpeechUpload> weak = self;
      auto feed = std::make_shared<PacedFeed>(
          self->input_, self->media_,
          [self] {
            std::vector<float> piece = self->reader_->read(audio::kSampleRateHz);
            self->samples_ += static_cast<std::int64_t>(piece.size());
            return piece;
          },
          [weak, responder](std::exception_ptr error) {
            auto upload = weak.lock();
            if (!upload) return;
            upload->reader_.reset();
            upload->file_ = std::string();
            if (!error) return upload->finish(responder);
            upload->input_->abandon();
            try {
              std::rethrow_exception(error);
            } catch (const std::exception& e) {
              responder.reply(reply_for(e));
            }
          });
      self->wanted_->set(feed->wanted());
      feed->step();
    });
  }

  void finish(const HttpResponder& responder) {
    input_->end(keep_open_);  // one cut meanwhile stays as it was cut
    responder.reply(speech_reply(*input_, samples_, keep_open_));
  }

  std::string swap_bytes(std::string piece) {
    std::string bytes = carry_ + piece;
    carry_.clear();
    if (bytes.size() % 2) {
      carry_ = bytes.back();
      bytes.pop_back();
    }
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) std::swap(bytes[i], bytes[i + 1]);
    return bytes;
  }

  void count(std::size_t n) {
    samples_ += static_cast<std::int64_t>(n);
    if (samples_ > static_cast<std::int64_t>(max_seconds_) * 16000) {
      throw Error::invalid_input("the speech is longer than " + std::to_string(max_seconds_) +
                                 " s (audio.max_seconds)");
    }
  }

  void fail(const std::exception& e) {
    error_ = reply_for(e);
    input_->abandon();
  }

  const HttpResponder out_;
  const SpeechFormat format_;
  const bool keep_open_;
  std::shared_ptr<SpeechInput> input_;
  std::shared_ptr<WantedHook> wanted_;              // the lane's wanted, or the file's feed
  std::unique_ptr<audio::AudioFileReader> reader_;  // the file being decoded (media threads)
  const std::size_t max_file_bytes_;
  const int max_seconds_;
  const std::shared_ptr<core::ReadLane> lane_;
  core::WorkerPool& media_;
  std::shared_ptr<HubSession::MediaSlot> slot_;  // until the file is decoded
  std::weak_ptr<SpeechUpload> self_;
  WireAudio audio_;
  std::string carry_;  // an odd byte of big-endian samples
  std::string file_;
  std::int64_t samples_ = 0;
  std::optional<HttpReply> error_;
};

// `text` with its %XX escapes decoded (a query parameter's value); a bad escape stays as it is,
// and so does '+' (a space only in HTML forms; a token's base64 has it).
std::string percent_decoded(std::string_view text) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];  // '+' stays: a token's base64 is sent as it is
    }
  }
  return out;
}

// A session's socket: the agent protocol, and the socket's end when the session ends. Its
// messages are handled on a core::ReadLane, in order, off the I/O thread; an interrupt acts as it
// arrives too (AgentSocket::early).
class SessionSocket final : public WebSocketHandler,
                            public std::enable_shared_from_this<SessionSocket> {
 public:
  SessionSocket(std::shared_ptr<HubSession> session, std::shared_ptr<WebSocketPeer> peer,
                int max_seconds, core::WorkerPool& wire)
      : session_(std::move(session)),
        peer_(peer),
        lane_(std::make_shared<core::ReadLane>(wire, [peer] { peer->resume(); })),
        agent_(AgentSocket::Target{[s = session_](std::function<void()> wanted) {
                                     return s->begin_speech(std::move(wanted));
                                   },
                                   [s = session_](bool again) { s->interrupt(again); }},
               peer, max_seconds,
               [lane = std::weak_ptr<core::ReadLane>(lane_)] {
                 if (auto l = lane.lock()) l->wanted();
               }),
        watcher_(std::make_shared<Watcher>(peer)) {
    if (!session_->attach(watcher_)) {
      peer->close("the session has ended", 1001);
      return;
    }
    // Its events from now on (SessionEvents), as text messages.
    subscription_ = session_->events().subscribe(
        std::numeric_limits<std::int64_t>::max(),
        [peer](const pipeline::LiveEvent& e) { peer->send_text(e.json); });
  }
  bool on_message(bool text, std::string data) override {
    agent_.early(text, data);
    const std::size_t bytes = data.size();
    return lane_->queue(bytes, [self = shared_from_this(), text, data = std::move(data)]() mutable {
      try {
        return self->agent_.on_message(text, std::move(data));
      } catch (const std::exception& e) {  // its own errors are answered; anything else ends it
        spdlog::error("http: a WebSocket message failed: {}", e.what());
        self->peer_->close("internal error", 1011);
        return true;
      }
    });
  }
  void on_close() override {
    if (subscription_ >= 0) session_->events().unsubscribe(subscription_);
    session_->detach(watcher_.get());
    lane_->then([self = shared_from_this()] { self->agent_.on_close(); });
  }

 private:
  // Closes the socket when the session ends (deleted, shut down, failed).
  struct Watcher final : pipeline::LiveSink {
    explicit Watcher(std::shared_ptr<WebSocketPeer> p) : peer(std::move(p)) {}
    void on_live_frame(pipeline::LiveFrame) override {}
    void on_live_ended(const std::optional<Error>& error) override {
      peer->close(error ? error->message() : "the session has ended", 1001);  // going away
    }
    const std::shared_ptr<WebSocketPeer> peer;
  };

  const std::shared_ptr<HubSession> session_;
  const std::shared_ptr<WebSocketPeer> peer_;
  const std::shared_ptr<core::ReadLane> lane_;
  AgentSocket agent_;  // on the lane
  const std::shared_ptr<Watcher> watcher_;
  int subscription_ = -1;
};

// GET /v1/sessions/ID/events: the session's events as Server-Sent Events (id: seq, event: type,
// data: the JSON), from after Last-Event-ID when the client resumes; the stream ends after
// session_ended.
class SessionEventStream final : public EventStreamHandler {
 public:
  SessionEventStream(std::shared_ptr<HubSession> session, std::shared_ptr<EventStreamPeer> peer,
                     std::int64_t after_seq)
      : session_(std::move(session)) {
    subscription_ = session_->events().subscribe(after_seq, [peer](const pipeline::LiveEvent& e) {
      peer->send("id: " + std::to_string(e.seq) +
                 "\nevent: " + std::string(event_type_name(e.type)) + "\ndata: " + e.json + "\n\n");
      if (e.type == pipeline::LiveEvent::Type::kSessionEnded) peer->close();
    });
    if (session_->events().ended()) peer->close();  // it had ended before: nothing will come
  }
  void on_close() override { session_->events().unsubscribe(subscription_); }

 private:
  const std::shared_ptr<HubSession> session_;
  int subscription_ = -1;
};

}  // namespace

struct HttpApi::Impl : std::enable_shared_from_this<HttpApi::Impl> {
  SessionHub& hub;
  ServiceContext ctx;
  std::function<HttpReply(const HttpRequest&)> fallback;
  std::function<void()> drain;
  std::function<std::string()> load;
  std::vector<std::string> origins;

  Impl(SessionHub& h, const ServiceContext& c, HttpApi::Hooks k)
      : hub(h),
        ctx(c),
        fallback(std::move(k.fallback)),
        drain(std::move(k.drain)),
        load(std::move(k.load)),
        origins(core::split_trimmed(c.server.cors_origins, ',')) {}

  // `out` with the CORS headers of `decorate` added to its reply (resume() as it is).
  static HttpResponder with_cors(const HttpResponder& out,
                                 std::function<HttpReply(HttpReply)> decorate) {
    return HttpResponder([out, decorate](HttpReply r) { out.reply(decorate(std::move(r))); },
                         [out] { out.resume(); });
  }

  // Adds the CORS headers a reply to `origin` gets.
  std::function<HttpReply(HttpReply)> decorator(const HttpRequest& r) const {
    std::string allow;
    const std::string origin = r.header("origin");
    if (!origin.empty()) {
      for (const auto& o : origins) {
        if (o == "*" || o == origin) allow = o == "*" ? "*" : origin;
      }
    }
    return [allow](HttpReply reply) {
      if (!allow.empty()) {
        reply.headers.emplace_back("Access-Control-Allow-Origin", allow);
        reply.headers.emplace_back("Access-Control-Expose-Headers", "Location");
        if (allow != "*") reply.headers.emplace_back("Vary", "Origin");
      }
      return reply;
    };
  }

  bool authorized(const HttpRequest& r) const {
    return ctx.server.api_token.empty() ||
           bearer_token_matches(r.header("authorization"), ctx.server.api_token);
  }

  // A request only a session's viewer token allows (to watch that session: a WHEP viewer, its
  // state), carrying that token as its bearer.
  bool watching(const HttpRequest& r) const {
    const RouteMatch m = match_route(r.path);
    if (m.spec == nullptr || m.spec->route == Route::kSessions || !takes(m.spec->watch, r.method)) {
      return false;
    }
    const auto session = hub.find(m.session);
    return session && bearer_token_matches(r.header("authorization"), session->viewer_token());
  }

  // A browser page's request (it sends an Origin) is let in from the server's own origin or one
  // of server.cors_origins: another page the operator visits may not drive the avatar.
  bool origin_allowed(const HttpRequest& r) const {
    const std::string origin = r.header("origin");
    if (origin.empty()) return true;  // not a browser
    const std::string host = r.header("host");
    if (origin == "http://" + host || origin == "https://" + host) return true;
    return std::any_of(origins.begin(), origins.end(),
                       [&](const std::string& o) { return o == "*" || o == origin; });
  }

  // A request that changes something, sent by a page of another origin than the server's own
  // or server.cors_origins: 403. A page can POST text/plain or a form to any address without a
  // preflight, so without this any page the operator visits could create sessions and speak on
  // a server without a token (issue 25). Clients that are not browsers send no Origin.
  std::optional<HttpReply> foreign_page(const HttpRequest& r) const {
    if (r.method == "GET" || r.method == "HEAD" || origin_allowed(r)) return std::nullopt;
    return foreign_origin(r);
  }

  // The 403 for a page whose origin may not call the API.
  static HttpReply foreign_origin(const HttpRequest& r) {
    return error_reply(403, "origin '" + r.header("origin").substr(0, 100) +
                                "' may not call this API (server.cors_origins)");
  }

  // GET /v1/sessions/ID/ws: a voice agent's socket (AgentSocket). The token may come as the
  // access_token query parameter: a browser cannot set headers on a WebSocket.
  WebSocketPlan websocket(const HttpRequest& r, const std::shared_ptr<WebSocketPeer>& peer) {
    const RouteMatch m = match_route(r.path);
    if (m.route() != Route::kSocket) return {};
    const auto decorate = decorator(r);
    if (!authorized(r) &&
        !same_secret(percent_decoded(r.param("access_token")), ctx.server.api_token)) {
      return {nullptr, decorate(unauthorized())};
    }
    if (!origin_allowed(r)) return {nullptr, foreign_origin(r)};
    try {
      auto session = session_or_throw(m.session);
      return {std::make_shared<SessionSocket>(std::move(session), peer, ctx.audio.max_seconds,
                                              hub.wire()),
              std::nullopt};
    } catch (const std::exception& e) {
      return {nullptr, decorate(reply_for(e))};
    }
  }

  // GET /v1/sessions/ID/events (SessionEventStream). EventSource cannot set headers either: the
  // token (the server's or the session's viewer token) may come as access_token.
  EventStreamPlan events(const HttpRequest& r, const std::shared_ptr<EventStreamPeer>& peer) {
    const RouteMatch m = match_route(r.path);
    if (m.route() != Route::kEvents) return {};
    const auto decorate = decorator(r);
    const std::string token = percent_decoded(r.param("access_token"));
    HttpRequest with_token = r;
    if (!token.empty() && r.header("authorization").empty()) {
      with_token.headers.emplace_back("authorization", "Bearer " + token);
    }
    if (!authorized(with_token) && !watching(with_token)) {
      return {nullptr, {}, decorate(unauthorized())};
    }
    try {
      auto session = session_or_throw(m.session);
      std::int64_t after = 0;
      const std::string last = core::trim(r.header("last-event-id"));
      if (!last.empty()) {
        if (last.size() > 18 || last.find_first_not_of("0123456789") != std::string::npos) {
          throw Error::invalid_input("Last-Event-ID: " + core::quote(last) +
                                     " is not an event's id (a seq: 1, 2, ...)");
        }
        after = std::stoll(last);
      }
      const HttpReply headers = decorate(HttpReply{});
      return {std::make_shared<SessionEventStream>(std::move(session), peer, after),
              headers.headers, std::nullopt};
    } catch (const std::exception& e) {
      return {nullptr, {}, decorate(reply_for(e))};
    }
  }

  static HttpReply unauthorized() {
    HttpReply r =
        error_reply(401, "this API needs `Authorization: Bearer <token>` (server.api_token)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }

  static HttpReply method_not_allowed(const std::string& allow) {
    HttpReply r = error_reply(405, "method not allowed; use " + allow);
    r.headers.emplace_back("Allow", allow);
    return r;
  }

  // A place for media work of `session`; throws kResourceExhausted (429) when it has all of
  // them busy.
  static std::shared_ptr<HubSession::MediaSlot> media_slot_or_throw(HubSession& session) {
    auto slot = session.media_slot();
    if (!slot) {
      throw Error::resource_exhausted(
          "the session has " + std::to_string(kMaxMediaJobsPerSession) +
          " offers, texts or files in work; retry when one is answered");
    }
    return slot;
  }

  // The session (a request uses it: its idle clock starts again).
  std::shared_ptr<HubSession> session_or_throw(const std::string& id) const {
    auto s = hub.find(id);
    if (!s) throw Error::not_found("no session '" + id.substr(0, 64) + "'");
    s->touch();
    return s;
  }

  // Routing ----------------------------------------------------------------------------------
  void handle(HttpRequest r, HttpResponder out) {
    if (r.path == "/" || r.path == "/index.html") {
      if (r.method != "GET" && r.method != "HEAD")
        return out.reply(method_not_allowed("GET, HEAD"));
      return out.reply(
          {200,
           "text/html; charset=utf-8",
           std::string(reinterpret_cast<const char*>(kDemoPageHtml), kDemoPageHtmlSize),
           {{"Cache-Control", "no-cache"}}});
    }
    if (r.path == "/favicon.ico") return out.reply({204, "image/x-icon", "", {}});
    if (r.path.rfind("/v1/", 0) != 0 && r.path != "/v1") return out.reply(fallback(r));
    const auto decorate = decorator(r);
    if (r.method == "OPTIONS") return out.reply(preflight(r, decorate));
    if (const auto refusal = foreign_page(r)) return out.reply(*refusal);
    if (!authorized(r) && !watching(r)) return out.reply(decorate(unauthorized()));
    const HttpResponder reply = with_cors(out, decorate);  // every reply below gets its headers
    try {
      route(std::move(r), reply);
    } catch (const std::exception& e) {
      reply.reply(reply_for(e));
    }
  }

  HttpReply preflight(const HttpRequest& r, const std::function<HttpReply(HttpReply)>& decorate) {
    HttpReply reply{204, "text/plain; charset=utf-8", "", {}};
    reply = decorate(std::move(reply));
    const bool allowed = std::any_of(reply.headers.begin(), reply.headers.end(), [](const auto& h) {
      return h.first == "Access-Control-Allow-Origin";
    });
    if (!allowed) return foreign_origin(r);
    reply.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    reply.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
    reply.headers.emplace_back("Access-Control-Max-Age", "600");
    return reply;
  }

  void route(HttpRequest r, const HttpResponder& out) {
    const RouteMatch m = match_route(r.path);
    if (m.spec == nullptr) throw Error::not_found("no route " + r.path.substr(0, 100));
    if (!takes(m.spec->methods, r.method)) {
      return out.reply(method_not_allowed(std::string(m.spec->methods)));
    }
    const std::string& id = m.session;
    switch (m.route()) {
      case Route::kDrain:
        drain();
        return out.reply(json_reply(202, {{"draining", true},
                                          {"instance", hub.instance()},
                                          {"sessions", hub.sessions()},
                                          {"drain_timeout_s", ctx.server.drain_timeout_s}}));
      case Route::kLoad:
        return out.reply({200, "application/json", load() + "\n", {}});
      case Route::kSessions: {
        if (r.method == "POST") return create(r, out);
        json list = json::array();
        for (const auto& i : hub.list()) list.push_back(info_json(i));
        return out.reply(json_reply(200, {{"sessions", list}}));
      }
      case Route::kSession:
        if (r.method == "GET") {
          json info = info_json(session_or_throw(id)->info());
          info["ice_servers"] = ice_servers_json(hub, id);
          return out.reply(json_reply(200, info));
        }
        session_or_throw(id);
        hub.control().post([this_ = shared_from_this(), id, out] {
          const bool removed = this_->hub.remove(
              id,
              Error::unavailable("session " + id + " was deleted (DELETE /v1/sessions/" + id + ")"),
              "deleted");
          out.reply(removed ? HttpReply{204, "text/plain; charset=utf-8", "", {}}
                            : error_reply(404, "no session '" + id + "'"));
        });
        return;
      default:
        break;
    }
    auto session = session_or_throw(id);
    switch (m.route()) {
      case Route::kWhep:
        return add_viewer(std::move(session), std::move(r), out);
      case Route::kWhepViewer:
        hub.control().post([session, viewer = m.viewer, out] {
          const bool removed = session->remove_viewer(viewer);
          out.reply(removed ? HttpReply{204, "text/plain; charset=utf-8", "", {}}
                            : error_reply(404, "no viewer '" + viewer.substr(0, 64) + "'"));
        });
        return;
      case Route::kKeepalive:
        return out.reply(json_reply(200, info_json(session->info())));
      case Route::kInterrupt:
        session->interrupt();
        return out.reply(json_reply(200, {{"interrupted", true}}));
      case Route::kSay:
        return say(std::move(session), r, out);
      case Route::kSpeech: {
        // Reached only with a body that was complete with its header (an empty one): take it
        // as a stream of one piece.
        auto upload = open_speech(session, r, out);
        upload->on_piece(std::move(r.body));
        upload->on_end(true, out);
        return;
      }
      case Route::kEvents:
        throw Error::invalid_input("GET /v1/sessions/ID/events is an event stream: send no body");
      case Route::kSocket:
        return out.reply(error_reply(
            426,
            "GET /v1/sessions/ID/ws is a WebSocket: send Connection: Upgrade and Upgrade: "
            "websocket"));
      default:
        break;
    }
    throw Error::not_found("no route " + r.path.substr(0, 100));
  }

  static json parse_json(const std::string& body) {
    if (body.empty()) return json::object();
    json j = core::parse_json(body, "the body");
    if (!j.is_object()) throw Error::invalid_input("the body must be a JSON object");
    return j;
  }

  void create(const HttpRequest& r, const HttpResponder& out) {
    const json body = parse_json(r.body);
    std::string model;
    if (body.contains("model")) {
      if (!body["model"].is_string()) throw Error::invalid_input("model: expected a string");
      model = body["model"].get<std::string>();
    } else {
      const auto models = ctx.registry->status();
      if (models.size() != 1)
        throw Error::invalid_input("model: required (the server has several models)");
      model = models.front().id;
    }
    int start = 0;
    if (body.contains("start_frame")) {
      const json& v = body["start_frame"];
      if (!v.is_number_integer()) throw Error::invalid_input("start_frame: expected an integer");
      start = static_cast<int>(limits::checked_json(limits::kStartFrame, "start_frame", v));
    }
    // Loading a model can take a while: off the I/O thread.
    hub.control().post([this_ = shared_from_this(), model, start, out] {
      try {
        SessionHub::NewSession spec;
        spec.model = model;
        spec.start_frame = start;
        auto s = this_->hub.create(spec);
        json created = info_json(s->info());
        created["viewer_token"] = s->viewer_token();
        created["ice_servers"] = ice_servers_json(this_->hub, s->id());
        HttpReply reply = json_reply(201, created);
        reply.headers.emplace_back("Location", "/v1/sessions/" + s->id());
        out.reply(std::move(reply));
      } catch (const std::exception& e) {
        HttpReply reply = reply_for(e);
        // Leaving: a client (or a gateway) creates it on another instance; this one says when
        // to come back to it at the soonest.
        if (this_->hub.draining()) reply.headers.emplace_back("Retry-After", "1");
        out.reply(std::move(reply));
      }
    });
  }

  void add_viewer(std::shared_ptr<HubSession> session, HttpRequest r, const HttpResponder& out) {
    if (core::to_lower_ascii(r.header("content-type")).rfind("application/sdp", 0) != 0) {
      throw Error::invalid_input("a WHEP offer must be sent as Content-Type: application/sdp");
    }
    auto slot = media_slot_or_throw(*session);
    // Each job frees its place before it replies: the client's next request may need it.
    hub.media().post([session, slot, offer = std::move(r.body), out]() mutable {
      try {
        auto [viewer, answer] = session->add_viewer(offer);
        HttpReply reply{201, "application/sdp", answer, {}};
        reply.headers.emplace_back("Location", "/v1/sessions/" + session->id() + "/whep/" + viewer);
        slot.reset();
        out.reply(std::move(reply));
      } catch (const std::exception& e) {
        slot.reset();
        out.reply(reply_for(e));
      }
    });
  }

  void say(std::shared_ptr<HubSession> session, const HttpRequest& r, const HttpResponder& out) {
    const json body = parse_json(r.body);
    if (!body.contains("text") || !body["text"].is_string()) {
      throw Error::invalid_input("text: required, a string");
    }
    std::string voice = "en";
    if (body.contains("voice")) {
      if (!body["voice"].is_string()) throw Error::invalid_input("voice: expected a string");
      voice = body["voice"].get<std::string>();
    }
    const std::string text = body["text"].get<std::string>();
    if (text.size() > tts::kMaxTextBytes) {
      throw Error::invalid_input("text: " + std::to_string(text.size()) +
                                 " bytes is too long; at most " +
                                 std::to_string(tts::kMaxTextBytes));
    }
    auto slot = media_slot_or_throw(*session);
    auto hook = std::make_shared<WantedHook>();
    auto input = session->begin_speech(WantedHook::of(hook));
    if (!input) throw busy();
    core::WorkerPool* media = &hub.media();
    media->post([input, hook, media, slot, text, voice, out]() mutable {
      // Synthesised whole (tts::kMaxTextBytes of text: minutes of speech at most), then queued
      // as the session plays it (PacedFeed): the answer comes when it is all queued.
      auto samples = std::make_shared<std::vector<float>>();
      try {
        tts::say(text, voice, [&](std::vector<float> piece) {
          samples->insert(samples->end(), piece.begin(), piece.end());
          return !input->closed();
        });
      } catch (const std::exception& e) {
        input->abandon();
        slot.reset();
        return out.reply(reply_for(e));
      }
      slot.reset();
      const auto total = static_cast<std::int64_t>(samples->size());
      auto feed = std::make_shared<PacedFeed>(
          input, *media,
          [samples, at = std::size_t{0}]() mutable {
            const std::size_t n = std::min<std::size_t>(audio::kSampleRateHz, samples->size() - at);
            std::vector<float> piece(samples->begin() + static_cast<std::ptrdiff_t>(at),
                                     samples->begin() + static_cast<std::ptrdiff_t>(at + n));
            at += n;
            return piece;
          },
          [input, total, out](std::exception_ptr) {
            input->end();  // one cut meanwhile stays as it was cut
            out.reply(speech_reply(*input, total, {}));
          });
      hook->set(feed->wanted());
      feed->step();
    });
  }

  // A speech upload for `session`, or an Error (thrown) saying why not.
  std::shared_ptr<SpeechUpload> open_speech(const std::shared_ptr<HubSession>& session,
                                            const HttpRequest& r, const HttpResponder& out) {
    const SpeechFormat format = speech_format(r.header("content-type"));
    const std::string more = r.param("continue");
    // A file is decoded on the media threads once it is in: it holds a place from the start.
    std::shared_ptr<HubSession::MediaSlot> slot;
    if (format.kind == SpeechFormat::Kind::kFile) slot = media_slot_or_throw(*session);
    auto lane = std::make_shared<core::ReadLane>(hub.wire(), [out] { out.resume(); });
    auto hook = std::make_shared<WantedHook>();
    hook->set([weak = std::weak_ptr<core::ReadLane>(lane)] {  // a file's decoding sets its own
      if (auto l = weak.lock()) l->wanted();
    });
    auto input = session->begin_speech(WantedHook::of(hook));
    if (!input) throw busy();
    auto upload = std::make_shared<SpeechUpload>(
        format, more == "1" || more == "true", std::move(input), hook,
        static_cast<std::size_t>(ctx.server.max_message_mb) << 20, ctx.audio.max_seconds,
        std::move(lane), hub.media(), std::move(slot), out);
    upload->set_self(upload);
    return upload;
  }

  // The most bytes a speech body of `format` may have: a file within server.max_message_mb,
  // raw samples of at most audio.max_seconds (and an odd byte).
  std::uint64_t max_speech_bytes(const SpeechFormat& format) const {
    if (format.kind == SpeechFormat::Kind::kFile) {
      return static_cast<std::uint64_t>(ctx.server.max_message_mb) << 20;
    }
    const std::uint64_t bytes_per_sample = format.kind == SpeechFormat::Kind::kF32le ? 4 : 2;
    return static_cast<std::uint64_t>(ctx.audio.max_seconds) *
               static_cast<std::uint64_t>(format.rate) * bytes_per_sample +
           1;
  }

  // Streamed bodies: speech uploads. One that cannot start is answered from its header (its
  // JSON error: 401, 404, 409, 413, ...) before a byte of its body is read; other requests are
  // read whole.
  HttpBodyPlan stream(const HttpRequest& r, const HttpResponder& out) {
    const RouteMatch m = match_route(r.path);
    if (r.method != "POST" || m.route() != Route::kSpeech) return {};
    const auto decorate = decorator(r);
    if (auto refusal = foreign_page(r)) return {nullptr, std::move(refusal)};
    if (!authorized(r)) return {nullptr, decorate(unauthorized())};
    try {
      const auto session = session_or_throw(m.session);
      const SpeechFormat format = speech_format(r.header("content-type"));
      const std::string length = r.header("content-length");
      const std::uint64_t most = max_speech_bytes(format);
      // Beast has checked that a Content-Length is a number that fits 64 bits.
      if (!length.empty() && std::stoull(length) > most) {
        return {nullptr,
                decorate(error_reply(
                    413, "the speech body declares " + length + " bytes; at most " +
                             std::to_string(most) +
                             (format.kind == SpeechFormat::Kind::kFile
                                  ? " for a file (server.max_message_mb); send raw PCM to stream"
                                  : " for raw speech (audio.max_seconds = " +
                                        std::to_string(ctx.audio.max_seconds) + " s)")))};
      }
      return {open_speech(session, r, with_cors(out, decorate)), std::nullopt};
    } catch (const std::exception& e) {
      return {nullptr, decorate(reply_for(e))};
    }
  }
};

HttpApi::HttpApi(SessionHub& hub, const ServiceContext& context, Hooks hooks)
    : impl_(std::make_shared<Impl>(hub, context, std::move(hooks))) {}

HttpRoutes HttpApi::routes() {
  auto impl = impl_;
  return {[impl](HttpRequest r, HttpResponder out) { impl->handle(std::move(r), std::move(out)); },
          [impl](const HttpRequest& r, HttpResponder out) { return impl->stream(r, out); },
          [impl](const HttpRequest& r, std::shared_ptr<WebSocketPeer> peer) {
            return impl->websocket(r, peer);
          },
          [impl](const HttpRequest& r, std::shared_ptr<EventStreamPeer> peer) {
            return impl->events(r, peer);
          }};
}

}  // namespace lipsync::server
