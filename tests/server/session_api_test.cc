// The HTTP session API and the one registry of live sessions, against a real server on loopback
// ports: HTTP requests through a plain socket (exact bytes: chunked bodies, Expect, CORS), gRPC
// Live calls through the generated stub. (The WebRTC side is tested in a real browser:
// tests/browser/.)
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sndfile.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numbers>
#include <set>
#include <sstream>
#include <thread>

#include "avatar/avatar_import.h"
#include "client/live_client.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/http_api.h"
#include "server/server.h"
#include "support/http_client.h"
#include "support/sdp_offer.h"
#include "support/sse_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"
#include "support/wait.h"
#include "support/ws_client.h"
#include "webrtc/whep_sender.h"

namespace lipsync {
namespace {

using testing::eventually;

using lipsync::v1::LiveFrame;
using lipsync::v1::LiveRequest;
using lipsync::v1::StreamConfig;
using nlohmann::json;

constexpr const char* kToken = "s3cret";

class SessionApiTest : public ::testing::Test {
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
      c.server.http_timeout_s = 2;
      c.server.http_max_body_kb = 64;  // below the raw upload of a few seconds' speech
    });
    port_ = server_->http_port();
  }

  // A request with the token (unless `token` is empty) and Connection: close.
  testing::HttpResult request(const std::string& method, const std::string& target,
                              const std::string& body = "",
                              const std::string& type = "application/json",
                              const std::string& token = kToken, const std::string& extra = "") {
    std::string raw = method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    if (!token.empty()) raw += "Authorization: Bearer " + token + "\r\n";
    if (!body.empty()) raw += "Content-Type: " + type + "\r\n";
    raw += extra;
    raw += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return testing::http_exchange(port_, raw);
  }

  // The head of a speech upload to session `id` sent by hand: `type`, then `headers` (framing:
  // Content-Length or Transfer-Encoding, and anything else), then the blank line.
  static std::string speech_head(const std::string& id, const std::string& type,
                                 const std::string& headers) {
    return "POST /v1/sessions/" + id + "/speech HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           kToken + "\r\nContent-Type: " + type + "\r\n" + headers + "\r\n";
  }

  std::string create_session() {
    const auto r = request("POST", "/v1/sessions", "{}");
    EXPECT_EQ(r.status, 201) << r.body;
    return json::parse(r.body).at("id").get<std::string>();
  }

  json info(const std::string& id) {
    const auto r = request("GET", "/v1/sessions/" + id);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }

  std::unique_ptr<v1::LipSync::Stub> stub() {
    return v1::LipSync::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  // A gRPC Live call attached to session `id` (RAW frames), with the token; its config is sent.
  static std::unique_ptr<grpc::ClientReaderWriter<LiveRequest, LiveFrame>> attach(
      v1::LipSync::Stub& stub, grpc::ClientContext& ctx, const std::string& id) {
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    auto call = stub.Live(&ctx);
    LiveRequest config;
    config.mutable_config()->set_session_id(id);
    config.mutable_config()->set_format(StreamConfig::FORMAT_RAW);
    EXPECT_TRUE(call->Write(config));
    return call;
  }

  // `seconds` of a loud 200 Hz tone at 16 kHz, as s16le bytes.
  static std::string tone_s16le(double seconds) {
    std::string bytes;
    const int n = static_cast<int>(seconds * 16000);
    for (int i = 0; i < n; ++i) {
      const auto v =
          static_cast<std::int16_t>(12000 * std::sin(2 * std::numbers::pi * 200 * i / 16000.0));
      bytes.push_back(static_cast<char>(v & 0xff));
      bytes.push_back(static_cast<char>((v >> 8) & 0xff));
    }
    return bytes;
  }

  static testing::TempDir* dir_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
};

testing::TempDir* SessionApiTest::dir_ = nullptr;

TEST_F(SessionApiTest, SessionsAreCreatedListedAndDeleted) {
  const auto r = request("POST", "/v1/sessions", R"({"model": "demo", "start_frame": 2})");
  ASSERT_EQ(r.status, 201) << r.body;
  const json created = json::parse(r.body);
  const std::string id = created.at("id");
  EXPECT_EQ(created.at("whep"), "/v1/sessions/" + id + "/whep");
  EXPECT_EQ(created.at("format"), "raw");
  EXPECT_EQ(created.at("width"), 320);
  EXPECT_NE(r.headers.find("Location: /v1/sessions/" + id), std::string::npos) << r.headers;
  const json list = json::parse(request("GET", "/v1/sessions").body);
  ASSERT_EQ(list.at("sessions").size(), 1u);
  EXPECT_EQ(list["sessions"][0].at("id"), id);
  EXPECT_EQ(server_->http_sessions(), 1);
  EXPECT_TRUE(eventually([&] { return info(id).at("frames").get<int>() >= 3; }, 3000));
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  EXPECT_EQ(request("GET", "/v1/sessions/" + id).status, 404);
  EXPECT_EQ(server_->http_sessions(), 0);
}

TEST_F(SessionApiTest, BadRequestsGetJsonErrorsWithTheirStatus) {
  const auto no_token = request("GET", "/v1/sessions", "", "", "");
  EXPECT_EQ(no_token.status, 401);
  EXPECT_NE(no_token.headers.find("WWW-Authenticate: Bearer"), std::string::npos);
  EXPECT_NE(json::parse(no_token.body).at("error").get<std::string>().find("Bearer"),
            std::string::npos);
  EXPECT_EQ(request("GET", "/v1/sessions", "", "", "wrong").status, 401);
  EXPECT_EQ(request("POST", "/v1/sessions", R"({"model": "nope"})").status, 404);
  EXPECT_EQ(request("POST", "/v1/sessions", R"({"start_frame": "x"})").status, 400);
  EXPECT_EQ(request("POST", "/v1/sessions", R"({"start_frame": 99})").status, 400);
  EXPECT_EQ(request("POST", "/v1/sessions", "[1, 2").status, 400);
  // Bytes that are not UTF-8 are the client's error, answered in valid JSON.
  const auto not_utf8 = request("POST", "/v1/sessions", "{\"model\": \"\xff\xfe\"}");
  EXPECT_EQ(not_utf8.status, 400);
  EXPECT_NE(json::parse(not_utf8.body).at("error").get<std::string>().find("not valid JSON"),
            std::string::npos);
  EXPECT_EQ(request("GET", "/v1/sessions/none").status, 404);
  EXPECT_EQ(request("POST", "/v1/sessions/none/interrupt").status, 404);
  EXPECT_EQ(request("POST", "/v1/nothing").status, 404);
  const std::string id = create_session();
  EXPECT_EQ(request("PUT", "/v1/sessions/" + id).status, 405);
  EXPECT_EQ(request("GET", "/v1/sessions/" + id + "/say").status, 405);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/whep", "v=0", "text/plain").status, 400);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/whep", "garbage", "application/sdp").status,
            400);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/speech", "abc", "audio/L16").status, 400);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/speech", "abc",
                    "audio/s16le;rate=16000;"
                    "channels=2")
                .status,
            400);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/speech", "abc", "video/mp4").status, 400);
  EXPECT_EQ(
      request("POST", "/v1/sessions/" + id + "/speech", "abc", "audio/s16le;rate=16000").status,
      400);  // an odd byte count: half a sample
  // Each upload error says what is wrong with the request, never where the server keeps it.
  const auto speech_error = [&](const std::string& type) {
    const auto r = request("POST", "/v1/sessions/" + id + "/speech", "not a wav", type);
    EXPECT_EQ(r.status, 400) << type;
    return json::parse(r.body).at("error").get<std::string>();
  };
  EXPECT_EQ(speech_error("audio/wav").rfind("the speech body: not a readable audio file", 0), 0u);
  EXPECT_NE(speech_error("audio/s16le;rate=99999999").find("out of range"), std::string::npos);
  EXPECT_NE(speech_error("audio/s16le;rate=0").find("out of range"), std::string::npos);
  EXPECT_NE(speech_error("audio/s16le;rate=1e4").find("not a number"), std::string::npos);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/say", R"({"text": ""})").status, 400);
  // An unknown voice is refused naming the voices there are.
  const auto voice =
      request("POST", "/v1/sessions/" + id + "/say", R"({"text": "hi", "voice": "zz-zz"})");
  EXPECT_EQ(voice.status, 400);
  EXPECT_NE(voice.body.find("no voice 'zz-zz'; its "), std::string::npos) << voice.body;
  EXPECT_NE(voice.body.find(", en, "), std::string::npos) << voice.body;
  EXPECT_NE(voice.body.find(", de, "), std::string::npos) << voice.body;
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/say", std::string(5000, 'a')).status, 400);
  // The session is unharmed.
  EXPECT_EQ(info(id).at("state"), "idle");
}

