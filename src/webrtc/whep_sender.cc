#include "webrtc/whep_sender.h"

#define GST_USE_UNSTABLE_API
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <nice/agent.h>
#include <nice/interfaces.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include "audio/video_frames.h"
#include "core/error.h"
#include "core/mutex.h"

namespace lipsync::webrtc {
namespace {

constexpr GstClockTime kFrameNs = 40 * GST_MSECOND;
std::atomic<int> g_live_pipelines{0};

// The payload types of the offer's video (H.264, packetization-mode 1) and audio (Opus) lines,
// in the offer's m-line order.
struct OfferMedia {
  bool video = false;  // else audio
  int payload = -1;
};

bool is_constrained_baseline(const std::string& fmtp) {
  const auto at = fmtp.find("profile-level-id=");
  if (at == std::string::npos) return false;
  const std::string id = fmtp.substr(at + 17, 4);
  return id == "42e0" || id == "42E0" || id == "4200";
}

// Picks the payload type of `encoding` on one m-line; for H.264 only packetization-mode 1,
// constrained baseline preferred.
int pick_payload(const GstSDPMedia* media, const char* encoding) {
  int best = -1;
  bool best_baseline = false;
  const guint n = gst_sdp_media_attributes_len(media);
  for (guint i = 0; i < n; ++i) {
    const GstSDPAttribute* a = gst_sdp_media_get_attribute(media, i);
    if (!a->key || std::strcmp(a->key, "rtpmap") != 0 || !a->value) continue;
    int pt = -1;
    char name[64] = {};
    if (std::sscanf(a->value, "%d %63[^/]", &pt, name) != 2) continue;
    if (g_ascii_strcasecmp(name, encoding) != 0) continue;
    if (std::strcmp(encoding, "OPUS") == 0) return pt;
    // H.264: look for this payload's fmtp.
    std::string fmtp;
    for (guint j = 0; j < n; ++j) {
      const GstSDPAttribute* f = gst_sdp_media_get_attribute(media, j);
      if (!f->key || std::strcmp(f->key, "fmtp") != 0 || !f->value) continue;
      int fpt = -1;
      if (std::sscanf(f->value, "%d", &fpt) == 1 && fpt == pt) fmtp = f->value;
    }
    if (fmtp.find("packetization-mode=1") == std::string::npos) continue;
    const bool baseline = is_constrained_baseline(fmtp);
    if (best < 0 || (baseline && !best_baseline)) {
      best = pt;
      best_baseline = baseline;
    }
  }
  return best;
}

std::vector<OfferMedia> parse_offer(const GstSDPMessage* sdp) {
  std::vector<OfferMedia> out;
  bool have_video = false;
  bool have_audio = false;
  const guint n = gst_sdp_message_medias_len(sdp);
  for (guint i = 0; i < n; ++i) {
    const GstSDPMedia* media = gst_sdp_message_get_media(sdp, i);
    const char* kind = gst_sdp_media_get_media(media);
    if (!kind) continue;
    if (std::strcmp(kind, "video") == 0 && !have_video) {
      const int pt = pick_payload(media, "H264");
      if (pt < 0) {
        throw Error::invalid_input(
            "the offer's video has no H.264 payload with packetization-mode=1");
      }
      out.push_back({true, pt});
      have_video = true;
    } else if (std::strcmp(kind, "audio") == 0 && !have_audio) {
      const int pt = pick_payload(media, "OPUS");
      if (pt < 0) throw Error::invalid_input("the offer's audio has no Opus payload");
      out.push_back({false, pt});
      have_audio = true;
    } else {
      throw Error::invalid_input(std::string("the offer has an m-line this server cannot send (") +
                                 kind + "); offer one video and at most one audio line");
    }
  }
  if (!have_video) throw Error::invalid_input("the offer has no video m-line");
  return out;
}

// The SSRCs and CNAME a viewer's tracks use: chosen here so the answer can name them.
struct TrackIds {
  guint32 video_ssrc = 0;
  guint32 audio_ssrc = 0;
  std::string cname;
};

TrackIds new_track_ids() {
  TrackIds ids;
  ids.video_ssrc = g_random_int_range(1, G_MAXINT32);
  do {
    ids.audio_ssrc = g_random_int_range(1, G_MAXINT32);
  } while (ids.audio_ssrc == ids.video_ssrc);
  char cname[32];
  std::snprintf(cname, sizeof cname, "lipsync-%08x", g_random_int());
  ids.cname = cname;
  return ids;
}

std::string pipeline_description(const std::vector<OfferMedia>& media, const WebRtcOptions& o,
                                 int width, int height, const TrackIds& ids) {
  std::string d = "webrtcbin name=webrtc bundle-policy=max-bundle";
  // Measurement mode: RTP timestamps start at 0 on both tracks, so that a test can tell the
  // media time of what the browser plays from the RTP timestamps it reports.
  const std::string offset = o.frame_marker ? " timestamp-offset=0" : "";
  if (!o.stun_server.empty()) d += " stun-server=stun://" + o.stun_server;
  // x264's VBV buffer of 120 ms caps a frame at 120 ms of bitrate (37 KB at 2500 kb/s): a key
  // frame is sent at once (nothing paces RTP here), and a TURN relay drops what does not fit in
  // its socket (coturn's hold 64 KB): with the default 600 ms, one key frame in two lost packets
  // through coturn and the viewer fell to 12-17 fps (tests/browser/turn.test.mjs).
  for (const OfferMedia& m : media) {
    const std::string pt = std::to_string(m.payload);
    if (m.video) {
      d += " appsrc name=vsrc is-live=true format=time do-timestamp=false max-buffers=2"
           " leaky-type=downstream caps=\"video/x-raw,format=BGR,width=" +
           std::to_string(width) + ",height=" + std::to_string(height) +
           ",framerate=25/1\" ! videoconvert ! video/x-raw,format=I420"
           " ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=50"
           " vbv-buf-capacity=120 bitrate=" +
           std::to_string(o.video_bitrate_kbps) +
           " ! video/x-h264,profile=constrained-baseline"
           " ! rtph264pay config-interval=-1 aggregate-mode=zero-latency" +
           offset + " ssrc=" + std::to_string(ids.video_ssrc) + " pt=" + pt +
           " ! application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=" + pt +
           " ! webrtc.";
    } else {
      d += " appsrc name=asrc is-live=true format=time do-timestamp=false max-buffers=4"
           " leaky-type=downstream caps=\"audio/x-raw,format=S16LE,rate=16000,channels=1,"
           "layout=interleaved\" ! audioconvert ! audioresample ! audio/x-raw,rate=48000"
           " ! opusenc frame-size=10 ! rtpopuspay" +
           offset + " ssrc=" + std::to_string(ids.audio_ssrc) + " pt=" + pt +
           // Each tick brings 40 ms of audio, four 10 ms packets: send each on its time,
           // not with the first (bursts make the browser's audio jitter buffer, and through lip
           // sync the video, wait longer).
           " ! identity sync=true ! "
           "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=" +
           pt + " ! webrtc.";
    }
  }
  return d;
}

// Emits one of webrtcbin's promise actions ("set-remote-description", "create-answer", ...)
// with `argument` and waits for its reply. With `answer`, the reply's "answer" field is stored
// there (the caller frees it; null when there is none). Throws when it fails or is not answered.
void run_action(GstElement* webrtc, const char* action, gpointer argument,
                GstWebRTCSessionDescription** answer = nullptr) {
  const std::unique_ptr<GstPromise, decltype(&gst_promise_unref)> promise(gst_promise_new(),
                                                                          &gst_promise_unref);
  g_signal_emit_by_name(webrtc, action, argument, promise.get());
  if (gst_promise_wait(promise.get()) != GST_PROMISE_RESULT_REPLIED) {
    throw Error::unavailable(std::string("webrtc: ") + action + " was not answered");
  }
  const GstStructure* reply = gst_promise_get_reply(promise.get());
  if (reply && gst_structure_has_field(reply, "error")) {
    GError* error = nullptr;
    gst_structure_get(reply, "error", G_TYPE_ERROR, &error, nullptr);
    std::string message = error ? error->message : "unknown error";
    if (error) g_error_free(error);
    throw Error::invalid_input(std::string("webrtc: ") + action + " failed: " + message);
  }
  if (answer && reply) {
    gst_structure_get(reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, answer, nullptr);
  }
}

// The frame marker: the send time (unix ms mod 2^24) as 24 black/white blocks along the top.
void draw_marker(std::vector<std::uint8_t>& bgr, int width, int height) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const auto code = static_cast<std::uint32_t>(ms & 0xffffff);
  const int block = std::max(2, std::min(16, width / 24));
  const int rows = std::min(block, height);
  for (int bit = 0; bit < 24; ++bit) {
    const std::uint8_t v = (code >> (23 - bit)) & 1 ? 255 : 0;
    for (int y = 0; y < rows; ++y) {
      std::uint8_t* row = bgr.data() + (static_cast<std::size_t>(y) * width + bit * block) * 3;
      std::memset(row, v, static_cast<std::size_t>(block) * 3);
    }
  }
}

// webrtcbin 1.22 writes a track's SSRC and msid only once media has flowed (after the answer):
// name them in each m-section of the answer (RFC 8830, RFC 5576), so that the browser puts both
// tracks in one MediaStream, the unit it lip-syncs, and knows their SSRCs from the start.
std::string with_track_ids(const std::string& sdp, const TrackIds& ids) {
  std::string out;
  std::size_t at = 0;
  std::string kind;
  while (at < sdp.size()) {
    auto end = sdp.find('\n', at);
    end = end == std::string::npos ? sdp.size() : end + 1;
    const std::string line = sdp.substr(at, end - at);
    out += line;
    if (line.rfind("m=video", 0) == 0) kind = "video";
    if (line.rfind("m=audio", 0) == 0) kind = "audio";
    if (line.rfind("a=mid:", 0) == 0 && !kind.empty()) {
      const std::string ssrc = std::to_string(kind == "video" ? ids.video_ssrc : ids.audio_ssrc);
      out += "a=msid:lipsync " + kind + "\r\n";
      out += "a=ssrc:" + ssrc + " cname:" + ids.cname + "\r\n";
      out += "a=ssrc:" + ssrc + " msid:lipsync " + kind + "\r\n";
    }
    at = end;
  }
  return out;
}

}  // namespace

