#include "server/server_options.h"

#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cctype>

#include "core/error.h"
#include "core/text.h"
#include "core/thread_budget.h"

namespace lipsync::server {
namespace {

void check_address(const std::string& value, const std::string& key, bool may_be_empty) {
  if ((value.empty() || value == "off") && may_be_empty) return;
  (void)parse_listen_address(value, key);
}

}  // namespace

bool is_instance_id(std::string_view text) {
  return !text.empty() && text.size() <= 63 &&
         text.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
}

std::string ServerOptions::resolved_instance_id() const {
  if (!instance_id.empty()) return instance_id;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "lipsync";
  std::string id;
  for (const char* c = host; *c != '\0' && id.size() < 63; ++c) {
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    id += is_instance_id(std::string_view(&l, 1)) ? l : '-';
  }
  return id.empty() ? "lipsync" : id;
}

ListenAddress parse_listen_address(const std::string& text, const std::string& key) {
  const auto bad = [&](const std::string& why) {
    return Error::invalid_input(key + ": " + core::quote(text) + " " + why +
                                "; expected host:port with a port of 0 to 65535");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw bad("is not host:port");
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) throw bad("has a malformed [IPv6] host");
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos) {
    throw bad("has no numeric port");
  }
  const int port = std::stoi(port_text);
  if (port > 65535) throw bad("has a port above 65535");
  return {host, port};
}

const core::ConfigTable<ServerOptions>& ServerOptions::config() {
  static const auto table =
      core::ConfigTable<ServerOptions>("server")
          .text("grpc", &ServerOptions::grpc_address, "host:port",
                "gRPC listen address (--grpc; port 0 picks one); a port in use fails start-up",
                [](const std::string& v, const std::string& k) { check_address(v, k, false); })
          .text("http", &ServerOptions::http_address, "host:port or empty",
                "HTTP listen address (--http; empty or `off` disables)",
                [](const std::string& v, const std::string& k) { check_address(v, k, true); })
          .integer("max_message_mb", &ServerOptions::max_message_mb, 1, 2047,
                   "largest gRPC message either way (bigger ones get RESOURCE_EXHAUSTED)")
          .integer("max_request_frames", &ServerOptions::max_request_frames, 1, 10000,
                   "largest `batch_size` of `InferBatchComposite`")
          .integer("max_inflight_requests", &ServerOptions::max_inflight_requests, 1, 100000,
                   "`InferBatchComposite` calls at once; more get RESOURCE_EXHAUSTED")
          .integer("max_streams", &ServerOptions::max_streams, 1, 100000,
                   "`Stream` calls at once; more get RESOURCE_EXHAUSTED")
          .integer("workers", &ServerOptions::workers, 0, 1024,
                   "request threads (audio, compositing, encoding); 0 = the thread budget "
                   "(`cpu.threads`)")
          .integer("arena_threads", &ServerOptions::arena_threads, 0, 1024,
                   "threads of the CPU task arena (ROI packing, mel); 0 = the thread budget "
                   "(`cpu.threads`). ONNX Runtime's own threads are `infer.intra_op_threads`")
          .integer("shutdown_grace_s", &ServerOptions::shutdown_grace_s, 0, 3600,
                   "how long calls may go on after SIGINT, or unary and Stream calls after "
                   "SIGTERM (a drain), before they are ended (UNAVAILABLE)")
          .integer("http_timeout_s", &ServerOptions::http_timeout_s, 1, 3600,
                   "time an HTTP client has to send a request (header and body), and to idle "
                   "between keep-alive requests")
          .integer("http_max_body_kb", &ServerOptions::http_max_body_kb, 1, 1048576,
                   "largest HTTP request body (bigger: 413)")
          .integer("http_max_connections", &ServerOptions::http_max_connections, 1, 100000,
                   "open HTTP connections at once (more are closed at once, but for a few that "
                   "may ask /healthz or /readyz)")
          .integer("http_max_connections_per_client",
                   &ServerOptions::http_max_connections_per_client, 1, 100000,
                   "open HTTP connections at once from one remote address, so that one client "
                   "cannot take them all; behind a gateway (every request from its address) set "
                   "it to http_max_connections")
          .text("api_token", &ServerOptions::api_token, "text or empty",
                "when set, every /v1 HTTP request needs `Authorization: Bearer <token>`")
          .boolean("allow_anonymous", &ServerOptions::allow_anonymous,
                   "the HTTP API may listen on a network (not loopback) address without "
                   "`api_token`, so that anyone who can reach it can use it; without this, "
                   "that is a start-up error")
          .text("cors_origins", &ServerOptions::cors_origins, "`*`, origins or empty",
                "origins (comma-separated, or `*`) whose pages may call the HTTP API; empty = "
                "the server's own page only")
          .text("instance_id", &ServerOptions::instance_id, "[a-z0-9-]{1,63} or empty",
                "this instance's name: every live session's id is `<instance_id>.<random>`, so "
                "that a gateway sends a session's requests to the instance that holds it; empty "
                "= the host name (lowercased, other characters as `-`)",
                [](const std::string& v, const std::string& k) {
                  if (v.empty() || is_instance_id(v)) return;
                  throw Error::invalid_input(k + ": " + core::quote(v) +
                                             " is not an instance id; expected 1 to 63 of "
                                             "a-z, 0-9 and -");
                })
          .integer("drain_timeout_s", &ServerOptions::drain_timeout_s, 0, 86400,
                   "a drain (SIGTERM, POST /v1/admin/drain) refuses new sessions and lets the "
                   "live ones go on for at most this long; then they end (session_ended, "
                   "shutdown) and the server stops")
          .number("load_threshold", &ServerOptions::load_threshold, 0.01, 1,
                  "from this load (GET /v1/load: sessions, generator busy time and late live "
                  "frames of the last 10 s, each as a fraction) the instance is not ready for "
                  "new sessions (/readyz 503 says why); it serves the ones it has");
  return table;
}

