// HttpServer: a small asynchronous HTTP/1.1 server on Boost.Beast for the operational endpoints
// (/healthz, /readyz, /metrics) and, later, the session API. One I/O thread serves any number of
// connections at once; each request's header and body must arrive within the timeout (a client
// sending a byte a second is closed, and never delays anyone else), header and body sizes are
// limited (431, 413), malformed requests get 400, keep-alive connections idle at most the
// timeout. stop() closes every connection at once: it never waits for an idle client.
// Thread contract: construction and stop() from one thread; the handler runs on the I/O thread
// and must be quick.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lipsync::server {

struct HttpRequest {
  std::string method;  // "GET", ...
  std::string path;    // the target without its query: "/metrics"
  std::string query;   // after '?', may be empty
  std::string body;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Allow, ...)
};

struct HttpLimits {
  int timeout_s = 10;                    // to send a request; idle between requests
  std::size_t max_header_bytes = 16384;  // bigger: 431
  std::size_t max_body_bytes = 1 << 20;  // bigger: 413
  int max_connections = 1024;            // more are closed when accepted
};

class HttpServer {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;
  // address "host:port" (port 0 picks a free one). Throws Error::Code::kInvalidInput when the
  // address is malformed or cannot be bound (in use).
  HttpServer(const std::string& address, HttpLimits limits, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  // Connections open now (for tests and metrics).
  int open_connections() const;
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lipsync::server
