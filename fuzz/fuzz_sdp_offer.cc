// Fuzzes a WHEP viewer's SDP offer: GStreamer's SDP parser (gst_sdp_message_parse_buffer, the
// text and caps webrtcbin derives from it) and the project's offer checks in
// webrtc::WhepSender::create (an SDP offer with one H.264 packetization-mode=1 video line and at
// most one Opus audio line). create() is given a STUN server that makes the pipeline description
// unparseable, so an accepted offer ends in gst_parse_launch's error (Error::kInternal with a
// known message, expected here) before any pipeline, thread or socket exists.
#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz_util.h"
#include "webrtc/webrtc_options.h"
#include "webrtc/whep_sender.h"

namespace {

using namespace lipsync;

constexpr const char* kPipelineFailure = "webrtc: cannot build the viewer pipeline";

// GStreamer's own parsing of the offer, as webrtcbin would use it.
void parse_with_gstreamer(const std::uint8_t* data, std::size_t size) {
  GstSDPMessage* sdp = nullptr;
  gst_sdp_message_new(&sdp);
  if (gst_sdp_message_parse_buffer(data, static_cast<guint>(size), sdp) == GST_SDP_OK) {
    g_free(gst_sdp_message_as_text(sdp));
    for (guint m = 0; m < gst_sdp_message_medias_len(sdp); ++m) {
      const GstSDPMedia* media = gst_sdp_message_get_media(sdp, m);
      for (guint f = 0; f < gst_sdp_media_formats_len(media); ++f) {
        const int pt = std::atoi(gst_sdp_media_get_format(media, f));
        if (GstCaps* caps = gst_sdp_media_get_caps_from_media(media, pt)) gst_caps_unref(caps);
      }
    }
  }
  gst_sdp_message_free(sdp);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    webrtc::ensure_gstreamer();
  } catch (const Error& e) {
    std::fprintf(stderr, "sdp_offer: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;  // gst_sdp_message_parse_buffer asserts size != 0
  parse_with_gstreamer(data, size);

  webrtc::WebRtcOptions options;
  // "stun-server=stun://x lipsync_fuzz_no_such_element appsrc ...": no such element.
  options.stun_server = "x lipsync_fuzz_no_such_element";
  const std::string offer(reinterpret_cast<const char*>(data), size);
  try {
    webrtc::WhepSender::create(offer, options, 320, 240, [] {});
    fuzz::finding("WhepSender::create returned a viewer despite the broken pipeline");
  } catch (const Error& e) {
    // kInvalidInput: the documented rejection; kInternal with this message: the offer passed
    // every check of the project's code.
    if (e.code() == Error::Code::kInternal && e.message().rfind(kPipelineFailure, 0) == 0) return 0;
    if (e.code() != Error::Code::kInvalidInput) fuzz::finding("unexpected error: " + e.message());
  }
  return 0;
}
