// The playback events (issue 25 §2): the event log on its own (numbering, backlog, resume), and
// a real server on loopback driven over the WebSocket by a scripted agent while an SSE
// subscriber (with the session's viewer token) and an attached gRPC Live call watch: the three
// transports carry the same events, and the events match the frames (playback_started on the
// utterance's first SPEAKING frame, playback_finished on the tick after its last one, the
// position to the sample), with interrupts at random points.
#include "server/session_events.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <thread>

#include "audio/video_frames.h"
#include "avatar/avatar_import.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "server/server.h"
#include "support/http_client.h"
#include "support/sse_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"
#include "support/wait.h"
#include "support/ws_client.h"

namespace lipsync {
namespace {

using lipsync::v1::LiveFrame;
using lipsync::v1::LiveRequest;
using lipsync::v1::StreamConfig;
using nlohmann::json;
using pipeline::LiveEvent;

constexpr const char* kToken = "s3cret";

TEST(SessionEventsTest, NumbersWritesKeepsTheLast256AndResumes) {
  server::SessionEvents events;
  std::vector<std::string> live;
  for (int i = 0; i < 300; ++i) {
    LiveEvent e;
    e.type = LiveEvent::Type::kPlaybackFinished;
    e.tick = i;
    e.utterance = i;
    e.samples = 8000;
    e.interrupted = i % 2 == 1;
    events.publish(e);
    EXPECT_EQ(e.seq, i + 1);
    if (i == 1) {
      EXPECT_EQ(json::parse(e.json), json::parse(R"({"type":"playback_finished","seq":2,
          "utterance":1,"playback_position_s":0.5,"interrupted":true,"pts_ms":40})"));
    }
  }
  // A subscriber resuming after 250 gets 251..300, then the new ones.
  std::vector<std::int64_t> seen;
  const int id = events.subscribe(250, [&](const LiveEvent& e) { seen.push_back(e.seq); });
  ASSERT_EQ(seen.size(), 50u);
  EXPECT_EQ(seen.front(), 251);
  // One too old for the backlog gets all 256 kept.
  int old = 0;
  const int id2 = events.subscribe(3, [&](const LiveEvent&) { ++old; });
  EXPECT_EQ(old, 256);
  LiveEvent ended;
  ended.type = LiveEvent::Type::kSessionEnded;
  ended.reason = "deleted";
  events.publish(ended);
  EXPECT_EQ(seen.back(), 301);
  EXPECT_EQ(json::parse(ended.json).at("reason"), "deleted");
  // Nothing after the end.
  LiveEvent late;
  events.publish(late);
  EXPECT_EQ(late.seq, 0);
  EXPECT_TRUE(events.ended());
  events.unsubscribe(id);
  events.unsubscribe(id2);
  EXPECT_EQ(events.subscribers(), 0);
}

// `seconds` of a 200 Hz tone at `rate`, as s16le bytes.
std::string tone_s16le(double seconds, int rate) {
  std::string bytes;
  const int n = static_cast<int>(std::lround(seconds * rate));
  for (int i = 0; i < n; ++i) {
    const auto v =
        static_cast<std::int16_t>(12000 * std::sin(2 * std::numbers::pi * 200 * i / rate));
    bytes.push_back(static_cast<char>(v & 0xff));
    bytes.push_back(static_cast<char>((v >> 8) & 0xff));
  }
  return bytes;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

// The frames an attached gRPC Live call receives, on its own thread.
class FrameWatcher {
 public:
  FrameWatcher(int port, const std::string& session) {
    stub_ = v1::LipSync::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                     grpc::InsecureChannelCredentials()));
    ctx_.AddMetadata("authorization", std::string("Bearer ") + kToken);
    call_ = stub_->Live(&ctx_);
    LiveRequest config;
    config.mutable_config()->set_session_id(session);
    config.mutable_config()->set_format(StreamConfig::FORMAT_RAW);
    call_->Write(config);
    thread_ = std::thread([this] {
      LiveFrame f;
      while (call_->Read(&f)) {
        f.clear_frame();  // the pictures are not needed here
        std::lock_guard lock(mutex_);
        frames_.push_back(f);
      }
      std::lock_guard lock(mutex_);
      ended_ = true;
      ended_changed_.notify_all();
    });
  }
  ~FrameWatcher() {
    ctx_.TryCancel();
    thread_.join();
  }
  std::vector<LiveFrame> frames() {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  // Whether the call has ended (the server closed it: every frame it sent has been read) within
  // `timeout`.
  bool wait_ended(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return ended_changed_.wait_for(lock, timeout, [this] { return ended_; });
  }

 private:
  std::unique_ptr<v1::LipSync::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<LiveRequest, LiveFrame>> call_;
  std::mutex mutex_;
  std::condition_variable ended_changed_;
  std::vector<LiveFrame> frames_;  // guarded by mutex_
  bool ended_ = false;             // guarded by mutex_
  std::thread thread_;
};

class SessionEventsServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    avatar::write_demo_avatar(*dir_ / "avatar", 5, 320, 240);
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    server_ = testing::start_test_server(
        *dir_ / "avatar", [](server::ServerConfig& c) { c.server.api_token = kToken; });
    port_ = server_->http_port();
  }

