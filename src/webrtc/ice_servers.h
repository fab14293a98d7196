// IceServers: the STUN and TURN servers of viewers' peer connections (the webrtc.* keys), as each
// end needs them: the client gets RTCIceServer objects (POST /v1/sessions' `ice_servers`), the
// server's own ICE agent (webrtcbin) gets TURN URIs with the credentials inside.
//
// A TURN URL written with USER:PASSWORD uses them. One without gets time-limited credentials made
// with the shared secret of webrtc.turn_secret_file, the scheme of coturn's `use-auth-secret`
// (the "TURN REST API"): username "<expiry unix time>:<name>", credential
// base64(HMAC-SHA1(secret, username)). The name is the session id, so the TURN server's log says
// whose relay it is; the expiry is turn_credential_ttl_s after the request that got them.
// Thread contract: immutable after construction; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "webrtc/webrtc_options.h"

namespace lipsync::webrtc {

// One entry of RTCConfiguration.iceServers.
struct IceServer {
  std::vector<std::string> urls;
  std::string username;    // empty for STUN
  std::string credential;  // empty for STUN
};

// A webrtc.turn_servers item, taken apart.
struct TurnUrl {
  bool tls = false;       // turns:
  std::string host;       // a name, an IPv4 address, or [an IPv6 address]
  int port = 0;           // 0: the scheme's default (3478, 5349)
  std::string transport;  // "", "udp" or "tcp"
  std::string username;   // empty: time-limited credentials
  std::string password;

  // The URL a browser takes (no credentials): "turn:HOST:PORT?transport=udp".
  std::string client_url() const;
};

// Parses "turn:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]" (or turns:; "turn://" is taken
// too). Throws Error::Code::kInvalidInput saying what is wrong with `text`.
TurnUrl parse_turn_url(std::string_view text);

// Seconds since 1970 (what a time-limited username's expiry counts in).
std::int64_t unix_time_now();

// base64(HMAC-SHA1(secret, username)): coturn's credential for a time-limited username.
std::string turn_credential(std::string_view secret, std::string_view username);

class IceServers {
 public:
  IceServers() = default;
  // Parses the URLs and reads the secret file. Throws Error::Code::kInvalidInput naming the key
  // (a bad URL, a URL without credentials and no secret, an unreadable or empty secret file).
  explicit IceServers(const WebRtcOptions& options);

  bool empty() const { return stun_.empty() && turn_.empty(); }

  // For a client of `name` (a session id), at `now_unix`: the STUN server, then each TURN server.
  std::vector<IceServer> for_client(std::string_view name,
                                    std::int64_t now_unix = unix_time_now()) const;

  // webrtcbin's "add-turn-server" URIs for the server's side of a viewer of `name`:
  // "turn(s)://USER:PASSWORD@HOST:PORT[?transport=...]", user and password percent-encoded.
  std::vector<std::string> for_agent(std::string_view name,
                                     std::int64_t now_unix = unix_time_now()) const;

 private:
  // The username and credential `t` uses for `name` at `now_unix`.
  std::pair<std::string, std::string> credentials(const TurnUrl& t, std::string_view name,
                                                  std::int64_t now_unix) const;

  std::string stun_;  // "host:port" or empty
  std::vector<TurnUrl> turn_;
  std::string secret_;
  int ttl_s_ = 0;
};

}  // namespace lipsync::webrtc