void ensure_gstreamer() {
  static const std::string missing = [] {
    gst_init(nullptr, nullptr);
    std::string m;
    const std::pair<const char*, const char*> needed[] = {
        {"webrtcbin", "gstreamer1.0-plugins-bad"},    {"nicesrc", "gstreamer1.0-nice"},
        {"dtlssrtpenc", "gstreamer1.0-plugins-bad"},  {"x264enc", "gstreamer1.0-plugins-ugly"},
        {"rtph264pay", "gstreamer1.0-plugins-good"},  {"rtpopuspay", "gstreamer1.0-plugins-good"},
        {"opusenc", "gstreamer1.0-plugins-base"},     {"appsrc", "gstreamer1.0-plugins-base"},
        {"videoconvert", "gstreamer1.0-plugins-base"}};
    for (const auto& [element, package] : needed) {
      GstElementFactory* f = gst_element_factory_find(element);
      if (f) {
        gst_object_unref(f);
      } else {
        m += std::string(m.empty() ? "" : ", ") + element + " (" + package + ")";
      }
    }
    return m;
  }();
  if (!missing.empty()) {
    throw Error::unavailable("webrtc: GStreamer elements missing: " + missing +
                             "; run scripts/bootstrap");
  }
}

struct WhepSender::Impl {
  WebRtcOptions options;
  int width = 0;
  int height = 0;
  std::function<void()> on_gone;
  GstElement* pipeline = nullptr;
  GstElement* webrtc = nullptr;
  GstAppSrc* vsrc = nullptr;
  GstAppSrc* asrc = nullptr;
  std::string answer;
  TrackIds ids = new_track_ids();

