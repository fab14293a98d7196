// A browser's WHEP offer for tests: H.264 and Opus, receive only, without candidates. A server
// answers it and starts the viewer's pipeline, and no packet is sent anywhere.
#pragma once

#include <string>

namespace lipsync::testing {

inline std::string whep_offer() {
  const std::string ice =
      "c=IN IP4 0.0.0.0\r\na=ice-ufrag:lsTe\r\na=ice-pwd:Xb4rhSGtEIK1sBwQ9L3cYdJ2\r\n"
      "a=fingerprint:sha-256 "
      "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:"
      "12:DF\r\na=setup:actpass\r\na=recvonly\r\na=rtcp-mux\r\n";
  return "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
         "a=group:BUNDLE 0 1\r\n"
         "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
         ice +
         "a=mid:0\r\na=rtpmap:96 H264/90000\r\n"
         "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
         ice + "a=mid:1\r\na=rtpmap:111 opus/48000/2\r\n";
}

}  // namespace lipsync::testing