  testing::HttpResult request(const std::string& method, const std::string& target,
                              const std::string& body = "", const std::string& token = kToken) {
    std::string raw = method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                      "Authorization: Bearer " + token + "\r\nContent-Type: application/json\r\n";
    raw += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return testing::http_exchange(port_, raw);
  }

  // One agent turn on the WebSocket: an utterance of `seconds` at `rate`, cut by an interrupt
  // `interrupt_after` after it was sent (none: it plays out); returns the playback_finished the
  // socket got for it, and when.
  struct Turn {
    int utterance = -1;
    std::int64_t received = 0;  // 16 kHz samples
    json finished;
    double interrupt_to_finished_ms = -1;
    double finished_to_started_ms = -1;  // from the previous turn's finished to this start
  };
  Turn turn(testing::WsClient& ws, int number, double seconds, int rate,
            std::optional<std::chrono::milliseconds> interrupt_after,
            std::chrono::steady_clock::time_point previous_finished) {
    Turn t;
    t.utterance = number;
    t.received = std::lround(seconds * 16000);
    EXPECT_TRUE(ws.send_text(R"({"type":"utterance","sample_rate":)" + std::to_string(rate) +
                             R"(,"encoding":"s16le"})"));
    const std::string pcm = tone_s16le(seconds, rate);
    for (std::size_t at = 0; at < pcm.size(); at += 3000) ws.send_binary(pcm.substr(at, 3000));
    EXPECT_TRUE(ws.send_text(R"({"type":"segment_end"})"));
    std::chrono::steady_clock::time_point interrupted{};
    if (interrupt_after) {
      std::this_thread::sleep_for(*interrupt_after);
      interrupted = std::chrono::steady_clock::now();
      EXPECT_TRUE(ws.send_text(R"({"type":"interrupt"})"));
    }
    for (;;) {
      const auto m = ws.read(std::chrono::seconds(20));
      if (!m) {
        ADD_FAILURE() << "no playback_finished for utterance " << number;
        return t;
      }
      const json e = json::parse(*m);
      const auto now = std::chrono::steady_clock::now();
      if (e.at("type") == "playback_started" && e.at("utterance") == number) {
        t.finished_to_started_ms =
            std::chrono::duration<double, std::milli>(now - previous_finished).count();
      }
      if (e.at("type") == "playback_finished" && e.at("utterance") == number) {
        t.finished = e;
        if (interrupt_after) {
          t.interrupt_to_finished_ms =
              std::chrono::duration<double, std::milli>(now - interrupted).count();
        }
        return t;
      }
    }
  }

