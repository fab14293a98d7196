// The agent's WebSocket (GET /v1/sessions/ID/ws): the protocol handler on its own, with a
// recording session and peer (messages, errors, flow control, limits), and the real server on
// loopback with a real WebSocket client (speech streamed faster than real time and watched
// frame by frame on an attached gRPC Live call, bad messages, authentication, origins, interrupt,
// the session's end).
#include "server/agent_socket.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numbers>
#include <thread>

#include "audio/video_frames.h"
#include "avatar/avatar_import.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/server.h"
#include "support/http_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"
#include "support/wait.h"
#include "support/ws_client.h"

namespace lipsync {
namespace {

using testing::eventually;

using lipsync::v1::LiveFrame;
using lipsync::v1::LiveRequest;
using lipsync::v1::StreamConfig;
using nlohmann::json;
using server::AgentMessage;
using server::parse_agent_message;

// `seconds` of a 200 Hz tone at `rate`, as s16le bytes.
std::string tone_s16le(double seconds, int rate) {
  std::string bytes;
  const int n = static_cast<int>(seconds * rate);
  for (int i = 0; i < n; ++i) {
    const auto v =
        static_cast<std::int16_t>(12000 * std::sin(2 * std::numbers::pi * 200 * i / rate));
    bytes.push_back(static_cast<char>(v & 0xff));
    bytes.push_back(static_cast<char>((v >> 8) & 0xff));
  }
  return bytes;
}

// The socket's next answer to a message (pong or error), past the session's events.
std::optional<std::string> answer(testing::WsClient& ws) {
  for (;;) {
    auto m = ws.read();
    if (!m) return m;
    const std::string type = json::parse(*m).value("type", "");
    if (type == "pong" || type == "error") return m;
  }
}

// Everything the server sends until it closes the socket (or 10 s pass with nothing).
std::vector<std::string> until_closed(testing::WsClient& ws) {
  std::vector<std::string> all;
  while (auto m = ws.read(std::chrono::seconds(10))) all.push_back(*m);
  return all;
}

// The message's text for `what` (throws what parse_agent_message throws).
std::string error_of(const std::string& text) {
  try {
    parse_agent_message(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    return e.message();
  }
  return "(accepted)";
}

TEST(AgentMessageTest, TheFourMessagesAndTheirDefaults) {
  const AgentMessage u =
      parse_agent_message(R"({"type":"utterance","sample_rate":24000,"encoding":"f32le"})");
  EXPECT_EQ(u.type, AgentMessage::Type::kUtterance);
  EXPECT_EQ(u.sample_rate, 24000);
  EXPECT_FALSE(u.s16);
  const AgentMessage d = parse_agent_message(R"({"type":"utterance"})");
  EXPECT_EQ(d.sample_rate, 16000);
  EXPECT_TRUE(d.s16);
  EXPECT_EQ(parse_agent_message(R"({"type":"segment_end"})").type, AgentMessage::Type::kSegmentEnd);
  EXPECT_EQ(parse_agent_message(R"({"type":"interrupt"})").type, AgentMessage::Type::kInterrupt);
  EXPECT_EQ(parse_agent_message(R"({"type":"ping","id":7})").type, AgentMessage::Type::kPing);
}

TEST(AgentMessageTest, BadMessagesAreNamed) {
  EXPECT_NE(error_of("hello").find("the message"), std::string::npos);
  EXPECT_NE(error_of("[1]").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of("{}").find("type: required"), std::string::npos);
  EXPECT_NE(error_of(R"({"type":"dance"})").find("'dance' is not a message"), std::string::npos);
  EXPECT_NE(error_of(R"({"type":"ping","type":"ping"})").find("type"), std::string::npos);
  for (const char* rate :
       {"7999", "192001", "-1", "16000.5", "\"16000\"", "18446744073709551615"}) {
    const std::string m =
        error_of(std::string(R"({"type":"utterance","sample_rate":)") + rate + "}");
    EXPECT_NE(m.find("sample_rate: "), std::string::npos) << rate << ": " << m;
    EXPECT_NE(m.find("8000 to 192000"), std::string::npos) << m;
  }
  EXPECT_NE(error_of(R"({"type":"utterance","encoding":"mp3"})").find("\"s16le\" or \"f32le\""),
            std::string::npos);
  // A long message is quoted short.
  const std::string long_type = R"({"type":")" + std::string(100000, 'x') + R"("})";
  EXPECT_LT(error_of(long_type).size(), 300u);
}

// A session's speech input that takes `room` samples before it says "no more for now".
struct RecordingInput final : server::SpeechInput {
  std::size_t room = 1 << 30;
  std::vector<float> samples;
  bool ended = false;
  bool abandoned = false;
  bool add(std::vector<float> s) override {
    samples.insert(samples.end(), s.begin(), s.end());
    return samples.size() < room;
  }
  void end(bool) override { ended = true; }
  int utterance() const override { return 0; }
  void abandon() override { abandoned = true; }
  State state() override { return ended || abandoned ? State::kEnded : State::kOpen; }
  std::int64_t taken() const override { return static_cast<std::int64_t>(samples.size()); }
};

struct RecordingPeer final : server::WebSocketPeer {
  std::vector<std::string> sent;
  int resumes = 0;
  void send_text(std::string m) override { sent.push_back(std::move(m)); }
  void resume() override { ++resumes; }
  void close(std::string, int) override {}
  std::string last_type() const { return sent.empty() ? "" : json::parse(sent.back()).at("type"); }
  std::string last_message() const {
    return sent.empty() ? "" : json::parse(sent.back()).value("message", "");
  }
};

class AgentSocketUnitTest : public ::testing::Test {
 protected:
  server::AgentSocket socket(int max_seconds = 60) {
    server::AgentSocket::Target target{
        [this](std::function<void()> w) -> std::shared_ptr<server::SpeechInput> {
          if (busy) return nullptr;
          wanted = std::move(w);
          inputs.push_back(std::make_shared<RecordingInput>());
          inputs.back()->room = room;
          return inputs.back();
        },
        [this](bool again) { interrupts += again ? 0 : 1; }};
    return server::AgentSocket(target, peer, max_seconds);
  }
  std::shared_ptr<RecordingPeer> peer = std::make_shared<RecordingPeer>();
  std::vector<std::shared_ptr<RecordingInput>> inputs;
  std::function<void()> wanted;
  std::size_t room = 1 << 30;
  bool busy = false;
  int interrupts = 0;
};

TEST_F(AgentSocketUnitTest, AnUtteranceAt24kHzIsResampledSplitAnywhereAndEnded) {
  auto s = socket();
  EXPECT_TRUE(s.on_message(true, R"({"type":"utterance","sample_rate":24000})"));
  const std::string pcm = tone_s16le(1.0, 24000);
  // Pieces of odd sizes: samples split across messages.
  for (std::size_t at = 0; at < pcm.size(); at += 777) {
    EXPECT_TRUE(s.on_message(false, pcm.substr(at, 777)));
  }
  EXPECT_TRUE(s.on_message(true, R"({"type":"segment_end"})"));
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_TRUE(inputs[0]->ended);
  EXPECT_NEAR(static_cast<double>(inputs[0]->samples.size()), 16000.0, 2.0);
  EXPECT_TRUE(peer->sent.empty()) << peer->sent.front();
  // The tone survives: its level at 16 kHz is the input's (12000 / 32768 peak).
  float peak = 0;
  for (float v : inputs[0]->samples) peak = std::max(peak, std::abs(v));
  EXPECT_NEAR(peak, 12000.0f / 32768.0f, 0.02f);
  // A ping is answered.
  s.on_message(true, R"({"type":"ping"})");
  EXPECT_EQ(peer->last_type(), "pong");
}

TEST_F(AgentSocketUnitTest, BadMessagesAreAnsweredAndTheSocketGoesOn) {
  auto s = socket();
  EXPECT_TRUE(s.on_message(false, "\x01\x02"));
  EXPECT_EQ(peer->last_type(), "error");
  EXPECT_NE(peer->last_message().find("binary audio before an utterance"), std::string::npos);
  s.on_message(true, R"({"type":"segment_end"})");
  EXPECT_NE(peer->last_message().find("no utterance is open"), std::string::npos);
  s.on_message(true, R"({"type":"utterance","sample_rate":5})");
  EXPECT_NE(peer->last_message().find("sample_rate"), std::string::npos);
  EXPECT_TRUE(inputs.empty());
  s.on_message(true, R"({"type":"utterance","encoding":"f32le"})");
  s.on_message(true, R"({"type":"utterance"})");
  EXPECT_NE(peer->last_message().find("already open"), std::string::npos);
  // A float that is not a sample (NaN): that message is dropped, the utterance goes on.
  const float nan = std::nanf("");
  std::string bad(4, '\0');
  std::memcpy(bad.data(), &nan, 4);
  const std::size_t errors = peer->sent.size();
  s.on_message(false, bad);
  EXPECT_EQ(peer->sent.size(), errors + 1);
  const float half = 0.5f;
  std::string good(4, '\0');
  std::memcpy(good.data(), &half, 4);
  s.on_message(false, good + good.substr(0, 2));  // one sample and half of another
  s.on_message(true, R"({"type":"segment_end"})");
  EXPECT_NE(peer->last_message().find("incomplete sample"), std::string::npos);
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0]->samples, std::vector<float>{0.5f});
  EXPECT_TRUE(inputs[0]->ended);
  // Another utterance coming into the session (an upload): refused, named.
  busy = true;
  s.on_message(true, R"({"type":"utterance"})");
  EXPECT_NE(peer->last_message().find("another utterance is coming into the session"),
            std::string::npos);
}

TEST_F(AgentSocketUnitTest, AFullSessionStopsTheReadingUntilItWantsMore) {
  room = 8000;
  auto s = socket();
  s.on_message(true, R"({"type":"utterance"})");
  const std::string pcm = tone_s16le(1.0, 16000);
  EXPECT_TRUE(s.on_message(false, pcm.substr(0, 8000)));      // 4000 samples
  EXPECT_FALSE(s.on_message(false, pcm.substr(8000, 8000)));  // 8000: full
  ASSERT_TRUE(wanted);
  wanted();  // the session has room again
  EXPECT_EQ(peer->resumes, 1);
  EXPECT_TRUE(peer->sent.empty());
}

TEST_F(AgentSocketUnitTest, InterruptDropsTheOpenUtteranceAndAnOverlongOneIsCut) {
  auto s = socket(1);
  s.on_message(true, R"({"type":"utterance"})");
  s.on_message(false, tone_s16le(0.5, 16000));
  s.on_message(true, R"({"type":"interrupt"})");
  EXPECT_EQ(interrupts, 1);
  EXPECT_TRUE(inputs[0]->abandoned);
  s.on_message(false, tone_s16le(0.1, 16000));  // the cut reply's audio still in flight
  EXPECT_NE(peer->last_message().find("before an utterance"), std::string::npos);
  // Over audio.max_seconds (1 s here): what fits plays, the rest up to segment_end is dropped.
  s.on_message(true, R"({"type":"utterance"})");
  s.on_message(false, tone_s16le(0.8, 16000));
  s.on_message(false, tone_s16le(0.8, 16000));
  EXPECT_NE(peer->last_message().find("longer than 1 s (audio.max_seconds)"), std::string::npos);
  EXPECT_EQ(inputs[1]->samples.size(), 16000u);
  EXPECT_TRUE(inputs[1]->ended);
  const std::size_t sent = peer->sent.size();
  s.on_message(false, tone_s16le(0.8, 16000));
  s.on_message(true, R"({"type":"segment_end"})");
  EXPECT_EQ(peer->sent.size(), sent);  // dropped without a word more
  s.on_message(true, R"({"type":"utterance"})");
  EXPECT_EQ(inputs.size(), 3u);
  // The agent went away mid-utterance: it is not played.
  s.on_close();
  EXPECT_TRUE(inputs[2]->abandoned);
}

// The real server ------------------------------------------------------------------------------
constexpr const char* kToken = "s3cret";

class AgentSocketTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", 5, 320, 240);
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    server_ = testing::start_test_server(*dir_ / "avatar", [](server::ServerConfig& c) {
      c.server.api_token = kToken;
      c.server.cors_origins = "http://app.example";
    });
    port_ = server_->http_port();
  }

  testing::HttpResult request(const std::string& method, const std::string& target,
                              const std::string& body = "", const std::string& type = "") {
    std::string raw = method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                      "Authorization: Bearer " + kToken + "\r\n";
    if (!type.empty()) raw += "Content-Type: " + type + "\r\n";
    raw += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return testing::http_exchange(port_, raw);
  }

  std::string create_session() {
    const auto r = request("POST", "/v1/sessions", "{}", "application/json");
    EXPECT_EQ(r.status, 201) << r.body;
    return json::parse(r.body).at("id").get<std::string>();
  }

  json info(const std::string& id) {
    return json::parse(request("GET", "/v1/sessions/" + id).body);
  }

  std::unique_ptr<testing::WsClient> connect(const std::string& id) {
    return std::make_unique<testing::WsClient>(
        port_, "/v1/sessions/" + id + "/ws",
        std::vector<std::pair<std::string, std::string>>{
            {"Authorization", std::string("Bearer ") + kToken}});
  }

  static testing::TempDir* dir_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
};