  core::Mutex mutex;
  core::CondVar changed;
  bool gathered LIPSYNC_GUARDED_BY(mutex) = false;
  bool closing LIPSYNC_GUARDED_BY(mutex) = false;
  std::optional<std::chrono::steady_clock::time_point> disconnected_since LIPSYNC_GUARDED_BY(mutex);
  std::optional<std::chrono::steady_clock::time_point> answered_at LIPSYNC_GUARDED_BY(mutex);
  std::atomic<bool> connected{false};
  std::atomic<bool> gone{false};
  std::atomic<std::int64_t> frames{0};
  std::thread watchdog;

  // push() state (one thread).
  std::int64_t first_index = -1;
  GstClockTime base = 0;

  ~Impl() { close(); }

  void mark_gone(const char* why) {
    if (gone.exchange(true)) return;
    spdlog::info("webrtc: viewer gone ({})", why);
    if (on_gone) on_gone();
  }

  static void on_gathering(GstElement* element, GParamSpec*, gpointer self) {
    GstWebRTCICEGatheringState state;
    g_object_get(element, "ice-gathering-state", &state, nullptr);
    if (state != GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE) return;
    auto* impl = static_cast<Impl*>(self);
    core::MutexLock lock(impl->mutex);
    impl->gathered = true;
    impl->changed.notify_all();
  }