TEST_F(SessionApiTest, CorsPreflightAndHeadersFollowTheConfiguredOrigins) {
  const auto ok = request("OPTIONS", "/v1/sessions", "", "", "",
                          "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n");
  EXPECT_EQ(ok.status, 204);
  EXPECT_NE(ok.headers.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos);
  EXPECT_NE(ok.headers.find("Authorization"), std::string::npos);
  const auto other = request("OPTIONS", "/v1/sessions", "", "", "", "Origin: http://evil\r\n");
  EXPECT_EQ(other.status, 403);
  const auto listed =
      request("GET", "/v1/sessions", "", "", kToken, "Origin: http://app.example\r\n");
  EXPECT_NE(listed.headers.find("Access-Control-Allow-Origin: http://app.example"),
            std::string::npos);
  EXPECT_NE(listed.headers.find("Access-Control-Expose-Headers: Location"), std::string::npos);
}

TEST_F(SessionApiTest, AChunkedRawUploadIsSpokenAndASecondUtteranceMeanwhileIsAConflict) {
  const std::string id = create_session();
  const std::string pcm = tone_s16le(1.5);
  // Chunked, Expect: 100-continue, pieces split inside samples, sent slowly.
  testing::RawConnection c(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.send(speech_head(id, "audio/s16le;rate=16000",
                                 "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
                                 "Connection: close\r\n")));
  EXPECT_NE(c.receive(std::chrono::milliseconds(500)).find("100 Continue"), std::string::npos);
  const std::size_t piece = 4001;  // odd: samples split across pieces
  for (std::size_t at = 0; at < pcm.size(); at += piece) {
    const std::string part = pcm.substr(at, piece);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    ASSERT_TRUE(c.send(size + part + "\r\n"));
    if (at == 0) {
      // While this upload is open, another utterance is refused.
      const auto busy = request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2),
                                "audio/s16le;rate=16000");
      EXPECT_EQ(busy.status, 409) << busy.body;
      EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/say", R"({"text": "hello"})").status, 409);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(c.send("0\r\n\r\n"));
  const std::string reply = c.receive(std::chrono::seconds(5));
  ASSERT_NE(reply.find("200 OK"), std::string::npos) << reply;
  const json body = json::parse(reply.substr(reply.find("\r\n\r\n") + 4));
  EXPECT_EQ(body.at("samples"), 24000);
  EXPECT_FALSE(body.at("open").get<bool>());
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 3000));
  // Interrupted: idle again at once (after the fade), and free for the next utterance.
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/interrupt").status, 200);
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "idle"; }, 1000));
  const auto said = request("POST", "/v1/sessions/" + id + "/say", R"({"text": "Hello there."})");
  ASSERT_EQ(said.status, 200) << said.body;
  EXPECT_GT(json::parse(said.body).at("seconds").get<double>(), 0.5);
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 3000));
}

// An upload cut by an interrupt says so, with the samples the session took; one whose session
// is deleted meanwhile gets 410.
TEST_F(SessionApiTest, Issue25_AnUploadCutMidwayAnswersWhatWasUsed) {
  const auto chunk = [](const std::string& part) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    return size + part + "\r\n";
  };
  const auto body_of = [](const std::string& reply) {
    return json::parse(reply.substr(reply.find("\r\n\r\n") + 4));
  };
  const std::string id = create_session();
  {
    testing::RawConnection c(port_);
    ASSERT_TRUE(c.send(speech_head(id, "audio/s16le;rate=16000",
                                   "Transfer-Encoding: chunked\r\nConnection: close\r\n")));
    ASSERT_TRUE(c.send(chunk(tone_s16le(0.5))));  // 8000 samples
    ASSERT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 3000));
    EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/interrupt").status, 200);
    ASSERT_TRUE(c.send(chunk(tone_s16le(0.5)) + "0\r\n\r\n"));  // dropped: it was cut
    const std::string reply = c.receive(std::chrono::seconds(5));
    ASSERT_NE(reply.find("200 OK"), std::string::npos) << reply;
    const json body = body_of(reply);
    EXPECT_TRUE(body.at("interrupted").get<bool>()) << body;
    EXPECT_EQ(body.at("samples"), 8000);
    EXPECT_EQ(body.at("samples_sent"), 16000);
    EXPECT_FALSE(body.at("open").get<bool>());
  }
  // Not cut: every sample, "interrupted": false.
  const auto whole =
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.25), "audio/s16le;rate=16000");
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(json::parse(whole.body).at("samples"), 4000);
  EXPECT_FALSE(json::parse(whole.body).at("interrupted").get<bool>());
  {
    testing::RawConnection c(port_);
    ASSERT_TRUE(c.send(speech_head(id, "audio/s16le;rate=16000",
                                   "Transfer-Encoding: chunked\r\nConnection: close\r\n")));
    ASSERT_TRUE(c.send(chunk(tone_s16le(0.5))));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
    c.send(chunk(tone_s16le(0.5)) + "0\r\n\r\n");
    const std::string reply = c.receive(std::chrono::seconds(5));
    EXPECT_NE(reply.find("410 Gone"), std::string::npos) << reply;
    if (reply.find("410 Gone") != std::string::npos) {
      EXPECT_NE(body_of(reply).at("error").get<std::string>().find("ended"), std::string::npos);
    }
  }
}

// Issue 24: how many speaking frames are shown on their tick, per session and per model.
TEST_F(SessionApiTest, Issue24_TheOnTimeFractionOfSpeechIsReportedPerSessionAndModel) {
  const std::string id = create_session();
  EXPECT_TRUE(info(id).at("speech_on_time").is_null());  // nothing said yet
  const auto r =
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(1.0), "audio/s16le;rate=16000");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(eventually([&] { return info(id).at("speech_frames").get<int>() >= 10; }, 5000));
  const json i = info(id);
  const double frames = i.at("speech_frames").get<double>();
  const double late = i.at("speech_late_frames").get<double>();
  EXPECT_LE(late, frames);
  EXPECT_DOUBLE_EQ(i.at("speech_on_time").get<double>(), 1.0 - late / frames);
  const std::string metrics = testing::http_get(port_, "/metrics").body;
  EXPECT_NE(metrics.find("lipsync_live_speech_frames_total{model=\"demo\"} "), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("lipsync_live_speech_late_frames_total{model=\"demo\"} "),
            std::string::npos);
  EXPECT_NE(metrics.find("lipsync_frames_skipped_total{model=\"demo\"} "), std::string::npos);
  // The live path's stages are timed like a request's (the alert rules read them).
  for (const char* stage : {"mel", "windows", "encoder", "composite"}) {
    EXPECT_NE(metrics.find("lipsync_stage_seconds_count{stage=\"" + std::string(stage) + "\"} "),
              std::string::npos)
        << stage;
  }
}

TEST_F(SessionApiTest, AWholeWavUploadAndAnUploadThatStaysOpenForTheNext) {
  const std::string id = create_session();
  const std::string wav = [] {
    std::ifstream in(testing::testdata("reference/speech_a_en.wav"), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  const auto r = request("POST", "/v1/sessions/" + id + "/speech", wav, "audio/wav");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GT(json::parse(r.body).at("seconds").get<double>(), 1.0);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/interrupt").status, 200);
  // ?continue=1 keeps the utterance open: the next piece belongs to it.
  const auto first = request("POST", "/v1/sessions/" + id + "/speech?continue=1", tone_s16le(0.3),
                             "audio/s16le;rate=16000");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_TRUE(json::parse(first.body).at("open").get<bool>());
  const auto last =
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.3), "audio/s16le;rate=16000");
  ASSERT_EQ(last.status, 200) << last.body;
  EXPECT_FALSE(json::parse(last.body).at("open").get<bool>());
}