testing::TempDir* AgentSocketTest::dir_ = nullptr;

TEST_F(AgentSocketTest, SpeechStreamedFasterThanRealTimeIsSpokenFrameByFrame) {
  const std::string id = create_session();
  // A gRPC Live call attached to the session watches its frames and their samples.
  auto stub = v1::LipSync::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server_->grpc_port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
  auto call = stub->Live(&ctx);
  LiveRequest config;
  config.mutable_config()->set_session_id(id);
  config.mutable_config()->set_format(StreamConfig::FORMAT_RAW);
  ASSERT_TRUE(call->Write(config));
  LiveFrame frame;
  ASSERT_TRUE(call->Read(&frame));

  auto ws = connect(id);
  ASSERT_TRUE(ws->ok()) << ws->status() << " " << ws->refusal_body();
  ASSERT_TRUE(ws->send_text(R"({"type":"utterance","sample_rate":24000,"encoding":"s16le"})"));
  const std::string pcm = tone_s16le(2.0, 24000);
  for (std::size_t at = 0; at < pcm.size(); at += 4800)
    ASSERT_TRUE(ws->send_binary(pcm.substr(at, 4800)));
  ASSERT_TRUE(ws->send_text(R"({"type":"segment_end"})"));
  ASSERT_TRUE(ws->send_text(R"({"type":"ping"})"));
  const auto pong = answer(*ws);
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(json::parse(*pong).at("type"), "pong");  // no error came before it

  // 2 s of speech: 50 speaking frames in a row, each with its 640 samples of the tone.
  int speaking = 0;
  int loud = 0;
  for (int i = 0; i < 400 && call->Read(&frame); ++i) {
    if (frame.state() == LiveFrame::SPEAKING) {
      ++speaking;
      std::int16_t peak = 0;
      const std::string& s = frame.samples();
      for (std::size_t k = 0; k + 1 < s.size(); k += 2) {
        std::int16_t v = 0;
        std::memcpy(&v, s.data() + k, 2);
        peak = std::max<std::int16_t>(peak, static_cast<std::int16_t>(std::abs(v)));
      }
      loud += peak > 10000;
    } else if (speaking > 0) {
      break;
    }
  }
  EXPECT_EQ(speaking, audio::clip_frames_for_samples(32000));
  EXPECT_GE(loud, speaking - 1);  // the last frame may be part silence
  ctx.TryCancel();
}

