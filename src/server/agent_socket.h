// AgentSocket: the avatar protocol of GET /v1/sessions/ID/ws for one connection: a voice agent's
// TTS audio in, answers out, on one WebSocket.
//
// Client text messages are JSON objects with a "type":
//   {"type":"utterance","sample_rate":24000,"encoding":"s16le"}
//       opens an utterance: s16le or f32le (default s16le), 8000 to 192000 Hz (default 16000),
//       resampled to 16 kHz as it streams. Binary messages that follow are its PCM, any size.
//   {"type":"segment_end"}  ends it: what came in plays to its end.
//   {"type":"interrupt"}    stops speaking at once: the open utterance and all queued speech.
//   {"type":"ping"}         answered {"type":"pong"}.
// The server answers a bad message with {"type":"error","message":...} naming the problem and
// keeps the socket open: an unknown type, binary before an utterance, a bad rate or encoding, a
// second utterance while one is open, or one while another comes into the session (an upload).
// Flow control: once the session holds live.max_buffered_s of speech, on_message says to read no
// more until it has room (`wanted` is then called; TCP holds the agent back); audio is never
// dropped for speed.
// Thread contract: on_message and on_close one at a time, in order (a core::ReadLane's strand);
// early() on the receiving thread, before that message's on_message is queued. The peer and the
// target may call back from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "server/http_server.h"
#include "server/session_hub.h"
#include "server/wire_audio.h"

namespace lipsync::server {

// A client message, checked. Throws Error::Code::kInvalidInput naming what is wrong.
struct AgentMessage {
  enum class Type { kUtterance, kSegmentEnd, kInterrupt, kPing };
  Type type = Type::kPing;
  int sample_rate = 16000;  // kUtterance
  bool s16 = true;          // kUtterance: s16le, else f32le
};
AgentMessage parse_agent_message(std::string_view text);

class AgentSocket final : public WebSocketHandler {
 public:
  // What the socket drives: a live session.
  struct Target {
    // Opens an utterance (HubSession::begin_speech): null while another is coming in.
    std::function<std::shared_ptr<SpeechInput>(std::function<void()> wanted)> begin_speech;
    // Stops the session's speech. `again`: early() did for this message; this cuts only what
    // the messages before it queued since (it counts as no new interrupt).
    std::function<void(bool again)> interrupt;
  };
  // `max_seconds`: the longest utterance (audio.max_seconds). `wanted`: the session has room
  // again after on_message said it had none (default: the peer reads on).
  AgentSocket(Target target, std::shared_ptr<WebSocketPeer> peer, int max_seconds,
              std::function<void()> wanted = {});

  // What a message does at once, not behind the audio queued before it: an interrupt stops the
  // session's speech as it arrives (the ack the agent waits for is measured from here).
  void early(bool text, std::string_view data);
  bool on_message(bool text, std::string data) override;
  void on_close() override;

 private:
  bool on_text(std::string_view text);
  bool on_audio(const std::string& bytes);
  void end_utterance();
  void send_error(const std::string& message);

  const Target target_;
  const std::shared_ptr<WebSocketPeer> peer_;
  const std::int64_t max_samples_;
  const int max_seconds_;
  const std::function<void()> wanted_;
  std::atomic<int> early_interrupts_{0};  // done by early(), not yet by on_message
  std::shared_ptr<SpeechInput> input_;    // the open utterance
  WireAudio audio_;
  std::int64_t samples_ = 0;  // of the open utterance, at 16 kHz
  bool dropping_ = false;     // the utterance went over max_seconds: its audio is dropped
};

}  // namespace lipsync::server
