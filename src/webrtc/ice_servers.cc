#include "webrtc/ice_servers.h"

#include <glib.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/text.h"

namespace lipsync::webrtc {
namespace {

[[noreturn]] void bad_url(std::string_view text, const std::string& why) {
  throw Error::invalid_input("webrtc.turn_servers: '" + std::string(text.substr(0, 200)) + "' " +
                             why +
                             "; expected turn:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]");
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

std::string percent_encode(std::string_view s) {
  const std::unique_ptr<char, decltype(&g_free)> out(
      g_uri_escape_string(std::string(s).c_str(), nullptr, FALSE), &g_free);
  return out.get();
}

}  // namespace

std::string TurnUrl::client_url() const {
  std::string url = (tls ? "turns:" : "turn:") + host + ":" + std::to_string(port);
  if (!transport.empty()) url += "?transport=" + transport;
  return url;
}

TurnUrl parse_turn_url(std::string_view text) {
  TurnUrl t;
  std::string_view rest = text;
  if (rest.starts_with("turns:")) {
    t.tls = true;
    rest.remove_prefix(6);
  } else if (rest.starts_with("turn:")) {
    rest.remove_prefix(5);
  } else {
    bad_url(text, "does not start with turn: or turns:");
  }
  if (rest.starts_with("//")) rest.remove_prefix(2);
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    const std::string_view query = rest.substr(q + 1);
    if (query == "transport=udp" || query == "transport=tcp") {
      t.transport = std::string(query.substr(10));
    } else {
      bad_url(text, "has the query '" + std::string(query.substr(0, 50)) +
                        "' (only transport=udp or transport=tcp is known)");
    }
    rest = rest.substr(0, q);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == userinfo.size()) {
      bad_url(text, "has credentials that are not USER:PASSWORD");
    }
    t.username = std::string(userinfo.substr(0, colon));
    t.password = std::string(userinfo.substr(colon + 1));
    rest = rest.substr(at + 1);
  }
  std::string_view port;
  if (rest.starts_with("[")) {  // [IPv6]
    const auto close = rest.find(']');
    if (close == std::string_view::npos) bad_url(text, "has an IPv6 address without its ]");
    for (const char c : rest.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        bad_url(text, "has an IPv6 address with the character '" + std::string(1, c) + "'");
      }
    }
    t.host = std::string(rest.substr(0, close + 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty() && !rest.starts_with(":")) bad_url(text, "has text after the address");
    if (!rest.empty()) port = rest.substr(1);
  } else {
    const auto colon = rest.find(':');
    t.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
    for (const char c : t.host) {
      if (!host_char(c)) {
        bad_url(text, "has a host with the character '" + std::string(1, c) + "'");
      }
    }
  }
  if (t.host.empty() || t.host == "[]") bad_url(text, "has no host");
  if (port.data() != nullptr) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), t.port);
    if (ec != std::errc{} || end != port.data() + port.size() || t.port < 1 || t.port > 65535) {
      bad_url(text, "has the port '" + std::string(port.substr(0, 20)) + "' (expected 1..65535)");
    }
  } else {
    t.port = t.tls ? 5349 : 3478;
  }
  return t;
}

std::int64_t unix_time_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string turn_credential(std::string_view secret, std::string_view username) {
  GHmac* hmac =
      g_hmac_new(G_CHECKSUM_SHA1, reinterpret_cast<const guchar*>(secret.data()), secret.size());
  g_hmac_update(hmac, reinterpret_cast<const guchar*>(username.data()),
                static_cast<gssize>(username.size()));
  guint8 digest[20];
  gsize length = sizeof digest;
  g_hmac_get_digest(hmac, digest, &length);
  g_hmac_unref(hmac);
  const std::unique_ptr<gchar, decltype(&g_free)> text(g_base64_encode(digest, length), &g_free);
  return text.get();
}

IceServers::IceServers(const WebRtcOptions& options)
    : stun_(options.stun_server), ttl_s_(options.turn_credential_ttl_s) {
  bool needs_secret = false;
  for (const std::string& url : options.turn_servers) {
    turn_.push_back(parse_turn_url(url));
    needs_secret |= turn_.back().username.empty();
  }
  if (needs_secret && options.turn_secret_file.empty()) {
    throw Error::invalid_input(
        "webrtc.turn_servers: a URL without USER:PASSWORD needs webrtc.turn_secret_file (the "
        "TURN server's shared secret) to make credentials");
  }
  if (!options.turn_secret_file.empty()) {
    const std::filesystem::path path = options.turn_secret_file;
    std::ifstream in(path, std::ios::binary);
    // A secret is a line of text: reading at most 4 KB, a wrong path such as /dev/zero cannot
    // hold the start up.
    char buffer[4097];
    in.read(buffer, sizeof buffer);
    if (!in && !in.eof()) {
      throw Error::invalid_input("webrtc.turn_secret_file: cannot read " +
                                 core::quote(path.string()));
    }
    if (in.gcount() == static_cast<std::streamsize>(sizeof buffer)) {
      throw Error::invalid_input("webrtc.turn_secret_file: " + core::quote(path.string()) +
                                 " is over 4 KB; expected a secret on one line");
    }
    secret_.assign(buffer, static_cast<std::size_t>(in.gcount()));
    while (!secret_.empty() && (secret_.back() == '\n' || secret_.back() == '\r' ||
                                secret_.back() == ' ' || secret_.back() == '\t')) {
      secret_.pop_back();
    }
    if (secret_.empty()) {
      throw Error::invalid_input("webrtc.turn_secret_file: " + core::quote(path.string()) +
                                 " is empty");
    }
  }
}

std::pair<std::string, std::string> IceServers::credentials(const TurnUrl& t, std::string_view name,
                                                            std::int64_t now_unix) const {
  if (!t.username.empty()) return {t.username, t.password};
  std::string username = std::to_string(now_unix + ttl_s_) + ":" + std::string(name);
  std::string credential = turn_credential(secret_, username);
  return {std::move(username), std::move(credential)};
}

std::vector<IceServer> IceServers::for_client(std::string_view name, std::int64_t now_unix) const {
  std::vector<IceServer> out;
  if (!stun_.empty()) out.push_back({{"stun:" + stun_}, {}, {}});
  for (const TurnUrl& t : turn_) {
    auto [username, credential] = credentials(t, name, now_unix);
    out.push_back({{t.client_url()}, std::move(username), std::move(credential)});
  }
  return out;
}

std::vector<std::string> IceServers::for_agent(std::string_view name, std::int64_t now_unix) const {
  std::vector<std::string> out;
  for (const TurnUrl& t : turn_) {
    const auto [username, credential] = credentials(t, name, now_unix);
    std::string uri = (t.tls ? "turns://" : "turn://") + percent_encode(username) + ":" +
                      percent_encode(credential) + "@" + t.host + ":" + std::to_string(t.port);
    if (!t.transport.empty()) uri += "?transport=" + t.transport;
    out.push_back(std::move(uri));
  }
  return out;
}

}  // namespace lipsync::webrtc