// Issue 28: an MP3 (what a browser's file picker calls audio/mpeg) is speech like a WAV; AAC/M4A,
// which nothing here decodes, is refused saying what to send.
TEST_F(SessionApiTest, Issue28_AnMp3IsSpeechAndAnM4aIsRefusedSayingWhatToSend) {
  const std::string id = create_session();
  const std::string mp3 = [] {
    testing::TempDir dir;
    const std::string path = (dir / "speech.mp3").string();
    SF_INFO info{};
    info.samplerate = 16000;
    info.channels = 1;
    info.format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
    std::vector<float> tone(16000);
    for (std::size_t i = 0; i < tone.size(); ++i) {
      tone[i] = 0.4f * static_cast<float>(std::sin(2 * std::numbers::pi * 200 * i / 16000.0));
    }
    sf_write_float(f, tone.data(), static_cast<sf_count_t>(tone.size()));
    sf_close(f);
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  ASSERT_GT(mp3.size(), 1000u);
  for (const char* type : {"audio/mpeg", "application/octet-stream"}) {
    const auto r = request("POST", "/v1/sessions/" + id + "/speech", mp3, type);
    ASSERT_EQ(r.status, 200) << type << ": " << r.body;
    // One second, give or take the encoder's padding.
    EXPECT_NEAR(json::parse(r.body).at("seconds").get<double>(), 1.0, 0.1) << type;
  }
  const auto m4a = request("POST", "/v1/sessions/" + id + "/speech", mp3, "audio/x-m4a");
  EXPECT_EQ(m4a.status, 400);
  EXPECT_NE(m4a.body.find("send WAV, FLAC, OGG or MP3"), std::string::npos) << m4a.body;
}

// Issue 28: each HTTP request and gRPC call has its access-log line (method, path, status, time,
// bytes, address; a failed call's reason); the query, where an event stream's token travels, and
// the metadata are never in it; probes are at debug.
TEST_F(SessionApiTest, Issue28_EveryRequestAndCallHasAnAccessLogLineWithoutItsToken) {
  // Kept to the end of the program: a server thread may still hold the logger it got before the
  // default is put back.
  static auto* lines = new std::ostringstream;
  static const auto logger = std::make_shared<spdlog::logger>(
      "access-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*lines));
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  const std::string id = create_session();
  testing::SseClient sse(port_, "/v1/sessions/" + id + "/events?access_token=" + kToken);
  ASSERT_TRUE(eventually([&] { return !sse.head().empty(); }, 5000));
  EXPECT_EQ(request("GET", "/v1/sessions/nope").status, 404);
  EXPECT_EQ(testing::http_get(port_, "/healthz").status, 200);
  {  // and each gRPC call its line, with the reason of a failure
    auto s = stub();
    grpc::ClientContext ctx;
    auto call = attach(*s, ctx, "no-such-session");
    LiveFrame f;
    while (call->Read(&f)) {
    }
    EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  ASSERT_TRUE(eventually(
      [&] { return lines->str().find("grpc /lipsync.v1.LipSync/Live") != std::string::npos; },
      5000));
  spdlog::set_default_logger(previous);
  const std::string log = lines->str();
  EXPECT_NE(log.find("http POST '/v1/sessions' 201 "), std::string::npos) << log;
  EXPECT_NE(log.find("http GET '/v1/sessions/" + id + "/events' 200 "), std::string::npos) << log;
  EXPECT_NE(log.find(" (event stream) 127.0.0.1"), std::string::npos) << log;
  EXPECT_NE(log.find("http GET '/v1/sessions/nope' 404 "), std::string::npos) << log;
  EXPECT_NE(log.find("grpc /lipsync.v1.LipSync/Live NOT_FOUND "), std::string::npos) << log;
  EXPECT_NE(log.find("no-such-session"), std::string::npos) << log;
  EXPECT_EQ(log.find(kToken), std::string::npos) << "the token is in the log:\n" << log;
  EXPECT_EQ(log.find("/healthz"), std::string::npos) << "a probe at info:\n" << log;
}

TEST_F(SessionApiTest, AGrpcLiveCallAttachesToAnHttpSessionAndSeesItsSpeech) {
  const std::string id = create_session();
  auto s = stub();
  grpc::ClientContext ctx;
  auto call = attach(*s, ctx, id);
  LiveFrame frame;
  ASSERT_TRUE(call->Read(&frame));
  EXPECT_EQ(frame.session_id(), id);
  EXPECT_GT(frame.latency_ms(), 0);
  EXPECT_EQ(frame.frame().size(), 320u * 240u * 3u);
  const std::int64_t first = frame.index();
  // Speech from HTTP shows on the call; the call's interrupt reaches the session.
  ASSERT_EQ(
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(2.0), "audio/s16le;rate=16000")
          .status,
      200);
  bool speaking = false;
  for (int i = 0; i < 200 && call->Read(&frame); ++i) {
    EXPECT_EQ(frame.index(), first + i + 1);
    if (frame.state() == LiveFrame::SPEAKING) {
      speaking = true;
      break;
    }
  }
  EXPECT_TRUE(speaking);
  LiveRequest interrupt;
  interrupt.set_interrupt(true);
  ASSERT_TRUE(call->Write(interrupt));
  EXPECT_TRUE(eventually([&] { return info(id).at("state") == "idle"; }, 2000));
  // Half-closing detaches: the call ends OK, the session goes on.
  call->WritesDone();
  while (call->Read(&frame)) {
  }
  EXPECT_TRUE(call->Finish().ok());
  const auto frames = info(id).at("frames").get<int>();
  EXPECT_TRUE(eventually([&] { return info(id).at("frames").get<int>() > frames + 2; }, 2000));
}

TEST_F(SessionApiTest, GrpcSessionsAreInTheRegistryAndAttachingIsChecked) {
  auto s = stub();
  // Attaching to nothing, or in another format, is refused.
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    auto call = s->Live(&ctx);
    LiveRequest config;
    config.mutable_config()->set_session_id("nope");
    call->Write(config);
    LiveFrame frame;
    EXPECT_FALSE(call->Read(&frame));
    EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  const std::string http_id = create_session();
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    auto call = s->Live(&ctx);
    LiveRequest config;
    config.mutable_config()->set_session_id(http_id);  // JPEG by default; the session is raw
    call->Write(config);
    LiveFrame frame;
    EXPECT_FALSE(call->Read(&frame));
    const auto status = call->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("raw"), std::string::npos) << status.error_message();
  }
  // A session of a gRPC call: listed, driven over HTTP, gone with its call.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
  auto call = s->Live(&ctx);
  LiveRequest config;
  config.mutable_config()->set_model_id("demo");
  ASSERT_TRUE(call->Write(config));
  LiveFrame frame;
  ASSERT_TRUE(call->Read(&frame));
  const std::string id = frame.session_id();
  ASSERT_FALSE(id.empty());
  const json i = info(id);
  EXPECT_EQ(i.at("origin"), "grpc");
  EXPECT_EQ(i.at("format"), "jpeg");
  const auto whep = request("POST", "/v1/sessions/" + id + "/whep", "v=0\r\nm=video 9 x 96\r\n",
                            "application/sdp");
  EXPECT_EQ(whep.status, 400);
  EXPECT_NE(whep.body.find("sessions created over HTTP"), std::string::npos) << whep.body;
  ASSERT_EQ(
      request("POST", "/v1/sessions/" + id + "/say", R"({"text": "Hello from HTTP."})").status,
      200);
  bool speaking = false;
  for (int n = 0; n < 200 && call->Read(&frame); ++n) {
    if (frame.state() == LiveFrame::SPEAKING) {
      speaking = true;
      break;
    }
  }
  EXPECT_TRUE(speaking);
  ctx.TryCancel();
  while (call->Read(&frame)) {
  }
  call->Finish();
  EXPECT_TRUE(eventually([&] { return request("GET", "/v1/sessions/" + id).status == 404; }, 2000));
}

TEST_F(SessionApiTest, RawSpeechLongerThanTheBodyLimitStreamsWhileOtherBodiesAreLimited) {
  const std::string id = create_session();
  // 3 s of s16le is 96000 bytes, over server.http_max_body_kb (64 KiB): a streamed upload is
  // not a body read whole, so its Content-Length is not held against that limit.
  const auto r =
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(3.0), "audio/s16le;rate=16000");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).at("samples"), 48000);
  // A JSON body over the limit is refused from its Content-Length...
  const auto big = request("POST", "/v1/sessions/" + id + "/say",
                           R"({"text": ")" + std::string(70000, 'a') + R"("})");
  EXPECT_EQ(big.status, 413);
  // ...also before a client that asked sends it.
  testing::RawConnection c(port_);
  ASSERT_TRUE(c.send("POST /v1/sessions/" + id +
                     "/say HTTP/1.1\r\nHost: x\r\nAuthorization: "
                     "Bearer " +
                     std::string(kToken) +
                     "\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n"));
  const std::string answer = c.receive(std::chrono::seconds(4));
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_EQ(answer.find("100 Continue"), std::string::npos) << answer;
}

// Issue 24: a speech upload declaring 100 GB aborted the server in under 0.2 s (the body's
// reader reserved the declared length; std::bad_alloc escaped the I/O thread).
TEST_F(SessionApiTest, Issue24_ASpeechUploadDeclaring100GbIsRefusedFromItsHeader) {
  const std::string id = create_session();
  for (const std::string type : {"audio/s16le;rate=16000", "audio/L16;rate=16000",
                                 "audio/f32le;rate=48000", "audio/wav", "audio/flac"}) {
    testing::RawConnection c(port_);
    ASSERT_TRUE(c.send(speech_head(id, type, "Content-Length: 100000000000\r\n") +
                       std::string(4000, '\0')));
    const std::string answer = c.receive(std::chrono::seconds(4));
    EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << type << ": " << answer;
    EXPECT_NE(answer.find("application/json"), std::string::npos) << answer;
    EXPECT_NE(answer.find("100000000000"), std::string::npos) << answer;
  }
  // The server is still there, and the session still takes speech.
  EXPECT_EQ(request("GET", "/v1/sessions/" + id).status, 200);
  const auto r =
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.5), "audio/s16le;rate=16000");
  EXPECT_EQ(r.status, 200) << r.body;
}

