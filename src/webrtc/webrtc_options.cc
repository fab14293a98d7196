#include "webrtc/webrtc_options.h"

#include "core/error.h"
#include "webrtc/ice_servers.h"

namespace lipsync::webrtc {

const core::ConfigTable<WebRtcOptions>& WebRtcOptions::config() {
  static const auto table =
      core::ConfigTable<WebRtcOptions>("webrtc")
          .integer("video_bitrate_kbps", &WebRtcOptions::video_bitrate_kbps, 100, 50000,
                   "H.264 target bitrate of each viewer's video")
          .text("stun_server", &WebRtcOptions::stun_server, "host:port or empty",
                "STUN server for server-reflexive candidates; empty = host candidates only")
          .texts("turn_servers", &WebRtcOptions::turn_servers, "TURN URLs",
                 "TURN servers that relay media for viewers no direct path reaches, as "
                 "turn:[USER:PASSWORD@]HOST[:PORT] or turns:..., with ?transport=udp or tcp "
                 "if wanted; the server's ICE agent uses them, clients get them as ice_servers")
          .text("turn_secret_file", &WebRtcOptions::turn_secret_file, "path or empty",
                "file holding the TURN servers' shared secret (coturn's static-auth-secret): "
                "URLs without USER:PASSWORD get time-limited credentials made with it")
          .integer("turn_credential_ttl_s", &WebRtcOptions::turn_credential_ttl_s, 60, 604800,
                   "lifetime of time-limited TURN credentials, from the request that gets them")
          .integer("udp_port_min", &WebRtcOptions::udp_port_min, 0, 65535,
                   "lowest local UDP port for ICE (0 = any)")
          .integer("udp_port_max", &WebRtcOptions::udp_port_max, 0, 65535,
                   "highest local UDP port for ICE (0 = any)")
          .boolean("loopback", &WebRtcOptions::loopback,
                   "also offer 127.0.0.1 as a candidate (a browser on the same machine)")
          .integer("ice_timeout_ms", &WebRtcOptions::ice_timeout_ms, 500, 60000,
                   "ICE gathering limit for an answer; a viewer disconnected or silent this "
                   "long, or not connected within twice this, is torn down")
          .integer("max_viewers", &WebRtcOptions::max_viewers, 1, 1000,
                   "WebRTC viewers of all sessions at once; more get 429")
          .boolean(
              "frame_marker", &WebRtcOptions::frame_marker,
              "draw each frame's send time as a bar code in its top rows and start RTP timestamps "
              "at 0 (latency and sync measurements)");
  return table;
}

void WebRtcOptions::validate() const {
  config().validate(*this);
  if ((udp_port_min == 0) != (udp_port_max == 0) || udp_port_min > udp_port_max) {
    throw Error::invalid_input("webrtc.udp_port_min/udp_port_max: " + std::to_string(udp_port_min) +
                               ".." + std::to_string(udp_port_max) +
                               " is not a port range; set both (min <= max) or neither");
  }
  if (!stun_server.empty() && stun_server.find(':') == std::string::npos) {
    throw Error::invalid_input("webrtc.stun_server: '" + stun_server + "' is not host:port");
  }
  for (const std::string& url : turn_servers) {
    if (parse_turn_url(url).username.empty() && turn_secret_file.empty()) {
      throw Error::invalid_input("webrtc.turn_servers: '" + url.substr(0, 200) +
                                 "' has no USER:PASSWORD, and no webrtc.turn_secret_file is set "
                                 "to make time-limited credentials");
    }
  }
}

}  // namespace lipsync::webrtc