  static void on_connection(GstElement* element, GParamSpec*, gpointer self) {
    GstWebRTCPeerConnectionState state;
    g_object_get(element, "connection-state", &state, nullptr);
    auto* impl = static_cast<Impl*>(self);
    switch (state) {
      case GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED: {
        core::MutexLock lock(impl->mutex);
        impl->disconnected_since.reset();
        impl->last_heard_ns = now_ns();
        impl->connected = true;
        break;
      }
      case GST_WEBRTC_PEER_CONNECTION_STATE_DISCONNECTED: {
        core::MutexLock lock(impl->mutex);
        if (!impl->disconnected_since) impl->disconnected_since = std::chrono::steady_clock::now();
        impl->changed.notify_all();
        break;
      }
      case GST_WEBRTC_PEER_CONNECTION_STATE_FAILED:
        impl->mark_gone("connection failed");
        break;
      case GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED:
        impl->mark_gone("connection closed");
        break;
      default:
        break;
    }
  }

  static void on_ice_connection(GstElement* element, GParamSpec*, gpointer self) {
    GstWebRTCICEConnectionState state;
    g_object_get(element, "ice-connection-state", &state, nullptr);
    auto* impl = static_cast<Impl*>(self);
    if (state == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) impl->mark_gone("ICE failed");
    if (state == GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED) {
      core::MutexLock lock(impl->mutex);
      if (!impl->disconnected_since) impl->disconnected_since = std::chrono::steady_clock::now();
    }
    if (state == GST_WEBRTC_ICE_CONNECTION_STATE_CONNECTED ||
        state == GST_WEBRTC_ICE_CONNECTION_STATE_COMPLETED) {
      core::MutexLock lock(impl->mutex);
      impl->disconnected_since.reset();
    }
  }

