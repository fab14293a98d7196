// ServerOptions: how `lipsync serve` listens and admits work (the `server:` config section and
// the top-level log_level and log_format keys).
// Thread contract: plain value; validate() before use.
#pragma once

#include <string>
#include <string_view>

#include "core/config_table.h"

namespace lipsync::server {

struct ServerOptions {
  std::string grpc_address = "127.0.0.1:50051";  // server.grpc (--grpc)
  std::string http_address = "127.0.0.1:8080";   // server.http (--http); "" = off
  int max_message_mb = 64;          // server.max_message_mb: largest gRPC message (1..2047)
  int max_request_frames = 250;     // server.max_request_frames: batch_size limit (1..10000)
  int max_inflight_requests = 64;   // server.max_inflight_requests: then RESOURCE_EXHAUSTED
  int max_streams = 64;             // server.max_streams: Stream calls at once
  int workers = 0;                  // server.workers: request threads (0 = the thread budget)
  int arena_threads = 0;            // server.arena_threads: CPU task arena (0 = the thread budget)
  int shutdown_grace_s = 5;         // server.shutdown_grace_s: in-flight work gets this long
  int http_timeout_s = 10;          // server.http_timeout_s: to send a request's header and body
  int http_max_body_kb = 1024;      // server.http_max_body_kb: largest HTTP request body
  int http_max_connections = 1024;  // server.http_max_connections: open HTTP connections
  int http_max_connections_per_client = 128;  // server.http_max_connections_per_client
  std::string api_token;                      // server.api_token: bearer token for /v1 ("" = none)
  bool allow_anonymous = false;    // server.allow_anonymous: no token on a network address is meant
  std::string cors_origins;        // server.cors_origins: "*" or a comma-separated list
  std::string instance_id;         // server.instance_id: [a-z0-9-]{1,63}; "" = the host name
  int drain_timeout_s = 600;       // server.drain_timeout_s: a drain lets sessions go on this long
  double load_threshold = 0.9;     // server.load_threshold: from this load, no new sessions
  std::string log_level = "info";  // log_level: trace, debug, info, warn, error, off
  std::string log_format = "text";  // log_format: text, or json (one object per line)

  // Throws Error::Code::kInvalidInput naming the key; also when the HTTP API would listen on a
  // network (not loopback) address without a token and allow_anonymous does not say so.
  void validate() const;
  int resolved_workers() const;
  // server.instance_id, or (empty) the host name made into one: lowercase, any other character
  // `-`, at most 63; "lipsync" when nothing is left.
  std::string resolved_instance_id() const;
  // server.http is empty or `off`: no HTTP server.
  bool http_off() const;
  // The `server.*` keys, and the top-level `log_level` and `log_format`.
  static const core::ConfigTable<ServerOptions>& config();
  static const core::ConfigTable<ServerOptions>& top_level_config();
};

// A listen address "host:port" or "[v6]:port", port 0..65535 (0: the system picks one).
struct ListenAddress {
  std::string host;
  int port = 0;
};
// Throws Error::Code::kInvalidInput naming `key` for anything else.
ListenAddress parse_listen_address(const std::string& text, const std::string& key);
// 1 to 63 of a-z, 0-9 and `-` (server.instance_id).
bool is_instance_id(std::string_view text);
// `localhost`, 127.0.0.0/8 or ::1: only this machine can connect.
bool is_loopback_host(const std::string& host);

// `a` equals `b`, in a time that depends only on their lengths (tokens).
bool same_secret(std::string_view a, std::string_view b);
// `authorization` (an HTTP header's or gRPC metadata's value) is "Bearer" in any case (auth
// schemes are case-insensitive, RFC 9110 11.1), one or more spaces, then `token`.
bool bearer_token_matches(std::string_view authorization, std::string_view token);

}  // namespace lipsync::server
