// HttpServer: a small HTTP/1.1 server on Boost.Beast for the operational endpoints (/healthz,
// /readyz, /metrics). One thread accepts and answers one request per connection; the handler
// must be quick. (WebSocket endpoints would live here too.)
// Thread contract: start()/stop() from one thread; the handler runs on the server thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace lipsync::server {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  using Handler = std::function<HttpReply(const std::string& method, const std::string& target)>;
  // address "host:port" (port 0 picks a free one). Throws Error::Code::kInvalidInput when the
  // address is malformed or cannot be bound.
  HttpServer(const std::string& address, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::server