// Issue 24: a streamed upload that cannot start (no token, busy session, unknown session) over
// the body limit got a plain-text 413 instead of its own JSON error.
TEST_F(SessionApiTest, Issue24_AStreamedUploadThatCannotStartGetsItsOwnJsonErrorAtOnce) {
  const std::string id = create_session();
  const std::string length = "Content-Length: 2000000\r\n";  // over http_max_body_kb (64)
  const auto first_line = [&](const std::string& head) {
    testing::RawConnection c(port_);
    EXPECT_TRUE(c.send(head + std::string(1000, '\0')));
    const std::string answer = c.receive(std::chrono::seconds(4));
    EXPECT_NE(answer.find("application/json"), std::string::npos) << answer;
    return answer.substr(0, answer.find("\r\n"));
  };
  std::string no_token = speech_head(id, "audio/s16le;rate=16000", length);
  no_token.erase(no_token.find("Authorization"),
                 no_token.find("Content-Type") - no_token.find("Authorization"));
  EXPECT_EQ(first_line(no_token), "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(first_line(speech_head("nosuch", "audio/s16le;rate=16000", length)),
            "HTTP/1.1 404 Not Found");
  EXPECT_EQ(first_line(speech_head(id, "text/plain", length)), "HTTP/1.1 400 Bad Request");
  // Busy: an open upload holds the session.
  testing::RawConnection open(port_);
  ASSERT_TRUE(
      open.send(speech_head(id, "audio/s16le;rate=16000", "Transfer-Encoding: chunked\r\n") +
                "2\r\n\0\0\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(first_line(speech_head(id, "audio/s16le;rate=16000", length)), "HTTP/1.1 409 Conflict");
}

// Issue 25 §2: the events of no tick (a viewer joining and leaving) reach an attached gRPC call on
// the next frame, with the seq and JSON every transport has; the last one, session_ended, is the
// call's trailing metadata.
TEST_F(SessionApiTest, Issue25_GrpcGetsViewerEventsOnTheNextFrameAndTheEndAsItsTrailer) {
  const std::string id = create_session();
  testing::SseClient sse(port_, "/v1/sessions/" + id + "/events",
                         std::string("Authorization: Bearer ") + kToken + "\r\n");
  auto s = stub();
  grpc::ClientContext ctx;
  auto call = attach(*s, ctx, id);
  std::mutex mutex;
  std::vector<v1::LiveEvent> events;  // guarded
  std::thread reader([&] {
    LiveFrame f;
    while (call->Read(&f)) {
      std::lock_guard lock(mutex);
      for (const auto& e : f.events()) events.push_back(e);
    }
  });
  const auto grpc_events = [&] {
    std::lock_guard lock(mutex);
    return events;
  };
  const auto r =
      request("POST", "/v1/sessions/" + id + "/whep", testing::whep_offer(), "application/sdp");
  ASSERT_EQ(r.status, 201) << r.body;
  const auto at = r.headers.find("/whep/");
  const std::string viewer = r.headers.substr(at + 6, r.headers.find('\r', at) - at - 6);
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id + "/whep/" + viewer).status, 204);
  const auto has = [](const std::vector<v1::LiveEvent>& all, const std::string& type) {
    return std::any_of(all.begin(), all.end(), [&](const auto& e) { return e.type() == type; });
  };
  ASSERT_TRUE(eventually([&] { return has(grpc_events(), "viewer_left"); }, 5000));
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  reader.join();
  const grpc::Status status = call->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // The trailer: session_ended, deleted.
  const auto& trailers = ctx.GetServerTrailingMetadata();
  const auto ended = trailers.find("lipsync-session-ended");
  ASSERT_NE(ended, trailers.end());
  const json end = json::parse(std::string(ended->second.data(), ended->second.size()));
  EXPECT_EQ(end.at("type"), "session_ended");
  EXPECT_EQ(end.at("reason"), "deleted");
  // The same events, numbers and JSON as the SSE subscriber's, in order.
  ASSERT_TRUE(sse.wait([](const auto&, bool closed) { return closed; }));
  const auto sent = sse.events();
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.back().data, end.dump()) << "the trailer is the stream's last event";
  std::map<std::int64_t, std::string> by_seq;
  for (const auto& e : sent) by_seq[std::stoll(e.id)] = e.data;
  const auto got = grpc_events();
  std::int64_t last = 0;
  int viewer_events = 0;
  for (const auto& e : got) {
    EXPECT_GT(e.seq(), last) << "in order";
    last = e.seq();
    ASSERT_TRUE(by_seq.count(e.seq())) << e.seq();
    EXPECT_EQ(e.json(), by_seq[e.seq()]);
    const json j = json::parse(e.json());
    if (e.type() == "viewer_joined") {
      EXPECT_EQ(j.at("viewers"), 1);
      ++viewer_events;
    } else if (e.type() == "viewer_left") {
      EXPECT_EQ(j.at("viewers"), 0);
      ++viewer_events;
    }
  }
  EXPECT_EQ(viewer_events, 2);
}

// Entries of a /proc/self folder (fd, task).
int count_entries(const char* folder) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(folder)) ++n;
  return n;
}

// Issue 24: every viewer that ended left 2 threads, about 20 descriptors and 4-10 MB behind (its
// pipeline was never freed: the bus handler kept every message it dropped), until the server ran
// out of descriptors after about 50 visits.
TEST_F(SessionApiTest, Issue24_ViewersThatEndLeaveNoThreadOrDescriptorBehind) {
  const auto visit = [&](const std::string& id) {
    const auto r =
        request("POST", "/v1/sessions/" + id + "/whep", testing::whep_offer(), "application/sdp");
    EXPECT_EQ(r.status, 201) << r.body;
    const auto at = r.headers.find("/whep/");
    return at == std::string::npos ? std::string()
                                   : r.headers.substr(at + 6, r.headers.find('\r', at) - at - 6);
  };
  std::string id = create_session();
  // The first viewer starts GStreamer's own threads, which stay: count after it.
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id + "/whep/" + visit(id)).status, 204);
  const int fds = count_entries("/proc/self/fd");
  const int threads = count_entries("/proc/self/task");
  for (int i = 0; i < 4; ++i) {  // ended by DELETE of the viewer
    const std::string viewer = visit(id);
    EXPECT_EQ(info(id).at("viewers"), 1);
    EXPECT_EQ(request("DELETE", "/v1/sessions/" + id + "/whep/" + viewer).status, 204);
  }
  for (int i = 0; i < 2; ++i) {  // ended with their session
    visit(id);
    EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
    id = create_session();
  }
  EXPECT_TRUE(eventually([&] { return webrtc::WhepSender::live_pipelines() == 0; }, 2000));
  // Before the fix: about 120 descriptors and 12 threads more.
  EXPECT_TRUE(eventually([&] { return count_entries("/proc/self/fd") <= fds + 2; }, 3000))
      << count_entries("/proc/self/fd") << " descriptors open, " << fds << " before";
  EXPECT_TRUE(eventually([&] { return count_entries("/proc/self/task") <= threads + 1; }, 3000))
      << count_entries("/proc/self/task") << " threads, " << threads << " before";
}

// Issue 24: session create, DELETE, WHEP negotiation, /say and file decoding shared 4 threads:
// 8 FLAC uploads delayed a session create to 15.1 s.
TEST_F(SessionApiTest, Issue24_FileDecodingNeverHoldsUpSessionCreateOrDelete) {
  testing::TempDir tmp;
  // 10 minutes at 48 kHz: decoding and resampling it takes a few hundred milliseconds.
  ASSERT_EQ(std::system(("sox -n -r 48000 -c 1 -b 16 '" + (tmp / "long.flac").string() +
                         "' synth 600 sine 300 2>/dev/null")
                            .c_str()),
            0);
  const std::string flac = testing::read_text(tmp / "long.flac");
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(create_session());
  const std::string doomed = create_session();
  std::vector<std::unique_ptr<testing::RawConnection>> uploads;
  for (const auto& id : ids) {
    uploads.push_back(std::make_unique<testing::RawConnection>(port_));
    ASSERT_TRUE(uploads.back()->send(speech_head(id, "audio/flac",
                                                 "Content-Length: " + std::to_string(flac.size()) +
                                                     "\r\nConnection: close\r\n") +
                                     flac));
  }
  // Every file is in and decoding (6 files, 4 media threads): control requests go first.
  const auto created = request("POST", "/v1/sessions", "{}");
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + doomed).status, 204);
  int answered_before = 0;
  for (auto& u : uploads) answered_before += u->readable(std::chrono::milliseconds(0));
  EXPECT_EQ(answered_before, 0) << "a control request waited for a file to be decoded";
  // Each file is decoded as it plays: its answer comes when it is all queued, or, as here, when
  // an interrupt cuts it.
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(eventually([&] { return info(ids[i]).at("state") == "speaking"; }, 20000));
    EXPECT_EQ(request("POST", "/v1/sessions/" + ids[i] + "/interrupt").status, 200);
    const std::string reply = uploads[i]->receive(std::chrono::seconds(30));
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply.substr(0, 200);
    EXPECT_NE(reply.find("\"interrupted\":true"), std::string::npos) << reply;
  }
}