  // Checks the events of `sse` (every event), `frames` (the attached call's) and the turns
  // against each other.
  void check(const std::vector<testing::SseEvent>& sse, const std::vector<LiveFrame>& frames,
             const std::vector<Turn>& turns) {
    std::map<std::int64_t, json> by_seq;
    for (const auto& e : sse) {
      const json j = json::parse(e.data);
      EXPECT_EQ(std::to_string(j.at("seq").get<std::int64_t>()), e.id);
      EXPECT_EQ(j.at("type"), e.event);
      by_seq[j.at("seq").get<std::int64_t>()] = j;
    }
    // Numbered 1, 2, ... without a gap.
    ASSERT_FALSE(by_seq.empty());
    EXPECT_EQ(by_seq.begin()->first, 1);
    EXPECT_EQ(by_seq.rbegin()->first, static_cast<std::int64_t>(by_seq.size()));
    // Per utterance, from the frames: first and last SPEAKING tick, the samples heard.
    struct Seen {
      std::int64_t first = -1, last = -1, heard = 0;
      int underruns = 0;
      std::int64_t started_on = -1, finished_on = -1;
      json finished;
    };
    std::map<int, Seen> seen;
    // What each utterance brought, at 16 kHz (a resampled one's count is the resampler's), and
    // the silence its underruns inserted.
    std::map<int, std::int64_t> received;
    std::map<int, std::int64_t> inserted;
    for (const auto& [seq, j] : by_seq) {
      if (j.at("type") == "underrun") inserted[j.at("utterance")] += j.at("ms").get<int>();
      if (j.at("type") == "utterance_queued") {
        received[j.at("utterance")] = std::lround(j.at("seconds_received").get<double>() * 16000);
      }
    }
    for (const auto& t : turns) {
      // One cut before it had all come has none: what was sent (at 16 kHz in those tests).
      const auto [it, fresh] = received.try_emplace(t.utterance, t.received);
      EXPECT_NEAR(static_cast<double>(it->second), static_cast<double>(t.received), 32)
          << "utterance " << t.utterance << (fresh ? " (not queued)" : "");
    }
    for (const auto& f : frames) {
      for (const auto& e : f.events()) {
        const json j = json::parse(e.json());
        EXPECT_EQ(j.at("seq").get<std::int64_t>(), e.seq());
        EXPECT_EQ(j.at("type"), e.type());
        EXPECT_EQ(by_seq[e.seq()], j) << "gRPC and SSE differ at seq " << e.seq();
        if (e.type() == "playback_started") seen[j.at("utterance")].started_on = f.index();
        if (e.type() == "playback_finished") {
          seen[j.at("utterance")].finished_on = f.index();
          seen[j.at("utterance")].finished = j;
        }
        if (e.type() == "state") {
          EXPECT_EQ(j.at("pts_ms"), f.pts_ms());
        }
      }
      if (f.state() != LiveFrame::SPEAKING) continue;
      Seen& s = seen[f.utterance()];
      if (s.first < 0) s.first = f.index();
      s.last = f.index();
      if (f.underrun()) {
        ++s.underruns;
      } else {
        s.heard += std::clamp<std::int64_t>(received[f.utterance()] - f.sample(), 0, 640);
      }
    }
    for (const auto& t : turns) {
      const Seen& s = seen[t.utterance];
      SCOPED_TRACE("utterance " + std::to_string(t.utterance) + " (" + std::to_string(s.underruns) +
                   " underrun frames, " + std::to_string(inserted[t.utterance]) + " ms inserted)");
      const bool ran_dry = s.underruns > 0 || inserted[t.utterance] > 0;
      ASSERT_FALSE(t.finished.is_null());
      EXPECT_EQ(s.finished, t.finished);  // the WebSocket's is the same event
      EXPECT_EQ(by_seq[t.finished.at("seq")], t.finished);
      const auto position = std::lround(t.finished.at("playback_position_s").get<double>() * 16000);
      if (s.first < 0) {  // cut before its first frame
        EXPECT_TRUE(t.finished.at("interrupted").get<bool>());
        EXPECT_EQ(position, 0);
        EXPECT_EQ(s.started_on, -1);
        continue;
      }
      EXPECT_EQ(s.started_on, s.first);      // on its first SPEAKING frame
      EXPECT_EQ(s.finished_on, s.last + 1);  // on the tick after its last: never before it
      EXPECT_EQ(t.finished.at("pts_ms"), audio::frame_pts_ms(s.last + 1));
      // Exact where the session inserted no silence (its underrun events say so; a frame's
      // flag cannot show a gap that begins inside it); never more than the frames carried.
      if (!ran_dry) {
        EXPECT_EQ(position, s.heard);
      } else {
        EXPECT_LE(position, s.heard);
      }
      // Played out: its frames are the clip's (plus any silence an underrun inserted).
      if (!t.finished.at("interrupted").get<bool>() && !ran_dry) {
        EXPECT_EQ(s.last - s.first + 1, audio::clip_frames_for_samples(received[t.utterance]));
      }
    }
  }