TEST_F(AgentSocketTest, BadMessagesGetErrorsOnTheOpenSocket) {
  const std::string id = create_session();
  auto ws = connect(id);
  ASSERT_TRUE(ws->ok());
  const auto error = [&](const std::string& text, bool binary = false) {
    binary ? ws->send_binary(text) : ws->send_text(text);
    const auto m = answer(*ws);
    if (!m) return std::string("(nothing)");
    const json j = json::parse(*m);
    EXPECT_EQ(j.at("type"), "error") << *m;
    return j.value("message", "");
  };
  EXPECT_NE(error("\x01\x02", true).find("before an utterance"), std::string::npos);
  EXPECT_NE(error(R"({"type":"dance"})").find("dance"), std::string::npos);
  EXPECT_NE(error("not json").find("the message"), std::string::npos);
  EXPECT_NE(error(R"({"type":"utterance","sample_rate":4000})").find("sample_rate"),
            std::string::npos);
  ws->send_text(R"({"type":"ping"})");
  EXPECT_EQ(json::parse(answer(*ws).value_or("{}")).value("type", ""), "pong");
  // An upload into the session while the socket's utterance is open: 409, and the other way.
  ws->send_text(R"({"type":"utterance"})");
  ws->send_text(R"({"type":"ping"})");
  ASSERT_EQ(json::parse(answer(*ws).value_or("{}")).value("type", ""), "pong");
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2, 16000),
                    "audio/s16le;rate=16000")
                .status,
            409);
  ws->send_text(R"({"type":"segment_end"})");
  auto other = connect(id);
  ASSERT_TRUE(other->ok());
  // The first socket's utterance has ended: the second may open one.
  other->send_text(R"({"type":"utterance"})");
  other->send_text(R"({"type":"ping"})");
  EXPECT_EQ(json::parse(answer(*other).value_or("{}")).value("type", ""), "pong");
  EXPECT_NE(error(R"({"type":"utterance"})").find("another utterance is coming"),
            std::string::npos);
}

