#include "support/sse_client.h"

namespace lipsync::testing {

SseClient::SseClient(int port, const std::string& target, const std::string& headers)
    : connection_(port) {
  connection_.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" +
                   headers + "\r\n");
  thread_ = std::thread([this] { run(); });
}

SseClient::~SseClient() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  thread_.join();
}

void SseClient::run() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
    }
    if (!connection_.readable(std::chrono::milliseconds(50))) continue;
    const std::string bytes = connection_.receive(std::chrono::milliseconds(20));
    std::lock_guard lock(mutex_);
    if (bytes.empty()) {  // readable and nothing: the server closed
      closed_ = true;
      changed_.notify_all();
      return;
    }
    buffer_ += bytes;
    parse_locked();
    changed_.notify_all();
  }
}

void SseClient::parse_locked() {
  if (head_.empty()) {
    const auto end = buffer_.find("\r\n\r\n");
    if (end == std::string::npos) return;
    head_ = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
  }
  for (;;) {
    const auto end = buffer_.find("\n\n");
    if (end == std::string::npos) return;
    const std::string block = buffer_.substr(0, end + 1);
    buffer_.erase(0, end + 2);
    SseEvent e;
    bool comment = true;
    std::size_t at = 0;
    while (at < block.size()) {
      const auto nl = block.find('\n', at);
      const std::string line = block.substr(at, nl - at);
      at = nl + 1;
      if (line.empty() || line[0] == ':') continue;
      comment = false;
      const auto colon = line.find(": ");
      const std::string field = line.substr(0, colon);
      const std::string value = colon == std::string::npos ? "" : line.substr(colon + 2);
      if (field == "id") e.id = value;
      if (field == "event") e.event = value;
      if (field == "data") e.data += value;
    }
    if (comment) {
      ++comments_;
    } else {
      events_.push_back(std::move(e));
    }
  }
}

std::string SseClient::head() {
  std::lock_guard lock(mutex_);
  return head_;
}

std::vector<SseEvent> SseClient::events() {
  std::lock_guard lock(mutex_);
  return events_;
}

int SseClient::comments() {
  std::lock_guard lock(mutex_);
  return comments_;
}

bool SseClient::closed() {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool SseClient::wait(const std::function<bool(const std::vector<SseEvent>&, bool)>& pred,
                     std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return pred(events_, closed_); });
}

}  // namespace lipsync::testing