  static testing::TempDir* dir_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
};

testing::TempDir* SessionEventsServerTest::dir_ = nullptr;

// An agent over the WebSocket: 20 turns of 24 kHz speech sent faster than real time, each
// after the last one's playback_finished, 8 barged in at random points.
TEST_F(SessionEventsServerTest, AnAgentSimulationOfTwentyTurnsWithEightBargeIns) {
  const auto created = json::parse(request("POST", "/v1/sessions", "{}").body);
  const std::string id = created.at("id");
  const std::string viewer = created.at("viewer_token");
  testing::SseClient sse(port_, "/v1/sessions/" + id + "/events?access_token=" + viewer);
  ASSERT_TRUE(testing::eventually([&] { return !sse.head().empty(); }, 5000));
  EXPECT_NE(sse.head().find("200 OK"), std::string::npos) << sse.head();
  EXPECT_NE(sse.head().find("text/event-stream"), std::string::npos);
  FrameWatcher watcher(server_->grpc_port(), id);
  testing::WsClient ws(port_, "/v1/sessions/" + id + "/ws",
                       {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(ws.ok());

  std::mt19937 rng(25);
  std::vector<int> barged(20, 0);
  for (int i = 0; i < 8; ++i) barged[i] = 1;
  std::shuffle(barged.begin(), barged.end(), rng);
  std::vector<Turn> turns;
  auto last = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    const double seconds = std::uniform_real_distribution<double>(0.4, 1.2)(rng);
    std::optional<std::chrono::milliseconds> cut;
    if (barged[i]) {
      cut = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1400)(rng));
    }
    turns.push_back(turn(ws, i, seconds, 24000, cut, last));
    last = std::chrono::steady_clock::now();
  }
  // Turns are never lost nor overlapped: each started after the one before finished.
  std::vector<double> gaps;
  std::vector<double> acks;
  for (const auto& t : turns) {
    if (t.finished_to_started_ms >= 0 && t.utterance > 0) gaps.push_back(t.finished_to_started_ms);
    if (t.interrupt_to_finished_ms >= 0) acks.push_back(t.interrupt_to_finished_ms);
  }
  std::printf(
      "agent simulation: turn gap (finished -> next started, at the client) p50 %.0f ms, "
      "max %.0f ms; interrupt -> playback_finished p50 %.0f ms, max %.0f ms\n",
      percentile(gaps, 0.5), percentile(gaps, 1.0), percentile(acks, 0.5), percentile(acks, 1.0));
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  ASSERT_TRUE(sse.wait([](const auto&, bool closed) { return closed; }));
  const auto events = sse.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "session_ended");
  EXPECT_EQ(json::parse(events.back().data).at("reason"), "deleted");
  // The session's end ends the attached call too, after its last frame: read them all.
  ASSERT_TRUE(watcher.wait_ended(std::chrono::seconds(10)));
  check(events, watcher.frames(), turns);
  // Turns in order: utterance k's finished before k+1's started.
  std::int64_t finished_seq = 0;
  int expected = 0;
  for (const auto& e : events) {
    const json j = json::parse(e.data);
    if (e.event == "playback_started") {
      EXPECT_GE(j.at("utterance").get<int>(), expected);
      EXPECT_GT(j.at("seq").get<std::int64_t>(), finished_seq);
    }
    if (e.event == "playback_finished") {
      EXPECT_EQ(j.at("utterance").get<int>(), expected++);
      finished_seq = j.at("seq");
    }
  }
  EXPECT_EQ(expected, 20);
}