TEST_F(AgentSocketTest, TheTokenTheOriginAndTheSessionAreChecked) {
  const std::string id = create_session();
  const std::string target = "/v1/sessions/" + id + "/ws";
  {
    testing::WsClient ws(port_, target);
    EXPECT_FALSE(ws.ok());
    EXPECT_EQ(ws.status(), 401);
  }
  {
    testing::WsClient ws(port_, target + "?access_token=wrong");
    EXPECT_EQ(ws.status(), 401);
  }
  {
    testing::WsClient ws(port_, target + "?access_token=s3cr%65t");  // percent-encoded
    EXPECT_TRUE(ws.ok()) << ws.status();
  }
  {
    testing::WsClient ws(port_, target + "?access_token=" + kToken,
                         {{"Origin", "http://evil.example"}});
    EXPECT_EQ(ws.status(), 403);
    EXPECT_NE(ws.refusal_body().find("server.cors_origins"), std::string::npos);
  }
  {
    testing::WsClient ws(port_, target + "?access_token=" + kToken,
                         {{"Origin", "http://app.example"}});
    EXPECT_TRUE(ws.ok());
  }
  {
    testing::WsClient ws(port_, "/v1/sessions/nope/ws?access_token=" + std::string(kToken));
    EXPECT_EQ(ws.status(), 404);
  }
  // Other paths are not sockets.
  testing::WsClient health(port_, "/healthz");
  EXPECT_FALSE(health.ok());
}

