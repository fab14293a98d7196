// Fuzzes the WebSocket message handler of GET /v1/sessions/ID/ws: server::AgentSocket, with the
// JSON messages it parses (parse_agent_message), the PCM of its binary messages through the
// streaming resampler, and its state (utterance open or not, flow control, the audio.max_seconds
// cut), against a recording session and peer.
//
// Input: records of a kind byte, then for messages a 2-byte little-endian length and that many
// bytes: kind 0 = a binary message, 1 = a text message, 2 = the session has room again (the
// wanted callback), 3 = the session has no room until then, 4 = the connection ends; other kinds
// are a binary message.
//
// Checked: every answer is a JSON object with a known type; the session never gets more samples
// than the binary messages could hold (at 16 kHz, plus the resampler's tail), and only finite
// ones (f32le may be any finite value, as on every other wire); samples come only
// into an open utterance, never after its end or abandon.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "server/agent_socket.h"

namespace {

using namespace lipsync;

struct Input final : server::SpeechInput {
  bool* room = nullptr;
  std::size_t samples = 0;
  bool over = false;  // ended or abandoned
  bool add(std::vector<float> s) override {
    if (over && !s.empty()) fuzz::finding("samples after the utterance ended");
    for (float v : s) {
      if (!std::isfinite(v)) fuzz::finding("a sample that is not finite reached the session");
    }
    samples += s.size();
    return *room;
  }
  void end(bool) override { over = true; }
  int utterance() const override { return 0; }
  void abandon() override { over = true; }
  State state() override { return over ? State::kEnded : State::kOpen; }
  std::int64_t taken() const override { return static_cast<std::int64_t>(samples); }
};

struct Peer final : server::WebSocketPeer {
  void send_text(std::string m) override {
    const auto j = nlohmann::json::parse(m, nullptr, false);
    if (!j.is_object()) fuzz::finding("an answer that is not a JSON object");
    const std::string type = j.value("type", "");
    if (type != "error" && type != "pong") fuzz::finding("an answer of unknown type");
    if (type == "error" && j.value("message", "").size() > 1000) {
      fuzz::finding("an error message of over 1000 bytes");
    }
  }
  void resume() override {}
  void close(std::string, int) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bool room = true;
  std::function<void()> wanted;
  std::vector<std::shared_ptr<Input>> inputs;
  server::AgentSocket::Target target{
      [&](std::function<void()> w) -> std::shared_ptr<server::SpeechInput> {
        wanted = std::move(w);
        inputs.push_back(std::make_shared<Input>());
        inputs.back()->room = &room;
        return inputs.back();
      },
      [](bool) {}};
  server::AgentSocket socket(target, std::make_shared<Peer>(), 2);
  std::size_t binary_bytes = 0;
  std::size_t at = 0;
  while (at < size) {
    const std::uint8_t kind = data[at++];
    if (kind == 2) {
      room = true;
      if (wanted) wanted();
      continue;
    }
    if (kind == 3) {
      room = false;
      continue;
    }
    if (kind == 4) break;
    if (at + 2 > size) break;
    const std::size_t n = std::min<std::size_t>(data[at] | (data[at + 1] << 8), size - at - 2);
    at += 2;
    std::string message(reinterpret_cast<const char*>(data + at), n);
    at += n;
    if (kind != 1) binary_bytes += n;
    socket.early(kind == 1, message);  // as the server does: early() first, then on_message
    socket.on_message(kind == 1, std::move(message));
  }
  socket.on_close();
  std::size_t samples = 0;
  for (const auto& input : inputs) {
    samples += input->samples;
    if (!input->over) fuzz::finding("an utterance left open after the connection ended");
  }
  // At most every 2 bytes a sample at 8 kHz doubled to 16 kHz, plus a tail per utterance.
  if (samples > binary_bytes + 4096 * inputs.size()) fuzz::finding("more samples than sent");
  return 0;
}