// 30 interrupts at random points (before the first frame, inside the first cross-fade, mid
// utterance, in the last cross-fade, after the end): every position matches the frames.
TEST_F(SessionEventsServerTest, InterruptsAtThirtyRandomPointsReportWhatWasHeard) {
  const auto created = json::parse(request("POST", "/v1/sessions", "{}").body);
  const std::string id = created.at("id");
  testing::SseClient sse(port_, "/v1/sessions/" + id + "/events",
                         std::string("Authorization: Bearer ") + kToken + "\r\n");
  FrameWatcher watcher(server_->grpc_port(), id);
  testing::WsClient ws(port_, "/v1/sessions/" + id + "/ws",
                       {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(ws.ok());
  std::mt19937 rng(2512);
  std::vector<Turn> turns;
  auto last = std::chrono::steady_clock::now();
  int cut = 0;
  for (int i = 0; i < 30; ++i) {
    const auto at = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1500)(rng));
    turns.push_back(turn(ws, i, 0.8, 16000, at, last));
    last = std::chrono::steady_clock::now();
    cut += turns.back().finished.value("interrupted", false);
  }
  EXPECT_GE(cut, 15);  // most land while it plays
  std::vector<double> acks;
  for (const auto& t : turns) {
    if (t.finished.value("interrupted", false)) acks.push_back(t.interrupt_to_finished_ms);
  }
  std::printf(
      "interrupt -> playback_finished at the client over %zu interrupts: p50 %.0f ms, "
      "p99 %.0f ms\n",
      acks.size(), percentile(acks, 0.5), percentile(acks, 0.99));
  // The end of the session ends the event stream and the attached call after their last.
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  ASSERT_TRUE(sse.wait([](const auto&, bool closed) { return closed; }));
  ASSERT_TRUE(watcher.wait_ended(std::chrono::seconds(10)));
  check(sse.events(), watcher.frames(), turns);
}

TEST_F(SessionEventsServerTest, AStreamResumesAfterLastEventIdAndViewersAreEvents) {
  const auto created = json::parse(request("POST", "/v1/sessions", "{}").body);
  const std::string id = created.at("id");
  const std::string target = "/v1/sessions/" + id + "/events";
  const std::string auth = std::string("Authorization: Bearer ") + kToken + "\r\n";
  // Refusals: no token, a wrong one, a bad Last-Event-ID, a session that is not there.
  EXPECT_EQ(testing::http_get(port_, target).status, 401);
  EXPECT_EQ(testing::http_exchange(
                port_, "GET " + target + "?access_token=nope HTTP/1.1\r\nHost: x\r\n\r\n")
                .status,
            401);
  const auto bad = testing::http_exchange(
      port_, "GET " + target + " HTTP/1.1\r\nHost: x\r\nLast-Event-ID: x1\r\n" + auth + "\r\n");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("Last-Event-ID"), std::string::npos);
  EXPECT_EQ(testing::http_exchange(
                port_, "GET /v1/sessions/nope/events HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n")
                .status,
            404);
  // Speech: events 1..n.
  testing::SseClient first(port_, target, auth);
  testing::WsClient ws(port_, "/v1/sessions/" + id + "/ws",
                       {{"Authorization", std::string("Bearer ") + kToken}});
  ws.send_text(R"({"type":"utterance"})");
  ws.send_binary(tone_s16le(0.3, 16000));
  ws.send_text(R"({"type":"segment_end"})");
  ASSERT_TRUE(first.wait([](const std::vector<testing::SseEvent>& e, bool) {
    return std::any_of(e.begin(), e.end(),
                       [](const auto& x) { return x.event == "playback_finished"; });
  }));
  const auto all = first.events();
  ASSERT_GE(all.size(), 3u);
  // A client that resumes after the second gets the rest, the same.
  testing::SseClient resumed(port_, target, auth + "Last-Event-ID: 2\r\n");
  ASSERT_TRUE(resumed.wait([&](const auto& e, bool) { return e.size() >= all.size() - 2; }));
  const auto rest = resumed.events();
  EXPECT_EQ(rest.front().id, "3");
  for (std::size_t i = 0; i < all.size() - 2; ++i) EXPECT_EQ(rest[i].data, all[i + 2].data);
  // The session's end is the last event; the stream then ends.
  EXPECT_EQ(request("DELETE", "/v1/sessions/" + id).status, 204);
  ASSERT_TRUE(resumed.wait([](const auto&, bool closed) { return closed; }));
  EXPECT_EQ(resumed.events().back().event, "session_ended");
}

}  // namespace
}  // namespace lipsync
