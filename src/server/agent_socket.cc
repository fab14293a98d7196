#include "server/agent_socket.h"

#include <nlohmann/json.hpp>

#include "audio/mel_constants.h"
#include "core/error.h"
#include "core/json_parse.h"
#include "core/json_text.h"
#include "core/text.h"
#include "server/input_limits.h"

namespace lipsync::server {

using nlohmann::json;

AgentMessage parse_agent_message(std::string_view text) {
  const json j = core::parse_json(text, "the message");
  if (!j.is_object()) {
    throw Error::invalid_input("a message must be a JSON object with a \"type\"; got " +
                               core::quote(text));
  }
  const auto type = j.find("type");
  if (type == j.end() || !type->is_string()) {
    throw Error::invalid_input(
        "type: required, a string (utterance, segment_end, interrupt, ping)");
  }
  const std::string name = type->get<std::string>();
  AgentMessage m;
  if (name == "segment_end") {
    m.type = AgentMessage::Type::kSegmentEnd;
  } else if (name == "interrupt") {
    m.type = AgentMessage::Type::kInterrupt;
  } else if (name == "ping") {
    m.type = AgentMessage::Type::kPing;
  } else if (name == "utterance") {
    m.type = AgentMessage::Type::kUtterance;
    if (const auto rate = j.find("sample_rate"); rate != j.end()) {
      m.sample_rate =
          static_cast<int>(limits::checked_json(limits::kSpeechRate, "sample_rate", *rate));
    }
    if (const auto encoding = j.find("encoding"); encoding != j.end()) {
      const std::string e = encoding->is_string() ? encoding->get<std::string>() : "";
      if (e != "s16le" && e != "f32le") {
        throw Error::invalid_input("encoding: " + core::quote(encoding->dump()) +
                                   " is not an encoding; expected \"s16le\" or \"f32le\"");
      }
      m.s16 = e == "s16le";
    }
  } else {
    throw Error::invalid_input("type: " + core::quote(name) +
                               " is not a message; expected utterance, segment_end, interrupt "
                               "or ping");
  }
  return m;
}

AgentSocket::AgentSocket(Target target, std::shared_ptr<WebSocketPeer> peer, int max_seconds,
                         std::function<void()> wanted)
    : target_(std::move(target)),
      peer_(std::move(peer)),
      max_samples_(static_cast<std::int64_t>(max_seconds) * audio::kSampleRateHz),
      max_seconds_(max_seconds),
      wanted_(wanted ? std::move(wanted) : [peer = std::weak_ptr<WebSocketPeer>(peer_)] {
        if (auto p = peer.lock()) p->resume();
      }) {}

void AgentSocket::early(bool text, std::string_view data) {
  // An interrupt is a few bytes; anything long is not one, and is not parsed twice.
  constexpr std::size_t kMaxInterruptBytes = 256;
  if (!text || data.size() > kMaxInterruptBytes) return;
  try {
    if (parse_agent_message(data).type != AgentMessage::Type::kInterrupt) return;
  } catch (const Error&) {
    return;  // on_message answers it
  }
  ++early_interrupts_;
  target_.interrupt(false);
}

bool AgentSocket::on_message(bool text, std::string data) {
  try {
    return text ? on_text(data) : on_audio(data);
  } catch (const Error& e) {
    send_error(e.message());
  }
  return true;
}

void AgentSocket::on_close() {
  // An agent that went away mid-utterance: what it had not finished sending is not played.
  if (input_) input_->abandon();
  input_.reset();
}

bool AgentSocket::on_text(std::string_view text) {
  const AgentMessage m = parse_agent_message(text);
  switch (m.type) {
    case AgentMessage::Type::kPing:
      peer_->send_text(R"({"type":"pong"})");
      return true;
    case AgentMessage::Type::kInterrupt:
      if (input_) input_->abandon();
      input_.reset();
      dropping_ = false;
      if (early_interrupts_ > 0) {
        --early_interrupts_;
        target_.interrupt(true);
      } else {
        target_.interrupt(false);
      }
      return true;
    case AgentMessage::Type::kSegmentEnd:
      if (!input_ && !dropping_) {
        throw Error::invalid_input(
            "segment_end: no utterance is open; send "
            "{\"type\":\"utterance\",...} first");
      }
      dropping_ = false;
      end_utterance();
      return true;
    case AgentMessage::Type::kUtterance:
      break;
  }
  if (input_ || dropping_) {
    throw Error::invalid_input(
        "utterance: one is already open on this socket; end it with segment_end first");
  }
  auto input = target_.begin_speech(wanted_);
  if (!input) {
    throw Error::invalid_input(
        "utterance: another utterance is coming into the session (an upload or a text being "
        "spoken); send this one when it has ended");
  }
  input_ = std::move(input);
  audio_.configure(m.s16, m.sample_rate);
  samples_ = 0;
  return true;
}

bool AgentSocket::on_audio(const std::string& bytes) {
  if (dropping_) return true;
  if (!input_) {
    throw Error::invalid_input(
        "binary audio before an utterance; send {\"type\":\"utterance\",\"sample_rate\":N,"
        "\"encoding\":\"s16le\"} first");
  }
  std::vector<float> samples;
  try {
    samples = audio_.decode(bytes, "binary message");
  } catch (const Error&) {
    audio_.drop_partial();  // the message is dropped whole; the utterance goes on
    throw;
  }
  samples_ += static_cast<std::int64_t>(samples.size());
  if (samples_ > max_samples_) {
    // What fits plays; the rest of this utterance is dropped until its segment_end.
    const std::int64_t over = samples_ - max_samples_;
    samples.resize(samples.size() - static_cast<std::size_t>(over));
    input_->add(std::move(samples));
    input_->end();
    input_.reset();
    dropping_ = true;
    throw Error::invalid_input("the utterance is longer than " + std::to_string(max_seconds_) +
                               " s (audio.max_seconds); the rest of it is dropped");
  }
  return input_->add(std::move(samples));
}

void AgentSocket::end_utterance() {
  if (!input_) return;
  auto input = std::move(input_);
  std::vector<float> tail;
  std::optional<Error> error;
  try {
    tail = audio_.finish("utterance");
  } catch (const Error& e) {
    error = e;  // an incomplete last sample: dropped, the rest plays
    audio_.drop_partial();
    tail = audio_.finish("utterance");
  }
  input->add(std::move(tail));
  input->end();
  if (error) throw *error;
}

void AgentSocket::send_error(const std::string& message) {
  peer_->send_text(core::json_text(json{{"type", "error"}, {"message", message}}));
}

}  // namespace lipsync::server
