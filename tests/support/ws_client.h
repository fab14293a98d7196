// A WebSocket client for the server tests (Boost.Beast, loopback only): connect with extra
// headers, send text and binary messages, read what the server sends within a timeout.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lipsync::testing {

class WsClient {
 public:
  // Connects to 127.0.0.1:port and asks to upgrade `target`. ok() says whether the server
  // accepted; status() is the handshake's HTTP status (101 when it did).
  WsClient(int port, const std::string& target,
           const std::vector<std::pair<std::string, std::string>>& headers = {});
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool ok() const;
  int status() const;
  std::string refusal_body() const;

  // Sends one message; false when the connection has failed.
  bool send_text(const std::string& text);
  bool send_binary(const std::string& bytes);
  // The next text message, or nothing when the connection closed or `timeout` passed (the
  // connection is then unusable).
  std::optional<std::string> read(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The close code the server sent (0: none yet).
  int close_code() const;

 private:
  bool send(bool text, const std::string& data);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lipsync::testing