// Issue 24: one session cannot take every media thread: at most 2 offers, texts or files at once.
TEST_F(SessionApiTest, Issue24_ASessionHasAtMostTwoMediaJobsAtOnce) {
  const std::string id = create_session();
  std::vector<std::thread> offers;
  std::atomic<int> created{0};
  std::atomic<int> refused{0};
  for (int i = 0; i < 6; ++i) {
    offers.emplace_back([&] {
      const auto r =
          request("POST", "/v1/sessions/" + id + "/whep", testing::whep_offer(), "application/sdp");
      if (r.status == 201) ++created;
      if (r.status == 429) {
        ++refused;
        EXPECT_NE(r.body.find("retry"), std::string::npos) << r.body;
      }
    });
  }
  for (auto& t : offers) t.join();
  EXPECT_EQ(created + refused, 6);
  EXPECT_GE(refused.load(), 1);  // six offers at once, each answered in about 0.3 s
  EXPECT_GE(created.load(), 2);
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
}

// Resident memory of this process, in MB.
double resident_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// Issue 25: what a session holds is bounded whatever brings the speech. Before, a 180 KB FLAC of
// an hour of silence cost about 1 GB once decoded (a decompression bomb), and 100 `say` calls one
// after another queued hours of speech. Now a file is decoded as it plays and a text is queued as
// the session plays it; each answers when its speech is queued. (Issue 24: after an interrupt
// and DELETE the freed speech stayed resident; it must go back to the system.)
TEST_F(SessionApiTest, Issue25_TheSpeechASessionHoldsIsBoundedWhateverBringsIt) {
  testing::TempDir tmp;
  ASSERT_EQ(std::system(("sox -D -n -r 16000 -c 1 -b 16 '" + (tmp / "hour.flac").string() +
                         "' trim 0 3600 2>/dev/null")
                            .c_str()),
            0);
  const std::string flac = testing::read_text(tmp / "hour.flac");
  ASSERT_LT(flac.size(), 1u << 20);  // an hour in less than a megabyte
  const std::string id = create_session();
  const double before = resident_mb();
  double most = before;
  // Five one-hour files one after another: each speaks a while, holding at most
  // live.max_buffered_s (30 s) of it, then is cut.
  for (int i = 0; i < 5; ++i) {
    testing::RawConnection upload(port_);
    ASSERT_TRUE(upload.send(speech_head(id, "audio/flac",
                                        "Content-Length: " + std::to_string(flac.size()) +
                                            "\r\nConnection: close\r\n") +
                            flac));
    const int frames = info(id).at("speech_frames").get<int>();
    ASSERT_TRUE(
        eventually([&] { return info(id).at("speech_frames").get<int>() >= frames + 25; }, 20000));
    most = std::max(most, resident_mb());
    EXPECT_FALSE(upload.readable(std::chrono::milliseconds(0)));  // not queued yet: no answer
    EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/interrupt").status, 200);
    const std::string reply = upload.receive(std::chrono::seconds(10));
    ASSERT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply.substr(0, 300);
    const json body = json::parse(reply.substr(reply.find("\r\n\r\n") + 4));
    EXPECT_TRUE(body.at("interrupted").get<bool>());
    EXPECT_LT(body.at("seconds").get<double>(), 60.0) << body;  // what was queued of the hour
  }
  // 100 texts one after another (each answered once queued; one arriving at a time, so one
  // sent while another is coming in gets 409): the session never holds more than its buffer.
  int spoken = 0;
  int busy = 0;
  const std::string text =
      R"({"text": "This is a long sentence that the avatar will take several seconds to say."})";
  for (int i = 0; i < 100; ++i) {
    testing::RawConnection c(port_);
    c.send("POST /v1/sessions/" + id + "/say HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           kToken + "\r\nContent-Type: application/json\r\nConnection: close\r\n" +
           "Content-Length: " + std::to_string(text.size()) + "\r\n\r\n" + text);
    // The client does not wait for the answer beyond a moment; the text is spoken anyway.
    const std::string reply = c.receive(std::chrono::milliseconds(50));
    spoken += reply.rfind("HTTP/1.1 200", 0) == 0 || reply.empty();
    busy += reply.rfind("HTTP/1.1 409", 0) == 0;
  }
  EXPECT_EQ(spoken + busy, 100);
  EXPECT_GE(busy, 50);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  most = std::max(most, resident_mb());
  EXPECT_EQ(info(id).at("state"), "speaking");
  std::printf("resident: %.0f MB before, at most %.0f MB while speaking the files and texts\n",
              before, most);
  EXPECT_LT(most - before, 200) << "a session held more than its speech buffer";
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  EXPECT_TRUE(eventually([&] { return resident_mb() < before + 300; }, 3000))
      << "resident: " << before << " MB before, " << most << " MB at most, " << resident_mb()
      << " MB after";
}

// Issue 24: smaller wrong answers of the session API.
TEST_F(SessionApiTest, Issue24_TheBearerSchemeIsCaseInsensitive) {
  for (const char* scheme : {"bearer", "BEARER", "Bearer  "}) {
    const auto r = request("GET", "/v1/sessions", "", "application/json", "",
                           std::string("Authorization: ") + scheme + " " + kToken + "\r\n");
    EXPECT_EQ(r.status, 200) << scheme << ": " << r.body;
  }
  EXPECT_EQ(request("GET", "/v1/sessions", "", "application/json", "",
                    "Authorization: Basic " + std::string(kToken) + "\r\n")
                .status,
            401);
  EXPECT_EQ(request("GET", "/v1/sessions", "", "application/json", "", "Authorization: bearer\r\n")
                .status,
            401);
}

TEST_F(SessionApiTest, Issue24_AJsonBodyWithAKeyTwiceIsRefused) {
  const auto r = request("POST", "/v1/sessions", R"({"model": "demo", "model": "other"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("the key 'model' is given twice"), std::string::npos) << r.body;
}

// Issue 24: espeak-ng ran the MBROLA program (not installed; it wrote to stderr) for mb-* voices.
TEST_F(SessionApiTest, Issue24_MbrolaVoicesAreRefused) {
  const std::string id = create_session();
  for (const char* voice : {"mb-en1", "mb-de4"}) {
    const auto r = request("POST", "/v1/sessions/" + id + "/say",
                           std::string(R"({"text": "hi", "voice": ")") + voice + "\"}");
    EXPECT_EQ(r.status, 400) << voice;
    EXPECT_NE(r.body.find("MBROLA"), std::string::npos) << r.body;
  }
}

TEST_F(SessionApiTest, Issue24_AHugeStartFrameIsReportedAsWritten) {
  const auto r = request("POST", "/v1/sessions", R"({"start_frame": 18446744073709551615})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("start_frame: 18446744073709551615 is out of range"), std::string::npos)
      << r.body;
  EXPECT_EQ(request("POST", "/v1/sessions", R"({"start_frame": -1})").status, 400);
}

TEST_F(SessionApiTest, Issue24_AnOddByteCountIsRefusedForBigEndianSpeechToo) {
  const std::string id = create_session();
  for (const char* type : {"audio/L16;rate=16000", "audio/s16le;rate=16000"}) {
    const auto r = request("POST", "/v1/sessions/" + id + "/speech", std::string(3, '\x01'), type);
    EXPECT_EQ(r.status, 400) << type << ": " << r.body;
    EXPECT_NE(r.body.find("incomplete sample"), std::string::npos) << r.body;
  }
}

TEST_F(SessionApiTest, Issue24_MalformedChunkedSpeechGetsA400) {
  const std::string id = create_session();
  testing::RawConnection c(port_);
  ASSERT_TRUE(c.send(speech_head(id, "audio/s16le;rate=16000", "Transfer-Encoding: chunked\r\n") +
                     "4\r\n\x01\x02\x03\x04\r\nzz\r\n"));
  const std::string answer = c.receive(std::chrono::seconds(4));
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  // The upload was dropped: the session takes the next one.
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/say", R"({"text": "Next."})").status, 200);
}

TEST_F(SessionApiTest, Issue24_DeletingAGrpcSessionEndsItsCallSayingSo) {
  auto s = stub();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
  auto call = s->Live(&ctx);
  LiveRequest config;
  config.mutable_config()->set_model_id("demo");
  ASSERT_TRUE(call->Write(config));
  LiveFrame frame;
  ASSERT_TRUE(call->Read(&frame));
  const std::string id = frame.session_id();
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  while (call->Read(&frame)) {
  }
  const grpc::Status status = call->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("was deleted"), std::string::npos)
      << status.error_message();
}

TEST_F(SessionApiTest, Issue25_APageOfAnotherOriginCannotPostWithoutAPreflight) {
  // What a page elsewhere can send without a preflight: text/plain and form bodies, and a
  // speech upload in a form type. Refused (403) with or without the token; the server's own
  // page (Origin = its Host) and the configured origin are served.
  const std::string evil = "Origin: http://evil.example\r\n";
  for (const char* type :
       {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}) {
    const auto r = request("POST", "/v1/sessions", "{}", type, kToken, evil);
    EXPECT_EQ(r.status, 403) << type << ": " << r.body;
    EXPECT_NE(r.body.find("server.cors_origins"), std::string::npos) << r.body;
    EXPECT_EQ(request("POST", "/v1/sessions", "{}", type, "", evil).status, 403) << type;
  }
  const std::string id = create_session();
  EXPECT_EQ(
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2), "text/plain", kToken, evil)
          .status,
      403);
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id, "", "", kToken, evil).status, 403);
  EXPECT_EQ(request("POST", "/v1/sessions/" + id + "/interrupt", "", "", kToken, evil).status, 403);
  EXPECT_EQ(
      request("POST", "/v1/sessions", "{}", "text/plain", kToken, "Origin: http://x\r\n").status,
      201);  // Host: x
  EXPECT_EQ(request("POST", "/v1/sessions", "{}", "application/json", kToken,
                    "Origin: http://app.example\r\n")
                .status,
            201);
  EXPECT_EQ(request("GET", "/v1/sessions", "", "", kToken, evil).status, 200);  // reads nothing
}