TEST_F(AgentSocketTest, InterruptStopsTheSpeechAndDeletingTheSessionClosesTheSocket) {
  const std::string id = create_session();
  auto ws = connect(id);
  ASSERT_TRUE(ws->ok());
  ws->send_text(R"({"type":"utterance","sample_rate":16000})");
  ws->send_binary(tone_s16le(4.0, 16000));
  ws->send_text(R"({"type":"segment_end"})");
  ASSERT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 5000));
  ws->send_text(R"({"type":"interrupt"})");
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "idle"; }, 2000));
  // The next reply plays.
  ws->send_text(R"({"type":"utterance"})");
  ws->send_binary(tone_s16le(1.0, 16000));
  ws->send_text(R"({"type":"segment_end"})");
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 5000));
  // DELETE ends the session and closes its socket, saying why (1001: going away).
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  const auto last = until_closed(*ws);
  EXPECT_EQ(ws->close_code(), 1001);
  ASSERT_FALSE(last.empty());
  EXPECT_EQ(json::parse(last.back()).at("type"), "session_ended");  // the last word
  EXPECT_EQ(json::parse(last.back()).at("reason"), "deleted");
}

TEST_F(AgentSocketTest, HostileClientsLoseTheirSocketAndNothingElse) {
  const std::string id = create_session();
  // A message over server.http_max_body_kb (1 MB): closed as too big, 1009, always (the server
  // drains the rest of the message, so the close is read, not reset).
  {
    auto ws = connect(id);
    ws->send_text(R"({"type":"utterance"})");
    ws->send_binary(std::string(2 << 20, '\0'));
    until_closed(*ws);
    EXPECT_EQ(ws->close_code(), 1009);
  }
  // A client that sends bad messages as fast as it can and never reads the errors: once 4 MB
  // of answers wait for it, it is closed; the server does not hold them for it. (Loopback
  // buffers take megabytes of its messages before the server has read them: it sends until
  // the connection fails, for at most 30 s.)
  {
    auto ws = connect(id);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool failed = false;
    while (!failed && std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 1000 && !failed; ++i) failed = !ws->send_binary("\x01\x02");
    }
    EXPECT_TRUE(failed) << "never closed";
  }
  // The session and the server go on: a new socket speaks.
  auto ws = connect(id);
  ASSERT_TRUE(ws->ok());
  ws->send_text(R"({"type":"utterance"})");
  ws->send_binary(tone_s16le(1.0, 16000));
  ws->send_text(R"({"type":"segment_end"})");
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 5000));
  EXPECT_EQ(testing::http_get(port_, "/healthz").status, 200);
}

