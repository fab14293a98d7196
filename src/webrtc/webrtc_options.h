// WebRtcOptions: the `webrtc.*` config keys: how viewers' media is encoded and how their peer
// connections are set up.
// Thread contract: plain value; validate() before use.
#pragma once

#include <string>
#include <vector>

#include "core/config_table.h"

namespace lipsync::webrtc {

struct WebRtcOptions {
  int video_bitrate_kbps = 2500;  // webrtc.video_bitrate_kbps: x264's target per viewer
  std::string stun_server;        // webrtc.stun_server: "host:port"; "" = none
  // webrtc.turn_servers: "turn:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]" (or turns:);
  // one without USER:PASSWORD gets time-limited credentials made with turn_secret_file.
  std::vector<std::string> turn_servers;
  std::string turn_secret_file;       // webrtc.turn_secret_file: coturn's static-auth-secret
  int turn_credential_ttl_s = 86400;  // webrtc.turn_credential_ttl_s
  int udp_port_min = 0;               // webrtc.udp_port_min: ICE's local UDP ports (0 = any)
  int udp_port_max = 0;               // webrtc.udp_port_max
  bool loopback = true;               // webrtc.loopback: offer 127.0.0.1 beside the other addresses
  int ice_timeout_ms = 5000;          // webrtc.ice_timeout_ms: gathering; a lost viewer's teardown
  int max_viewers = 16;               // webrtc.max_viewers: viewers of all sessions at once
  bool frame_marker = false;          // webrtc.frame_marker: draw the send time into each frame

  // Throws Error::Code::kInvalidInput naming the key.
  void validate() const;
  static const core::ConfigTable<WebRtcOptions>& config();
};

}  // namespace lipsync::webrtc