TEST_F(SessionApiTest, Issue25_AnUnusedSessionExpiresAndFreesItsPlace) {
  // A server of one session place whose unused sessions end after 1 s.
  const auto small = testing::start_test_server(*dir_ / "avatar", [](server::ServerConfig& c) {
    c.live.max_sessions = 1;
    c.live.session_idle_timeout_s = 1;
  });
  const int port = small->http_port();
  const auto call = [&](const std::string& method, const std::string& target) {
    return testing::http_exchange(port, method + " " + target +
                                            " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                            "Content-Length: 0\r\n\r\n");
  };
  const auto listed = [&] {
    return json::parse(call("GET", "/v1/sessions").body).at("sessions").size();
  };
  const auto r = call("POST", "/v1/sessions");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id = json::parse(r.body).at("id");
  EXPECT_LE(json::parse(r.body).at("expires_in_s").get<double>(), 1.0);
  EXPECT_EQ(call("POST", "/v1/sessions").status, 429);  // the one place is taken
  // Kept by keepalive (any request on it would do): 2.5 s of them, 300 ms apart.
  for (int i = 0; i < 8; ++i) {
    const auto k = call("POST", "/v1/sessions/" + id + "/keepalive");
    ASSERT_EQ(k.status, 200) << "keepalive " << i << ": " << k.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  // Kept by an open socket with nothing said on it.
  {
    testing::WsClient ws(port, "/v1/sessions/" + id + "/ws");
    ASSERT_TRUE(ws.ok()) << ws.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_EQ(listed(), 1u);
  }
  // Then unused (listing does not use it): it ends, and its place is free again.
  EXPECT_TRUE(eventually([&] { return listed() == 0; }, 4000));
  EXPECT_EQ(call("GET", "/v1/sessions/" + id).status, 404);
  EXPECT_EQ(call("POST", "/v1/sessions").status, 201);
}

TEST_F(SessionApiTest, Issue25_AnUtteranceLeftOpenEndsAfterItsTimeout) {
  // A server whose open utterances end after 1 s without audio.
  const auto small = testing::start_test_server(*dir_ / "avatar", [](server::ServerConfig& c) {
    c.live.utterance_idle_timeout_s = 1;
    c.live.latency_ms = 200;
  });
  const int port = small->http_port();
  const auto call = [&](const std::string& method, const std::string& target,
                        const std::string& body = "", const std::string& type = "text/plain") {
    return testing::http_exchange(
        port, method + " " + target +
                  " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Content-Type: " +
                  type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  const std::string id = json::parse(call("POST", "/v1/sessions", "{}").body).at("id");
  const auto state = [&] {
    return json::parse(call("GET", "/v1/sessions/" + id).body).at("state").get<std::string>();
  };
  // 0.3 s, and more promised (?continue=1) that never comes: the session speaks it, pads the
  // silence while it waits, and gives up after 1 s.
  const auto r = call("POST", "/v1/sessions/" + id + "/speech?continue=1", tone_s16le(0.3),
                      "audio/s16le;rate=16000");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(eventually([&] { return state() == "speaking"; }, 3000));
  EXPECT_TRUE(eventually([&] { return state() == "idle"; }, 5000));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(state(), "idle");  // for good
  // A socket that opens an utterance and goes quiet holds the session for 1 s only: then an
  // upload is taken (not 409).
  testing::WsClient ws(port, "/v1/sessions/" + id + "/ws");
  ASSERT_TRUE(ws.ok());
  ws.send_text(R"({"type":"utterance"})");
  ws.send_binary(tone_s16le(0.2));
  // Its messages are handled in order: once the ping's answer is back, the utterance is open.
  ws.send_text(R"({"type":"ping"})");
  for (auto m = ws.read(); m && json::parse(*m).at("type") != "pong"; m = ws.read()) {
  }
  ASSERT_TRUE(eventually(
      [&] {
        return call("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2),
                    "audio/s16le;rate=16000")
                   .status == 409;
      },
      1000));
  EXPECT_TRUE(eventually(
      [&] {
        return call("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2),
                    "audio/s16le;rate=16000")
                   .status == 200;
      },
      4000));
}

TEST_F(SessionApiTest, Issue25_GrpcAndHttpSpeechIntoOneSessionNeverInterleave) {
  const std::string id = create_session();
  // A socket's utterance is coming in: a gRPC call attached to the session that speaks ends
  // ABORTED, naming why; the socket's utterance is untouched.
  testing::WsClient ws(port_, "/v1/sessions/" + id + "/ws",
                       {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(ws.ok());
  ws.send_text(R"({"type":"utterance"})");
  ws.send_binary(tone_s16le(0.5));
  ws.send_text(R"({"type":"ping"})");
  while (auto m = ws.read()) {
    if (json::parse(*m).at("type") == "pong") break;
  }
  {
    auto s = stub();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    auto call = s->Live(&ctx);
    LiveRequest config;
    config.mutable_config()->set_session_id(id);
    config.mutable_config()->set_format(StreamConfig::FORMAT_RAW);
    ASSERT_TRUE(call->Write(config));
    LiveRequest speech;
    speech.set_speech(tone_s16le(0.2));
    call->Write(speech);
    LiveFrame frame;
    while (call->Read(&frame)) {
    }
    const grpc::Status status = call->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << status.error_message();
    EXPECT_NE(status.error_message().find("another utterance"), std::string::npos);
  }
  // The other way: while a gRPC call's utterance is open, an upload gets 409.
  ws.send_text(R"({"type":"segment_end"})");
  ASSERT_TRUE(eventually([&] { return info(id).at("state") == "idle"; }, 5000));
  auto s = stub();
  grpc::ClientContext ctx;
  auto call = attach(*s, ctx, id);
  LiveRequest speech;
  speech.set_speech(tone_s16le(0.2));
  ASSERT_TRUE(call->Write(speech));
  // Once it speaks, the call's utterance is surely open (no segment_end yet).
  ASSERT_TRUE(eventually([&] { return info(id).at("state") == "speaking"; }, 5000));
  EXPECT_EQ(
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2), "audio/s16le;rate=16000")
          .status,
      409);
  LiveRequest end;
  end.set_segment_end(true);
  ASSERT_TRUE(call->Write(end));
  EXPECT_TRUE(eventually(
      [&] {
        return request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2),
                       "audio/s16le;rate=16000")
                   .status == 200;
      },
      3000));
  ctx.TryCancel();
}

// One route table: a wrong method is 405 naming the methods, a socket's path without the upgrade
// 426; every answer to an allowed page, a streamed upload's too, carries its CORS headers.
TEST_F(SessionApiTest, Issue25_TheRouteTableAndCorsOnEveryAnswer) {
  const std::string id = create_session();
  const auto events = request("POST", "/v1/sessions/" + id + "/events", "{}");
  EXPECT_EQ(events.status, 405);
  EXPECT_NE(events.headers.find("Allow: GET"), std::string::npos) << events.headers;
  const auto keepalive = request("GET", "/v1/sessions/" + id + "/keepalive");
  EXPECT_EQ(keepalive.status, 405);
  EXPECT_NE(keepalive.headers.find("Allow: POST"), std::string::npos);
  EXPECT_EQ(request("GET", "/v1/sessions/" + id + "/ws").status, 426);
  EXPECT_EQ(request("GET", "/v1/sessions/" + id + "/dance").status, 404);
  EXPECT_EQ(request("GET", "/v1/sessions/" + id + "/whep/v0/more").status, 404);
  const std::string origin = "Origin: http://app.example\r\n";
  const auto upload = request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.2),
                              "audio/s16le;rate=16000", kToken, origin);
  EXPECT_EQ(upload.status, 200) << upload.body;
  EXPECT_NE(upload.headers.find("Access-Control-Allow-Origin: http://app.example"),
            std::string::npos)
      << upload.headers;
  const auto missing =
      request("POST", "/v1/sessions/nope/interrupt", "", "application/json", kToken, origin);
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.headers.find("Access-Control-Allow-Origin"), std::string::npos);
}