// A client frame (masked with a zero key, as RFC 6455 allows): FIN, `opcode`, the payload's
// `length` (what is sent may be less: the rest is "still coming").
std::string client_frame(int opcode, std::uint64_t length, const std::string& payload) {
  std::string f(1, static_cast<char>(0x80 | opcode));
  if (length < 126) {
    f += static_cast<char>(0x80 | length);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((length >> (8 * i)) & 0xff);
  }
  return f + std::string(4, '\0') + payload;
}

// A client that sends a message over the limit and then never answers the server's close (nor
// closes): its open utterance is let go at once, not when the close times out, so the session
// takes the next speech.
TEST_F(AgentSocketTest, AnOverlongMessageFreesTheUtteranceEvenIfTheClientNeverAnswersTheClose) {
  const std::string id = create_session();
  testing::RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /v1/sessions/" + id +
                     "/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     "Authorization: Bearer " +
                     std::string(kToken) + "\r\n\r\n"));
  ASSERT_NE(c.receive(std::chrono::milliseconds(500)).find(" 101 "), std::string::npos);
  ASSERT_TRUE(c.send(client_frame(1, 20, R"({"type":"utterance"})")));
  // 2 MB declared; sent 200 KB at a time until the server has read more than its 1 MB limit.
  std::string got;
  ASSERT_TRUE(c.send(client_frame(2, 2u << 20, std::string(200000, '\1'))));
  // The server's close: 0x88, the payload's length, then the code 1009 (0x03f1) and the reason.
  const auto closed_1009 = [&] {
    const auto at = got.find('\x88');
    return at != std::string::npos && got.size() >= at + 4 &&
           got.compare(at + 2, 2, "\x03\xf1") == 0;
  };
  for (int i = 0; i < 5 && !closed_1009(); ++i) {
    c.send(std::string(200000, '\1'));
    got += c.receive(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(closed_1009()) << got.size();
  // The connection stays half-open (no close answered); the session takes an upload at once.
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2, 16000),
                    "audio/s16le;rate=16000")
                .status,
            200);
}

TEST_F(AgentSocketTest, ShutdownClosesOpenSockets) {
  const std::string id = create_session();
  auto ws = connect(id);
  ASSERT_TRUE(ws->ok());
  ws->send_text(R"({"type":"utterance"})");
  ws->send_binary(tone_s16le(0.5, 16000));
  std::thread stopper([&] { server_->stop(); });
  until_closed(*ws);  // returns: the socket is closed
  stopper.join();
}

}  // namespace
}  // namespace lipsync