const core::ConfigTable<ServerOptions>& ServerOptions::top_level_config() {
  static const auto table =
      core::ConfigTable<ServerOptions>("")
          .choice("log_level", &ServerOptions::log_level,
                  std::vector<std::pair<std::string, std::string>>{{"trace", "trace"},
                                                                   {"debug", "debug"},
                                                                   {"info", "info"},
                                                                   {"warn", "warn"},
                                                                   {"error", "error"},
                                                                   {"off", "off"}},
                  "server log level")
          .choice(
              "log_format", &ServerOptions::log_format,
              std::vector<std::pair<std::string, std::string>>{{"text", "text"}, {"json", "json"}},
              "server log lines: text for people, or json: one object "
              "per line with time (UTC), level and msg, for a log "
              "collector");
  return table;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;  // the HTTP server listens on 127.0.0.1 for it
  boost::system::error_code ec;          // read as the listener reads it (http_server.cc)
  const auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

bool ServerOptions::http_off() const {
  return http_address.empty() || http_address == "off";
}

void ServerOptions::validate() const {
  config().validate(*this);
  top_level_config().validate(*this);
  if (http_off() || !api_token.empty() || allow_anonymous) return;
  if (!is_loopback_host(parse_listen_address(http_address, "server.http").host)) {
    throw Error::invalid_input(
        "server.http: " + core::quote(http_address) +
        " is reachable from other machines and server.api_token is empty, so anyone who can "
        "reach it could create sessions and make the avatar speak; set server.api_token, or "
        "server.allow_anonymous: true if that is what you want");
  }
}

int ServerOptions::resolved_workers() const {
  return workers > 0 ? workers : core::thread_budget();
}

bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

bool bearer_token_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size() ||
      core::to_lower_ascii(std::string(authorization.substr(0, kScheme.size()))) != kScheme) {
    return false;
  }
  return same_secret(core::trim(authorization.substr(kScheme.size())), token);
}

}  // namespace lipsync::server