  // Every message of the pipeline, on the thread that posts it; none is queued. A handler that
  // answers GST_BUS_DROP owns the message and must unref it: each one holds its source element
  // (the pipeline, webrtcbin, x264enc, ...), so a message kept would keep the whole pipeline,
  // its threads and its sockets alive after close.
  static GstBusSyncReply on_bus(GstBus*, GstMessage* message, gpointer self) {
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
      GError* error = nullptr;
      gst_message_parse_error(message, &error, nullptr);
      spdlog::warn("webrtc: viewer pipeline error: {}", error ? error->message : "?");
      if (error) g_error_free(error);
      static_cast<Impl*>(self)->mark_gone("pipeline error");
    }
    gst_message_unref(message);
    return GST_BUS_DROP;
  }

  // When the viewer last sent us a packet (RTCP feedback comes several times a second while it
  // receives; STUN consent checks every few seconds), in steady-clock nanoseconds.
  std::atomic<std::int64_t> last_heard_ns{0};

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  static GstPadProbeReturn on_received(GstPad*, GstPadProbeInfo*, gpointer self) {
    static_cast<Impl*>(self)->last_heard_ns = now_ns();
    return GST_PAD_PROBE_OK;
  }

  // Listens on every nicesrc inside webrtcbin (one with max-bundle).
  void watch_incoming() {
    GstIterator* it = gst_bin_iterate_recurse(GST_BIN(webrtc));
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      auto* element = GST_ELEMENT(g_value_get_object(&item));
      GstElementFactory* factory = gst_element_get_factory(element);
      if (factory && std::strcmp(GST_OBJECT_NAME(factory), "nicesrc") == 0) {
        if (GstPad* pad = gst_element_get_static_pad(element, "src")) {
          gst_pad_add_probe(pad,
                            static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER |
                                                         GST_PAD_PROBE_TYPE_BUFFER_LIST),
                            &Impl::on_received, this, nullptr);
          gst_object_unref(pad);
        }
      }
      g_value_reset(&item);
    }
    g_value_unset(&item);
    gst_iterator_free(it);
  }

  // Tears down a viewer that stays disconnected, or from which nothing has come (a closed tab,
  // a dead machine: ICE may never notice), for ice_timeout_ms.
  void watch() {
    const auto limit = std::chrono::milliseconds(options.ice_timeout_ms);
    core::MutexLock lock(mutex);
    while (!closing) {
      changed.wait_for(lock, std::chrono::milliseconds(100));
      if (closing) break;
      const auto now = std::chrono::steady_clock::now();
      const bool lost = disconnected_since && now - *disconnected_since >= limit;
      const std::int64_t heard = last_heard_ns.load();
      const bool silent = connected.load() && heard > 0 &&
                          now_ns() - heard >= std::chrono::nanoseconds(limit).count();
      // An answer nobody connects with (the offerer went away, or never applied it).
      const bool never = !connected.load() && answered_at && now - *answered_at >= 2 * limit;
      if (lost || silent || never) {
        disconnected_since.reset();
        last_heard_ns = 0;
        answered_at.reset();
        lock.unlock();
        mark_gone(lost    ? "disconnected too long"
                  : never ? "never connected"
                          : "nothing heard from the viewer");
        lock.lock();
      }
    }
  }

  void add_local_addresses() {
    GstWebRTCICE* ice = nullptr;
    g_object_get(webrtc, "ice-agent", &ice, nullptr);
    if (!ice) return;
    if (options.udp_port_min > 0) {
      g_object_set(ice, "min-rtp-port", static_cast<guint>(options.udp_port_min), "max-rtp-port",
                   static_cast<guint>(options.udp_port_max), nullptr);
    }
    if (options.loopback) {
      // libnice skips loopback when it discovers addresses itself, and once one address is
      // added by hand it uses only those: add every local address, loopback included.
      NiceAgent* agent = nullptr;
      g_object_get(ice, "agent", &agent, nullptr);
      if (agent) {
        GList* ips = nice_interfaces_get_local_ips(TRUE);
        for (GList* i = ips; i; i = i->next) {
          const char* ip = static_cast<const char*>(i->data);
          if (std::strchr(ip, ':')) continue;  // IPv4 only: Chrome's loopback tests use it
          NiceAddress address;
          nice_address_init(&address);
          if (nice_address_set_from_string(&address, ip)) {
            nice_agent_add_local_address(agent, &address);
          }
        }
        g_list_free_full(ips, g_free);
        g_object_unref(agent);
      }
    }
    gst_object_unref(ice);
  }

  void negotiate(GstSDPMessage* offer_sdp) {
    // RTCP sender reports map RTP time to the capture (pts) clock, not to when each packet left:
    // the audio and video branches take different times to encode, and the browser lines the
    // tracks up by these reports.
    if (GstElement* rtpbin = gst_bin_get_by_name(GST_BIN(webrtc), "rtpbin")) {
      GstStructure* sdes = gst_structure_new("application/x-rtp-source-sdes", "cname",
                                             G_TYPE_STRING, ids.cname.c_str(), nullptr);
      g_object_set(rtpbin, "rtcp-sync-send-time", FALSE, "sdes", sdes, nullptr);
      gst_structure_free(sdes);
      // A browser lines the tracks up after two sender reports of each: send one a second
      // (RTP's default minimum is 5 s, so sync would take ~10 s to start).
      GObject* session = nullptr;
      g_signal_emit_by_name(rtpbin, "get-internal-session", 0u, &session);
      if (session) {
        g_object_set(session, "rtcp-min-interval", static_cast<guint64>(GST_SECOND), nullptr);
        g_object_unref(session);
      }
      gst_object_unref(rtpbin);
    } else {
      spdlog::warn(
          "webrtc: no rtpbin inside webrtcbin; lip sync may drift by the encoders' delays");
    }
    // Every transceiver only sends.
    GArray* transceivers = nullptr;
    g_signal_emit_by_name(webrtc, "get-transceivers", &transceivers);
    if (transceivers) {
      for (guint i = 0; i < transceivers->len; ++i) {
        auto* t = g_array_index(transceivers, GstWebRTCRTPTransceiver*, i);
        g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, nullptr);
      }
      g_array_unref(transceivers);
    }
    if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      gst_sdp_message_free(offer_sdp);
      throw Error::internal("webrtc: the viewer pipeline did not start");
    }
    GstWebRTCSessionDescription* offer =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, offer_sdp);
    // The description is freed whether or not the action succeeds.
    const auto free_description = [](GstWebRTCSessionDescription* d) {
      gst_webrtc_session_description_free(d);
    };
    {
      const std::unique_ptr<GstWebRTCSessionDescription, decltype(free_description)> owned(
          offer, free_description);
      run_action(webrtc, "set-remote-description", offer);
    }
    GstWebRTCSessionDescription* local = nullptr;
    run_action(webrtc, "create-answer", nullptr, &local);
    if (!local) throw Error::invalid_input("webrtc: no answer could be made for this offer");
    {
      const std::unique_ptr<GstWebRTCSessionDescription, decltype(free_description)> owned(
          local, free_description);
      run_action(webrtc, "set-local-description", local);
    }

    {
      core::MutexLock lock(mutex);
      if (!changed.wait_for(lock, std::chrono::milliseconds(options.ice_timeout_ms),
                            [this]() LIPSYNC_REQUIRES(mutex) { return gathered; })) {
        throw Error::unavailable("webrtc: ICE gathering did not complete within " +
                                 std::to_string(options.ice_timeout_ms) +
                                 " ms (webrtc.ice_timeout_ms)");
      }
    }
    GstWebRTCSessionDescription* done = nullptr;
    g_object_get(webrtc, "local-description", &done, nullptr);
    if (!done) throw Error::internal("webrtc: no local description after negotiation");
    watch_incoming();
    {
      core::MutexLock lock(mutex);
      answered_at = std::chrono::steady_clock::now();
    }
    gchar* text = gst_sdp_message_as_text(done->sdp);
    answer = with_track_ids(text, ids);
    g_free(text);
    gst_webrtc_session_description_free(done);
  }

  void push(std::int64_t index, std::shared_ptr<const core::SharedBytes> bgr,
            std::span<const std::int16_t> samples) {
    if (!connected.load() || gone.load()) return;
    if (first_index < 0) {
      first_index = index;
      base = gst_element_get_current_running_time(pipeline);
      if (base == GST_CLOCK_TIME_NONE) base = 0;
    }
    const GstClockTime pts = base + static_cast<GstClockTime>(index - first_index) * kFrameNs;
    const std::size_t bytes = static_cast<std::size_t>(width) * height * 3;
    if (vsrc && bgr && bgr->size() == bytes) {
      if (options.frame_marker) {
        std::vector<std::uint8_t> marked = bgr->to_vector();
        draw_marker(marked, width, height);
        bgr = std::make_shared<const core::SharedBytes>(std::move(marked));
      }
      auto* holder = new std::shared_ptr<const core::SharedBytes>(std::move(bgr));
      GstBuffer* buffer = gst_buffer_new_wrapped_full(
          GST_MEMORY_FLAG_READONLY, const_cast<std::uint8_t*>((*holder)->data()), bytes, 0, bytes,
          holder,
          [](gpointer h) { delete static_cast<std::shared_ptr<const core::SharedBytes>*>(h); });
      GST_BUFFER_PTS(buffer) = pts;
      GST_BUFFER_DURATION(buffer) = kFrameNs;
      gst_app_src_push_buffer(vsrc, buffer);  // takes the buffer
    }
    if (asrc) {
      GstBuffer* buffer = gst_buffer_new_memdup(samples.data(), samples.size_bytes());
      GST_BUFFER_PTS(buffer) = pts;
      GST_BUFFER_DURATION(buffer) = kFrameNs;
      gst_app_src_push_buffer(asrc, buffer);
    }
    ++frames;
  }

  void close() {
    {
      core::MutexLock lock(mutex);
      if (closing) return;
      closing = true;
      changed.notify_all();
    }
    if (watchdog.joinable()) watchdog.join();
    gone = true;
    if (pipeline) {
      // Stop first, with the bus handler still in place: it frees the messages the teardown
      // posts (without it they would queue on the bus, each holding its element).
      if (webrtc) g_signal_handlers_disconnect_by_data(webrtc, this);
      gst_element_set_state(pipeline, GST_STATE_NULL);
      GstBus* bus = gst_element_get_bus(pipeline);
      gst_bus_set_sync_handler(bus, nullptr, nullptr, nullptr);
      gst_bus_set_flushing(bus, TRUE);  // drops anything still queued
      gst_object_unref(bus);
      if (vsrc) gst_object_unref(vsrc);
      if (asrc) gst_object_unref(asrc);
      if (webrtc) gst_object_unref(webrtc);
      gst_object_unref(pipeline);
      vsrc = asrc = nullptr;
      webrtc = pipeline = nullptr;
      --g_live_pipelines;
    }
  }
};