TEST_F(SessionApiTest, Issue25_AViewerTokenWatchesItsSessionOnly) {
  const auto created = request("POST", "/v1/sessions", "{}");
  ASSERT_EQ(created.status, 201);
  const std::string id = json::parse(created.body).at("id");
  const std::string viewer = json::parse(created.body).at("viewer_token");
  EXPECT_EQ(viewer.size(), 32u);
  EXPECT_FALSE(info(id).contains("viewer_token"));  // handed out once, by the create
  const std::string base = "/v1/sessions/" + id;
  // Watching: the session's state and WHEP (a bad offer is the offer's 400, not a 401).
  EXPECT_EQ(request("GET", base, "", "", viewer).status, 200);
  EXPECT_EQ(request("POST", base + "/whep", "v=0", "application/sdp", viewer).status, 400);
  EXPECT_EQ(request("DELETE", base + "/whep/nope", "", "", viewer).status, 404);
  // Not driving it, nor anything else.
  EXPECT_EQ(request("POST", base + "/say", R"({"text":"hi"})", "application/json", viewer).status,
            401);
  EXPECT_EQ(
      request("POST", base + "/speech", tone_s16le(0.2), "audio/s16le;rate=16000", viewer).status,
      401);
  EXPECT_EQ(request("POST", base + "/interrupt", "", "", viewer).status, 401);
  EXPECT_EQ(request("DELETE", base, "", "", viewer).status, 401);
  EXPECT_EQ(request("GET", "/v1/sessions", "", "", viewer).status, 401);
  EXPECT_EQ(request("POST", "/v1/sessions", "{}", "application/json", viewer).status, 401);
  testing::WsClient ws(port_, base + "/ws?access_token=" + viewer);
  EXPECT_EQ(ws.status(), 401);
  // Another session's token watches that one only; a token ends with its session.
  const auto other = json::parse(request("POST", "/v1/sessions", "{}").body);
  EXPECT_EQ(request("GET", base, "", "", other.at("viewer_token")).status, 401);
  EXPECT_EQ(request("DELETE", base).status, 204);
  EXPECT_EQ(request("GET", base, "", "", viewer).status, 401);
}

TEST_F(SessionApiTest, Issue25_TheTokenCoversGrpcCallsToo) {
  const std::string id = create_session();
  auto s = stub();
  // Live (attaching to the token-protected session, or a new one) and Stream: without the
  // token, with a wrong one, with the scheme in another case.
  const auto live = [&](const std::string& authorization, const std::string& session) {
    grpc::ClientContext ctx;
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    auto call = s->Live(&ctx);
    LiveRequest config;
    if (session.empty()) {
      config.mutable_config()->set_model_id("demo");
    } else {
      config.mutable_config()->set_session_id(session);
      config.mutable_config()->set_format(StreamConfig::FORMAT_RAW);
    }
    call->Write(config);
    LiveFrame frame;
    if (call->Read(&frame)) {
      ctx.TryCancel();  // served: that is all this needs to know
      while (call->Read(&frame)) {
      }
      call->Finish();
      return grpc::Status::OK;
    }
    return call->Finish();
  };
  for (const std::string& session : {id, std::string()}) {
    const grpc::Status none = live("", session);
    EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << session;
    EXPECT_NE(none.error_message().find("server.api_token"), std::string::npos)
        << none.error_message();
    EXPECT_EQ(live("Bearer wrong", session).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(live(std::string("Basic ") + kToken, session).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(live(std::string("bearer ") + kToken, session).ok()) << session;
  }
  {
    grpc::ClientContext ctx;
    auto call = s->Stream(&ctx);
    v1::StreamRequest config;
    config.mutable_config()->set_model_id("demo");
    call->Write(config);
    call->WritesDone();
    v1::StreamResponse response;
    while (call->Read(&response)) {
    }
    EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // The session was never touched (nor interrupted) by the refused calls.
  EXPECT_EQ(info(id).at("state"), "idle");
  // The reference live client (live-client, loadtest --live) sends its --token.
  client::LiveClientOptions o;
  o.target = "127.0.0.1:" + std::to_string(server_->grpc_port());
  client::LiveAction end;
  end.at_ms = 200;
  end.kind = client::LiveAction::Kind::kEnd;
  EXPECT_EQ(client::run_live_session(o, {end}).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  o.token = kToken;
  const auto served = client::run_live_session(o, {end});
  EXPECT_TRUE(served.status.ok()) << served.status.error_message();
  EXPECT_GT(served.frames, 0);
}

TEST_F(SessionApiTest, AnUploadThatStallsIsDroppedAndFreesTheSession) {
  const std::string id = create_session();
  testing::RawConnection c(port_);
  ASSERT_TRUE(c.send(speech_head(id, "audio/s16le;rate=16000", "Content-Length: 64000\r\n") +
                     tone_s16le(0.5)));
  // The client never sends the rest: within the timeout the server gives up on it...
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(4)));
  // ...and the session takes the next utterance.
  const auto said = request("POST", "/v1/sessions/" + id + "/say", R"({"text": "Next."})");
  EXPECT_EQ(said.status, 200) << said.body;
}

TEST_F(SessionApiTest, TheDemoPageIsServedFromTheBinary) {
  const auto page = testing::http_get(port_, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.headers.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("/v1/sessions"), std::string::npos);
  EXPECT_NE(page.body.find("RTCPeerConnection"), std::string::npos);
  EXPECT_EQ(page.body.find("http://"), std::string::npos) << "the page must not load from a CDN";
}

TEST_F(SessionApiTest, ShutdownEndsHttpSessionsAndOpenUploads) {
  const std::string id = create_session();
  testing::RawConnection c(port_);
  ASSERT_TRUE(c.send(speech_head(id, "audio/f32le;rate=16000", "Transfer-Encoding: chunked\r\n") +
                     "8\r\n" + std::string(8, '\0') + "\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
  EXPECT_EQ(server_->http_sessions(), 0);
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(1)));
}

// Issue 26: session ids name their instance; a drain refuses new work at once and lets the live
// sessions go on; POST /v1/admin/drain needs the token itself.
TEST_F(SessionApiTest, Issue26_ADrainRefusesNewSessionsAndLetsTheLiveOnesGoOn) {
  const std::string id = create_session();
  const std::string instance = server::ServerOptions{}.resolved_instance_id();
  EXPECT_EQ(id.rfind(instance + ".", 0), 0u) << id;
  EXPECT_EQ(testing::http_get(port_, "/readyz").status, 200);
  const json created = json::parse(request("POST", "/v1/sessions", "{}").body);
  // A viewer token cannot drain; GET is not a drain.
  EXPECT_EQ(request("POST", "/v1/admin/drain", "", "application/json",
                    created.at("viewer_token").get<std::string>())
                .status,
            401);
  EXPECT_EQ(request("GET", "/v1/admin/drain").status, 405);
  EXPECT_FALSE(server_->draining());
  // The drain.
  testing::SseClient events(port_, "/v1/sessions/" + id + "/events",
                            std::string("Authorization: Bearer ") + kToken + "\r\n");
  const auto drain = request("POST", "/v1/admin/drain");
  ASSERT_EQ(drain.status, 202) << drain.body;
  EXPECT_EQ(json::parse(drain.body).at("sessions"), 2);
  EXPECT_TRUE(server_->draining());
  const auto ready = testing::http_get(port_, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "draining\n");
  const auto refused = request("POST", "/v1/sessions", "{}");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("is draining"), std::string::npos) << refused.body;
  EXPECT_NE(refused.headers.find("Retry-After: 1"), std::string::npos) << refused.headers;
  // New gRPC work is refused: a Stream call, a Live call that would make a session.
  auto s = stub();
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    auto call = s->Stream(&ctx);
    v1::StreamRequest config;
    config.mutable_config()->set_model_id("demo");
    call->Write(config);
    call->WritesDone();
    v1::StreamResponse response;
    while (call->Read(&response)) {
    }
    EXPECT_EQ(call->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    auto call = s->Live(&ctx);
    LiveRequest config;
    config.mutable_config()->set_model_id("demo");
    call->Write(config);
    LiveFrame frame;
    while (call->Read(&frame)) {
    }
    const grpc::Status status = call->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(status.error_message().find("draining"), std::string::npos) << status.error_message();
  }
  // The live sessions go on: speech is taken and played; a call attaches to one.
  const auto spoken =
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.5), "audio/s16le;rate=16000");
  EXPECT_EQ(spoken.status, 200) << spoken.body;
  ASSERT_TRUE(events.wait([](const auto& e, bool) {
    return std::any_of(e.begin(), e.end(),
                       [](const auto& x) { return x.event == "playback_finished"; });
  }));
  {
    grpc::ClientContext ctx;
    auto call = attach(*s, ctx, id);
    LiveFrame frame;
    EXPECT_TRUE(call->Read(&frame));
    EXPECT_EQ(frame.session_id(), id);
    ctx.TryCancel();
  }
  EXPECT_FALSE(server_->drained());
  // Once they have ended, the drain is done.
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + created.at("id").get<std::string>()).status, 204);
  EXPECT_TRUE(eventually([&] { return server_->drained(); }, 5000));
}

