// WhepSender: one WebRTC viewer of a live session. It answers the viewer's SDP offer (WHEP: the
// viewer offers, we answer with every candidate already gathered, no trickle) and sends the
// session's frames as H.264 and their samples as Opus through GStreamer's webrtcbin:
//
//   appsrc (BGR, 25 fps) -> videoconvert -> I420 -> x264enc (zerolatency, no B-frames, 2 s GOP)
//     -> rtph264pay -> webrtcbin
//   appsrc (S16LE 16 kHz) -> audioresample -> 48 kHz -> opusenc (20 ms) -> rtpopuspay -> webrtcbin
//
// Both tracks are stamped from the session's one clock: frame k of the session has pts
// base + 40 ms x (k - k0) on video and on audio (its 640 samples), so the RTCP sender reports map
// both to one wall clock and the browser plays them in sync for as long as it watches. Nothing is
// pushed before the peer connection is CONNECTED (webrtcbin would buffer a burst); after that
// each tick's frame is pushed as it is emitted (webrtcbin does not pace), with at most two frames
// queued in front of the encoder (older ones are dropped).
//
// A viewer ends when its owner closes it (DELETE), or on its own when the connection fails,
// closes, stays disconnected or sends nothing for ice_timeout_ms, or is not connected within
// twice that after the answer: on_gone is called once, from a GStreamer or
// timer thread, and the owner must then close() it from another thread.
// Thread contract: create() and close() block (negotiation, pipeline teardown): call them from a
// worker, never from a GStreamer callback. push() from one thread at a time (the session's
// ticker); it never blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/shared_bytes.h"
#include "webrtc/webrtc_options.h"

namespace lipsync::webrtc {

// Registers GStreamer's plugins once and checks that the elements a viewer needs are there;
// throws Error::Code::kUnavailable naming the missing ones (and the Debian package).
void ensure_gstreamer();

class WhepSender {
 public:
  // Answers `offer` for a session of `width` x `height` frames. Throws Error::Code::kInvalidInput
  // for an offer that is not SDP, or has no H.264 (packetization-mode 1) video, and kUnavailable
  // when ICE gathering does not complete within ice_timeout_ms. `turn_servers`: the URIs the ICE
  // agent relays through (IceServers::for_agent); gathering then waits for their allocations.
  static std::shared_ptr<WhepSender> create(const std::string& offer, const WebRtcOptions& options,
                                            int width, int height, std::function<void()> on_gone,
                                            const std::vector<std::string>& turn_servers = {});
  ~WhepSender();
  WhepSender(const WhepSender&) = delete;
  WhepSender& operator=(const WhepSender&) = delete;

  // The SDP answer (with its candidates).
  const std::string& answer() const;

  // The frame with session index `index`: `bgr` holds width x height x 3 bytes (kept, not
  // copied, until the encoder is done with it), `samples` its 640 samples at 16 kHz. Dropped
  // until the connection is up, and after the viewer is gone.
  void push(std::int64_t index, std::shared_ptr<const core::SharedBytes> bgr,
            std::span<const std::int16_t> samples);

  bool connected() const;
  bool gone() const;
  // Frames pushed into the pipeline so far.
  std::int64_t frames_sent() const;

  // Stops the pipeline and frees it. Idempotent; blocks briefly.
  void close();

  // Viewer pipelines alive now in this process (a gauge; returns to 0 when all are closed).
  static int live_pipelines();

 private:
  struct Impl;
  explicit WhepSender(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace lipsync::webrtc
