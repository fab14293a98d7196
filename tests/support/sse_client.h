// A Server-Sent Events client for the server tests (loopback only): sends a GET, reads the
// stream on its own thread and parses its events (id, event, data), keep-alive comments counted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/http_client.h"

namespace lipsync::testing {

struct SseEvent {
  std::string id;
  std::string event;
  std::string data;
};

class SseClient {
 public:
  // GET `target` with `headers` ("Name: value" lines, each ending in \r\n).
  SseClient(int port, const std::string& target, const std::string& headers = "");
  ~SseClient();
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  // The reply's status line and headers (empty until they came).
  std::string head();
  std::vector<SseEvent> events();
  int comments();
  bool closed();
  // Waits until `pred(events, closed)` holds or `timeout` passes; returns whether it held.
  bool wait(const std::function<bool(const std::vector<SseEvent>&, bool)>& pred,
            std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  void run();
  void parse_locked();

  RawConnection connection_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string buffer_;            // guarded
  std::string head_;              // guarded
  std::vector<SseEvent> events_;  // guarded
  int comments_ = 0;              // guarded
  bool closed_ = false;           // guarded
  bool stop_ = false;             // guarded
  std::thread thread_;
};

}  // namespace lipsync::testing