// Issue 26: the load report. An instance at or above server.load_threshold is not ready for new
// sessions (/readyz says why) and says so on GET /v1/load and /metrics; it serves the ones it has.
TEST_F(SessionApiTest, Issue26_AnInstanceAtItsLoadThresholdIsNotReadyAndSaysWhy) {
  server_->stop();
  server_ = testing::start_test_server(*dir_ / "avatar", [](server::ServerConfig& c) {
    c.server.api_token = kToken;
    c.server.instance_id = "pod-7";
    c.server.load_threshold = 0.5;
    c.live.max_sessions = 2;
  });
  port_ = server_->http_port();
  const auto load = [&] {
    const auto r = request("GET", "/v1/load");
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  };
  EXPECT_EQ(request("GET", "/v1/load", "", "application/json", "").status, 401);
  // A route like the others: HEAD is taken, and a 405 lists both.
  const auto head = request("HEAD", "/v1/load");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  const auto post = request("POST", "/v1/load");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD\r\n"), std::string::npos) << post.headers;
  json l = load();
  EXPECT_EQ(l.at("instance"), "pod-7");
  EXPECT_EQ(l.at("sessions"), 0);
  EXPECT_EQ(l.at("max_sessions"), 2);
  EXPECT_EQ(l.at("load"), 0.0);
  EXPECT_TRUE(l.at("accepting").get<bool>());
  EXPECT_EQ(testing::http_get(port_, "/readyz").status, 200);
  // One session of two: load 0.5, the threshold.
  const std::string id = create_session();
  EXPECT_EQ(id.rfind("pod-7.", 0), 0u) << id;
  l = load();
  EXPECT_EQ(l.at("sessions"), 1);
  EXPECT_DOUBLE_EQ(l.at("load").get<double>(), 0.5);
  EXPECT_FALSE(l.at("accepting").get<bool>());
  const auto ready = testing::http_get(port_, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "overloaded: load 0.50 is at or above server.load_threshold 0.50\n");
  const std::string metrics = testing::http_get(port_, "/metrics").body;
  for (const char* line : {"lipsync_load 0.5\n", "lipsync_accepting 0\n", "lipsync_draining 0\n",
                           "lipsync_live_max_sessions 2\n", "lipsync_generator_busy_ratio ",
                           "lipsync_live_late_frames_recent "}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line;
  }
  // It serves the session it has.
  EXPECT_EQ(
      request("POST", "/v1/sessions/" + id + "/speech", tone_s16le(0.3), "audio/s16le;rate=16000")
          .status,
      200);
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  EXPECT_TRUE(eventually([&] { return testing::http_get(port_, "/readyz").status == 200; }, 5000));
  EXPECT_TRUE(load().at("accepting").get<bool>());
}

// docs/openapi.yaml documents the /v1 API: every route the server has is there with its
// methods and nothing else is, and every documented path and method answers on a running server
// (not 404 or 405: the route is there; what a bare request sends may still be refused).
TEST_F(SessionApiTest, TheOpenApiDocumentIsTheRouteTable) {
  const YAML::Node doc = YAML::LoadFile(std::string(LIPSYNC_SOURCE_DIR) + "/docs/openapi.yaml");
  ASSERT_EQ(doc["openapi"].as<std::string>().substr(0, 2), "3.");
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& path : doc["paths"]) {
    for (const auto& field : path.second) {
      std::string method = field.first.as<std::string>();
      if (method == "parameters" || method == "summary" || method == "description") continue;
      for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.emplace(method, path.first.as<std::string>());
    }
  }
  const auto routes = server::v1_routes();
  const std::set<std::pair<std::string, std::string>> served(routes.begin(), routes.end());
  for (const auto& [method, path] : served) {
    EXPECT_TRUE(documented.contains({method, path}))
        << "not in the document: " << method << " " << path;
  }
  for (const auto& [method, path] : documented) {
    EXPECT_TRUE(served.contains({method, path})) << "not a route: " << method << " " << path;
  }

  const auto replace = [](std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  };
  for (const auto& [method, path] : documented) {
    if (path == "/v1/admin/drain") continue;  // last: it stops the sessions API
    const std::string id = create_session();
    std::string target = replace(path, "{id}", id);
    if (target.find("{viewer}") != std::string::npos) {
      const auto r =
          request("POST", "/v1/sessions/" + id + "/whep", testing::whep_offer(), "application/sdp");
      ASSERT_EQ(r.status, 201) << r.body;
      const auto at = r.headers.find("/whep/");
      target =
          replace(target, "{viewer}", r.headers.substr(at + 6, r.headers.find('\r', at) - at - 6));
    }
    testing::HttpResult r;
    if (path.ends_with("/events")) {  // a stream: its head is the answer
      r = testing::http_exchange(
          port_,
          "GET " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken + "\r\n\r\n",
          std::chrono::milliseconds(1000));
    } else {
      r = request(method, target);
    }
    EXPECT_TRUE(r.status != 0 && r.status != 404 && r.status != 405)
        << method << " " << path << ": " << r.status << " " << r.body;
    request("DELETE", "/v1/sessions/" + id);
  }
  EXPECT_EQ(request("POST", "/v1/admin/drain").status, 202);
}

// A session deleted while it speaks: the utterance being played gets its playback_finished
// (interrupted, with what was heard of it) before session_ended, so every playback_started has
// its end (a voice agent waits for each segment's).
TEST_F(SessionApiTest, ASessionDeletedMidSpeechFinishesItsPlaybackFirst) {
  const std::string id = create_session();
  testing::SseClient sse(port_, "/v1/sessions/" + id + "/events",
                         "Authorization: Bearer " + std::string(kToken) + "\r\n");
  ASSERT_EQ(request("POST", "/v1/sessions/" + id + "/say",
                    R"({"text": "This sentence is long enough to be cut short when the session )"
                    R"(is deleted in the middle of it, well before its end."})")
                .status,
            200);
  const auto has = [](const std::vector<testing::SseEvent>& all, const std::string& type) {
    return std::any_of(all.begin(), all.end(), [&](const auto& e) { return e.event == type; });
  };
  ASSERT_TRUE(sse.wait([&](const auto& all, bool) { return has(all, "playback_started"); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // some of it heard
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  ASSERT_TRUE(sse.wait([](const auto&, bool closed) { return closed; }));
  const auto all = sse.events();
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all.back().event, "session_ended");
  const auto finished = std::find_if(all.begin(), all.end(),
                                     [](const auto& e) { return e.event == "playback_finished"; });
  ASSERT_NE(finished, all.end()) << "no playback_finished before session_ended";
  const json j = json::parse(finished->data);
  EXPECT_EQ(j.at("utterance"), 0);
  EXPECT_TRUE(j.at("interrupted").get<bool>());
  EXPECT_GT(j.at("playback_position_s").get<double>(), 0.2);
  EXPECT_LT(j.at("playback_position_s").get<double>(), 3.0);
  EXPECT_EQ(std::count_if(all.begin(), all.end(),
                          [](const auto& e) { return e.event == "playback_finished"; }),
            1);
}

}  // namespace
}  // namespace lipsync
