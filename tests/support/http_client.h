// A minimal HTTP/1.1 client over a plain loopback socket, for the server tests: it sends exactly
// the bytes it is given (so tests can send malformed or slow requests) and reads the reply.
#pragma once

#include <chrono>
#include <string>

namespace lipsync::testing {

struct HttpResult {
  int status = 0;  // 0 when no reply came (the server closed or the timeout passed)
  std::string headers;
  std::string body;
};

// GET target with Connection: close.
HttpResult http_get(int port, const std::string& target, const std::string& source = "");
// Sends `raw` on a new connection to 127.0.0.1:port and reads until the server closes it or
// `timeout` passes.
HttpResult http_exchange(int port, const std::string& raw,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10),
                         const std::string& source = "");

// An open connection to 127.0.0.1:port (closed when destroyed), for slow and idle clients.
// `source`: the local address to connect from (another loopback address such as 127.0.0.2 is
// another client to the server).
class RawConnection {
 public:
  explicit RawConnection(int port, const std::string& source = "");
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool send(const std::string& bytes);
  // Reads what arrives within `timeout`; stops at EOF.
  std::string receive(std::chrono::milliseconds timeout);
  // True when the server has sent something (or closed) within `timeout`.
  bool readable(std::chrono::milliseconds timeout);
  // True once the server has closed its side.
  bool closed_by_peer(std::chrono::milliseconds timeout);
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace lipsync::testing