std::shared_ptr<WhepSender> WhepSender::create(const std::string& offer,
                                               const WebRtcOptions& options, int width, int height,
                                               std::function<void()> on_gone,
                                               const std::vector<std::string>& turn_servers) {
  ensure_gstreamer();
  if (offer.find("v=0") == std::string::npos || offer.find("m=") == std::string::npos) {
    throw Error::invalid_input("the body is not an SDP offer (expected v=0 and m= lines)");
  }
  GstSDPMessage* sdp = nullptr;
  gst_sdp_message_new(&sdp);
  if (gst_sdp_message_parse_buffer(reinterpret_cast<const guint8*>(offer.data()),
                                   static_cast<guint>(offer.size()), sdp) != GST_SDP_OK) {
    gst_sdp_message_free(sdp);
    throw Error::invalid_input("the SDP offer does not parse");
  }
  std::vector<OfferMedia> media;
  try {
    media = parse_offer(sdp);
  } catch (...) {
    gst_sdp_message_free(sdp);
    throw;
  }
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->width = width;
  impl->height = height;
  impl->on_gone = std::move(on_gone);
  GError* error = nullptr;
  impl->pipeline = gst_parse_launch(
      pipeline_description(media, options, width, height, impl->ids).c_str(), &error);
  if (!impl->pipeline || error) {
    std::string message = error ? error->message : "unknown error";
    if (error) g_error_free(error);
    if (impl->pipeline) gst_object_unref(impl->pipeline);
    impl->pipeline = nullptr;
    gst_sdp_message_free(sdp);
    throw Error::internal("webrtc: cannot build the viewer pipeline: " + message);
  }
  ++g_live_pipelines;
  GstBin* bin = GST_BIN(impl->pipeline);
  impl->webrtc = gst_bin_get_by_name(bin, "webrtc");
  if (GstElement* v = gst_bin_get_by_name(bin, "vsrc")) impl->vsrc = GST_APP_SRC(v);
  if (GstElement* a = gst_bin_get_by_name(bin, "asrc")) impl->asrc = GST_APP_SRC(a);
  gst_bus_set_sync_handler(GST_ELEMENT_BUS(impl->pipeline), &Impl::on_bus, impl.get(), nullptr);
  g_signal_connect(impl->webrtc, "notify::ice-gathering-state", G_CALLBACK(&Impl::on_gathering),
                   impl.get());
  g_signal_connect(impl->webrtc, "notify::connection-state", G_CALLBACK(&Impl::on_connection),
                   impl.get());
  g_signal_connect(impl->webrtc, "notify::ice-connection-state",
                   G_CALLBACK(&Impl::on_ice_connection), impl.get());
  for (const std::string& uri : turn_servers) {
    gboolean added = FALSE;
    g_signal_emit_by_name(impl->webrtc, "add-turn-server", uri.c_str(), &added);
    if (!added) {
      gst_sdp_message_free(sdp);
      throw Error::unavailable("webrtc: the TURN server " + uri.substr(uri.rfind('@') + 1) +
                               " cannot be used (its host does not resolve?)");
    }
  }
  impl->add_local_addresses();
  impl->watchdog = std::thread([raw = impl.get()] { raw->watch(); });
  impl->negotiate(sdp);  // takes sdp; on error impl's destructor tears the pipeline down
  return std::shared_ptr<WhepSender>(new WhepSender(std::move(impl)));
}

WhepSender::WhepSender(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

WhepSender::~WhepSender() {
  close();
}

const std::string& WhepSender::answer() const {
  return impl_->answer;
}

void WhepSender::push(std::int64_t index, std::shared_ptr<const core::SharedBytes> bgr,
                      std::span<const std::int16_t> samples) {
  impl_->push(index, std::move(bgr), samples);
}

bool WhepSender::connected() const {
  return impl_->connected.load();
}
bool WhepSender::gone() const {
  return impl_->gone.load();
}
std::int64_t WhepSender::frames_sent() const {
  return impl_->frames.load();
}

void WhepSender::close() {
  impl_->close();
}

int WhepSender::live_pipelines() {
  return g_live_pipelines.load();
}

}  // namespace lipsync::webrtc
