// `lipsync serve` as a process: start-up with the demo, the reference client, the load test
// (200 requests, zero errors), a config with an unknown key, SIGTERM -> exit 0 (also with
// real-size models and streams running), a port in use, a client that never reads (the server's
// memory), the load test's failure report, and a fast minute of audio through real-size models
// that equals `lipsync render`.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "audio/audio_file.h"
#include "core/stopwatch.h"
#include "lipsync/v1/lipsync.grpc.pb.h"
#include "support/http_client.h"
#include "support/media_probe.h"
#include "support/sdp_offer.h"
#include "support/sse_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/ws_client.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using testing::run_lipsync;
using testing::TempDir;

// Sanitizer builds are several times slower and ASan's quarantine holds freed memory, so the
// time and memory bounds below are looser there (they still catch a hang or a leak per frame).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// A path as one shell word, for run_lipsync's command lines.
constexpr auto q = &testing::shell_quote;

// A `lipsync serve` child process on free ports; stopped with SIGTERM.
class ServeProcess {
 public:
  ServeProcess(const fs::path& dir, const std::string& extra = "") : out_(dir / "serve.out") {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string http =
          extra.find("--http") == std::string::npos ? "--http 127.0.0.1:0 " : "";
      const std::string grpc =
          extra.find("--grpc") == std::string::npos ? "--grpc 127.0.0.1:0 " : "";
      const std::string cmd = std::string("exec '") + LIPSYNC_BINARY + "' serve " + grpc + http +
                              extra + " >'" + out_.string() + "' 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait for the JSON line with the ports.
    for (int i = 0; i < 600 && grpc_port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream in(out_);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("{\"grpc_port\"", 0) == 0) {
          const auto j = nlohmann::json::parse(line);
          grpc_port_ = j["grpc_port"];
          http_port_ = j["http_port"];
        }
      }
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !stopped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // SIGTERM; returns the exit status (-signal when it died of a signal).
  int stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    stopped_ = true;
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Sends SIGTERM and returns at once; wait() gives the exit status.
  void signal_term() const { kill(pid_, SIGTERM); }
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    stopped_ = true;
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  // Resident memory of the server now, in MB (from /proc).
  double rss_mb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    }
    return -1;
  }
  std::string output() const { return testing::read_text(out_); }

 private:
  fs::path out_;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int http_port_ = 0;
  bool stopped_ = false;
};

// The fenced block under `<!-- test: NAME -->` in README.md, as a user would paste it.
std::string readme_block(const std::string& name) {
  const std::string readme = testing::read_text(fs::path(LIPSYNC_SOURCE_DIR) / "README.md");
  const auto marker = readme.find("<!-- test: " + name + " -->\n```sh\n");
  if (marker == std::string::npos) return "";
  const auto begin = readme.find('\n', readme.find("```sh", marker)) + 1;
  return readme.substr(begin, readme.find("```\n", begin) - begin);
}

class CliServe : public ::testing::Test {
 protected:
  void SetUp() override { setenv("LIPSYNC_CACHE_DIR", (dir_ / "cache").c_str(), 1); }
  void TearDown() override { unsetenv("LIPSYNC_CACHE_DIR"); }
  TempDir dir_;
};

TEST_F(CliServe, DemoServerClientLoadTestAndGracefulStop) {
  ServeProcess server(dir_.path());
  ASSERT_GT(server.grpc_port(), 0) << testing::read_text(dir_ / "serve.out");

  auto r = run_lipsync("client --target " + server.target() + " --model demo -o " +
                       q(dir_ / "frames") + " --chunk-ms 100 --format jpeg");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["frames"], 188);
  EXPECT_GT(j["first_frame_ms"].get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(dir_ / "frames" / "00187.jpg"));

  r = run_lipsync("loadtest --target " + server.target() +
                  " --model demo --requests 200 --concurrency 8 --batch 25");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["completed"], 200);
  EXPECT_TRUE(j["errors"].empty()) << j.dump();
  EXPECT_EQ(j["frames"], 200 * 25);

  r = run_lipsync("loadtest --target " + server.target() +
                  " --model demo --requests 20 --concurrency 4 --batch 25 --stream");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out)["errors"].empty()) << r.out;

  // An unknown model: the client exits 3 with the server's message, and leaves no folder.
  r = run_lipsync("client --target " + server.target() + " --model ghost -o " + q(dir_ / "x"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("ghost"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "x"));
  // ... and no MP4, not even a partial one.
  r = run_lipsync("client --target " + server.target() + " --model ghost -o " + q(dir_ / "x.mp4"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(fs::exists(dir_ / "x.mp4"));
  EXPECT_FALSE(fs::exists(dir_ / "x.mp4.partial"));

  // A load test with failures exits non-zero and reports the codes by name.
  r = run_lipsync("loadtest --target " + server.target() +
                  " --model ghost --requests 3 --concurrency 2 --batch 5");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["completed"], 0);
  EXPECT_EQ(j["errors"]["NOT_FOUND"]["count"], 3) << j.dump();
  EXPECT_NE(j["errors"]["NOT_FOUND"]["first_message"].get<std::string>().find("ghost"),
            std::string::npos);
  EXPECT_NE(r.err.find("3 of 3 requests failed"), std::string::npos) << r.err;

  EXPECT_EQ(server.stop(), 0);
}

// Audio for process tests: the reference speech repeated to `seconds`, as a raw .f32 file.
fs::path speech_file(const fs::path& dir, int seconds) {
  const auto speech = audio::load_audio_file(testing::testdata("reference/speech_a_en.wav"));
  std::vector<float> out;
  while (out.size() < static_cast<std::size_t>(seconds) * 16000) {
    out.insert(out.end(), speech.begin(), speech.end());
  }
  out.resize(static_cast<std::size_t>(seconds) * 16000);
  const fs::path path = dir / ("speech" + std::to_string(seconds) + ".f32");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(out.data()),
             static_cast<std::streamsize>(out.size() * 4));
  return path;
}

// A config serving `models` as "real" with a small demo avatar.
fs::path real_size_config(const fs::path& dir, const fs::path& models, int grace_s) {
  const auto r =
      run_lipsync("avatar demo -o " + q(dir / "avatar") + " --frames 10 --width 320 --height 240");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ofstream(dir / "real.yaml") << "server: {shutdown_grace_s: " << grace_s << "}\n"
                                   << "avatars:\n  real: {avatar: " << q(dir / "avatar")
                                   << ", models: " << q(models) << ", preload: true}\n";
  return dir / "real.yaml";
}

TEST_F(CliServe, SigtermWithRealSizeStreamsExitsZeroWithinTheGrace) {
  // Width-1.0 synthetic models: the real SyncTalk_2D cost (about 70 ms a frame here).
  const fs::path config = real_size_config(dir_.path(), testing::synth_models(1.0), 2);
  const fs::path audio_path = speech_file(dir_.path(), 60);
  ServeProcess server(dir_.path(), "--config " + q(config));
  ASSERT_GT(server.grpc_port(), 0) << server.output();
  std::vector<std::thread> clients;
  std::vector<testing::CommandResult> results(4);
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      results[i] = run_lipsync("client --target " + server.target() + " --model real --audio " +
                               q(audio_path) + " -o " + q(dir_ / ("out" + std::to_string(i))) +
                               " --format jpeg");
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(6));  // all four are rendering now
  core::Stopwatch clock;
  const int code = server.stop();
  const double seconds = clock.elapsed_ms() / 1000.0;
  for (auto& t : clients) t.join();
  std::cout << "[ sigterm ] exit " << code << " after " << seconds << " s with 4 streams\n";
  EXPECT_EQ(code, 0) << server.output();
  EXPECT_LE(seconds, 2.0 + (kSanitized ? 30.0 : 2.0));  // grace + 2 s
  for (const auto& r : results) {
    EXPECT_EQ(r.exit_code, 5) << r.err;  // UNAVAILABLE
    EXPECT_NE(r.err.find("shutting down"), std::string::npos) << r.err;
  }
}

// Issue 26: SIGTERM drains. /readyz is 503 at once and new sessions are refused; the speaking
// session's utterance plays to its end; when server.drain_timeout_s has passed the session ends
// (session_ended, shutdown: its subscriber reads it) and the process exits 0.
TEST_F(CliServe, SigtermDrainsALiveSessionThenExitsZero) {
  const fs::path config = dir_ / "drain.yaml";
  std::ofstream(config) << "server:\n  drain_timeout_s: 4\n  shutdown_grace_s: 1\n";
  ServeProcess server(dir_.path(), "--config " + q(config));
  const int port = server.http_port();
  ASSERT_GT(port, 0) << server.output();
  const auto post = [&](const std::string& target, const std::string& type,
                        const std::string& body) {
    return testing::http_exchange(
        port, "POST " + target +
                  " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Content-Type: " +
                  type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  for (int i = 0; i < 300 && testing::http_get(port, "/readyz").status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto created = post("/v1/sessions", "application/json", "{}");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = nlohmann::json::parse(created.body).at("id");
  testing::SseClient events(port, "/v1/sessions/" + id + "/events");
  std::string pcm;  // 2 s of a 200 Hz tone, s16le
  for (int i = 0; i < 32000; ++i) {
    const auto v = static_cast<std::int16_t>(12000 * std::sin(2 * 3.14159265 * 200 * i / 16000));
    pcm.push_back(static_cast<char>(v & 0xff));
    pcm.push_back(static_cast<char>((v >> 8) & 0xff));
  }
  ASSERT_EQ(post("/v1/sessions/" + id + "/speech", "audio/s16le;rate=16000", pcm).status, 200);
  ASSERT_TRUE(events.wait([](const auto& e, bool) {
    return std::any_of(e.begin(), e.end(),
                       [](const auto& x) { return x.event == "playback_started"; });
  }));
  core::Stopwatch clock;
  server.signal_term();
  double not_ready_ms = -1;
  for (int i = 0; i < 200; ++i) {
    if (testing::http_get(port, "/readyz").status == 503) {
      not_ready_ms = clock.elapsed_ms();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(not_ready_ms, 0) << "/readyz never said 503";
  const auto refused = post("/v1/sessions", "application/json", "{}");
  EXPECT_EQ(refused.status, 503) << refused.body;
  // The utterance plays to its end, then the drain's time runs out: the session ends.
  ASSERT_TRUE(
      events.wait([](const auto&, bool closed) { return closed; }, std::chrono::seconds(20)));
  const auto all = events.events();
  const auto finished = std::find_if(all.begin(), all.end(),
                                     [](const auto& x) { return x.event == "playback_finished"; });
  ASSERT_NE(finished, all.end());
  EXPECT_FALSE(nlohmann::json::parse(finished->data).at("interrupted").get<bool>());
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back().event, "session_ended");
  EXPECT_EQ(nlohmann::json::parse(all.back().data).at("reason"), "shutdown");
  const int code = server.wait();
  const double seconds = clock.elapsed_ms() / 1000.0;
  std::cout << "[ drain ] /readyz 503 after " << not_ready_ms << " ms; exit " << code << " after "
            << seconds << " s (drain_timeout_s 4)\n";
  EXPECT_EQ(code, 0) << server.output();
  EXPECT_GE(seconds, 3.5);  // the session was let go on
  EXPECT_LE(seconds, 4.0 + (kSanitized ? 30.0 : 4.0));
}

// A free loopback port (bound and let go: the gateway binds it a moment later).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

// Debian's nginx with the config deploy/nginx/gateway.sh writes, run as this user.
class Gateway {
 public:
  Gateway(const fs::path& dir, const std::string& instances)
      : http_port_(free_port()), grpc_port_(free_port()) {
    fs::create_directories(dir / "prefix");
    const fs::path conf = dir / "gateway.conf";
    const auto made = testing::run_command(
        std::string("'") + LIPSYNC_SOURCE_DIR +
        "/deploy/nginx/gateway.sh' --listen-http 127.0.0.1:" + std::to_string(http_port_) +
        " --listen-grpc 127.0.0.1:" + std::to_string(grpc_port_) + instances + " > '" +
        conf.string() + "'");
    EXPECT_EQ(made.exit_code, 0) << made.err;
    pid_ = fork();
    if (pid_ == 0) {
      const std::string cmd = "exec nginx -p '" + (dir / "prefix").string() + "' -c '" +
                              conf.string() + "' -g 'daemon off;' 2>'" +
                              (dir / "nginx.log").string() + "'";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && testing::http_get(http_port_, "/healthz").status != 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ~Gateway() {
    kill(pid_, SIGQUIT);
    waitpid(pid_, nullptr, 0);
  }
  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }

 private:
  int http_port_;
  int grpc_port_;
  pid_t pid_ = -1;
};

// Issue 26: two instances behind Debian's nginx with the shipped gateway config. New sessions
// land on both; every request of a session reaches the instance that holds it (over HTTP, an
// event stream, a WebSocket and a gRPC Live call that attaches); a drained instance gets no new
// sessions; a session of a stopped instance is a JSON 404 naming it.
TEST_F(CliServe, TheGatewaySendsEverySessionsRequestsToItsInstance) {
  ASSERT_EQ(testing::run_command("command -v nginx").exit_code, 0)
      << "nginx is not installed (scripts/bootstrap installs it)";
  std::vector<std::unique_ptr<ServeProcess>> servers;
  std::string instances;
  for (const char* id : {"alpha", "beta"}) {
    const fs::path dir = dir_ / id;
    fs::create_directories(dir);
    std::ofstream(dir / "serve.yaml")
        << "server:\n  instance_id: " << id << "\n  drain_timeout_s: 5\n";
    servers.push_back(std::make_unique<ServeProcess>(dir, "--config " + q(dir / "serve.yaml")));
    ASSERT_GT(servers.back()->http_port(), 0) << servers.back()->output();
    instances += std::string(" --instance ") + id +
                 "=127.0.0.1:" + std::to_string(servers.back()->http_port()) +
                 ",127.0.0.1:" + std::to_string(servers.back()->grpc_port());
  }
  for (auto& s : servers) {
    for (int i = 0; i < 300 && testing::http_get(s->http_port(), "/readyz").status != 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  Gateway gateway(dir_ / "gateway", instances);
  const int port = gateway.http_port();
  const auto call = [&](const std::string& method, const std::string& target,
                        const std::string& type = "", const std::string& body = "") {
    return testing::http_exchange(
        port, method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                  (type.empty() ? "" : "Content-Type: " + type + "\r\n") +
                  "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  std::map<std::string, std::vector<std::string>> by_instance;
  for (int i = 0; i < 10; ++i) {
    const auto r = call("POST", "/v1/sessions", "application/json", "{}");
    ASSERT_EQ(r.status, 201) << r.body;
    const std::string id = nlohmann::json::parse(r.body).at("id");
    by_instance[id.substr(0, id.find('.'))].push_back(id);
  }
  ASSERT_EQ(by_instance.size(), 2u) << "new sessions land on both instances";
  std::string pcm(2 * 3200, '\0');  // 0.2 s of silence, s16le
  for (const auto& [instance, ids] : by_instance) {
    for (const std::string& id : ids) {
      const std::string base = "/v1/sessions/" + id;
      const auto got = call("GET", base);
      ASSERT_EQ(got.status, 200) << id << ": " << got.body;
      EXPECT_EQ(nlohmann::json::parse(got.body).at("id"), id);
      EXPECT_EQ(call("POST", base + "/keepalive").status, 200) << id;
      EXPECT_EQ(call("POST", base + "/speech", "audio/s16le;rate=16000", pcm).status, 200) << id;
      EXPECT_EQ(call("POST", base + "/interrupt").status, 200) << id;
    }
    // Text to speak, and a WebRTC viewer: its offer is answered by the session's instance, and
    // the viewer's own URL (Location) reaches it too.
    const std::string id = ids.front();
    const auto said =
        call("POST", "/v1/sessions/" + id + "/say", "application/json", R"({"text": "hello"})");
    EXPECT_EQ(said.status, 200) << id << ": " << said.body;
    const auto whep =
        call("POST", "/v1/sessions/" + id + "/whep", "application/sdp", testing::whep_offer());
    ASSERT_EQ(whep.status, 201) << id << ": " << whep.body;
    EXPECT_NE(whep.body.find("a=fingerprint"), std::string::npos) << whep.body;
    const auto at = whep.headers.find("/v1/sessions/" + id + "/whep/");
    ASSERT_NE(at, std::string::npos) << whep.headers;
    const std::string viewer = whep.headers.substr(at, whep.headers.find('\r', at) - at);
    EXPECT_EQ(call("DELETE", viewer).status, 204) << viewer;
    // The session's event stream and its socket pass through.
    testing::SseClient events(port, "/v1/sessions/" + id + "/events");
    ASSERT_TRUE(events.wait([](const auto& e, bool) { return !e.empty(); })) << id;
    EXPECT_EQ(events.events().front().event, "utterance_queued");
    testing::WsClient ws(port, "/v1/sessions/" + id + "/ws");
    ASSERT_TRUE(ws.ok()) << id;
    ws.send_text(R"({"type":"ping"})");
    bool pong = false;
    for (auto m = ws.read(); m && !pong; m = ws.read()) {
      pong = nlohmann::json::parse(*m).at("type") == "pong";
    }
    EXPECT_TRUE(pong) << id;
  }
  // A gRPC Live call attaches to a session of each instance through the gateway (the reference
  // client names the instance in its metadata).
  const fs::path end_script = dir_ / "end.json";
  std::ofstream(end_script) << R"([{"at_ms": 500, "end": true}])";
  for (const auto& [instance, ids] : by_instance) {
    const auto live =
        run_lipsync("live-client --target 127.0.0.1:" + std::to_string(gateway.grpc_port()) +
                    " --session " + ids.front() + " --format raw --script " + q(end_script) +
                    " -o " + q(dir_ / ("live-" + instance)));
    EXPECT_EQ(live.exit_code, 0) << live.out << live.err;
    EXPECT_NE(live.out.find("\"status\":\"OK\""), std::string::npos) << live.out;
  }
  for (const auto& [instance, ids] : by_instance) {
    for (const std::string& id : ids) EXPECT_EQ(call("DELETE", "/v1/sessions/" + id).status, 204);
  }
  // A drained instance gets no new session; the other takes them all.
  const int alpha = servers[0]->http_port();
  ASSERT_EQ(testing::http_exchange(alpha,
                                   "POST /v1/admin/drain HTTP/1.1\r\nHost: x\r\n"
                                   "Connection: close\r\nContent-Length: 0\r\n\r\n")
                .status,
            202);
  std::string on_beta;
  for (int i = 0; i < 4; ++i) {
    const auto r = call("POST", "/v1/sessions", "application/json", "{}");
    ASSERT_EQ(r.status, 201) << r.body;
    on_beta = nlohmann::json::parse(r.body).at("id");
    EXPECT_EQ(on_beta.rfind("beta.", 0), 0u) << on_beta;
  }
  // The drained instance had no session left: it has stopped. A stopped instance's session,
  // and an id of no instance, are JSON 404s naming the session.
  EXPECT_EQ(servers[0]->wait(), 0);
  const std::string gone = by_instance["alpha"].front();
  const auto r = call("GET", "/v1/sessions/" + gone);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no session '" + gone + "'"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("instance alpha cannot be reached"), std::string::npos) << r.body;
  // Over gRPC: NOT_FOUND naming the instance, not the gateway's HTTP 502.
  const auto attach_gone = run_lipsync(
      "live-client --target 127.0.0.1:" + std::to_string(gateway.grpc_port()) + " --session " +
      gone + " --format raw --script " + q(end_script) + " -o " + q(dir_ / "live-gone"));
  EXPECT_EQ(attach_gone.exit_code, 3) << "NOT_FOUND is exit code 3";
  EXPECT_NE(attach_gone.err.find("instance 'alpha' cannot be reached"), std::string::npos)
      << attach_gone.out << attach_gone.err;
  const auto unknown = call("GET", "/v1/sessions/gamma.123/events");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("no session 'gamma.123'"), std::string::npos) << unknown.body;
  EXPECT_EQ(call("GET", "/v1/sessions/" + on_beta).status, 200);
}

TEST_F(CliServe, AGrpcPortInUseFailsStartUpNamingTheAddress) {
  ServeProcess first(dir_.path());
  ASSERT_GT(first.grpc_port(), 0);
  const auto r = run_lipsync("serve --grpc " + first.target() + " --http off");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(first.target()), std::string::npos) << r.err;
  const auto r2 = run_lipsync("serve --grpc 127.0.0.1:70000 --http off");
  EXPECT_EQ(r2.exit_code, 2);
  EXPECT_NE(r2.err.find("65535"), std::string::npos) << r2.err;
  EXPECT_EQ(first.stop(), 0);
}

TEST_F(CliServe, AClientThatNeverReadsCostsTheServerAWindowOfFrames) {
  // The demo: 1280 x 720 RAW frames of 2.7 MB. The old server rendered all of them into memory
  // (20 s of audio took it from 0.8 to 1.9 GB).
  ServeProcess server(dir_.path(), "");
  ASSERT_GT(server.grpc_port(), 0);
  const auto speech = audio::load_audio_file(testing::testdata("reference/speech_a_en.wav"));
  auto channel = grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  auto stub = lipsync::v1::LipSync::NewStub(channel);
  // Warm up (the model, the avatar's caches), then measure.
  {
    grpc::ClientContext c;
    auto call = stub->Stream(&c);
    lipsync::v1::StreamRequest config;
    config.mutable_config()->set_model_id("demo");
    config.mutable_config()->set_encoding(lipsync::v1::StreamConfig::ENCODING_F32LE);
    call->Write(config);
    lipsync::v1::StreamRequest a;
    a.set_audio(std::string(reinterpret_cast<const char*>(speech.data()), speech.size() * 4));
    call->Write(a);
    call->WritesDone();
    lipsync::v1::StreamResponse r;
    while (call->Read(&r)) {
    }
    ASSERT_TRUE(call->Finish().ok());
  }
  const double before = server.rss_mb();
  grpc::ClientContext context;
  auto call = stub->Stream(&context);
  lipsync::v1::StreamRequest config;
  config.mutable_config()->set_model_id("demo");
  config.mutable_config()->set_format(lipsync::v1::StreamConfig::FORMAT_RAW);
  config.mutable_config()->set_encoding(lipsync::v1::StreamConfig::ENCODING_F32LE);
  ASSERT_TRUE(call->Write(config));
  std::thread writer([&] {
    for (int second = 0; second < 60; ++second) {  // 60 s of audio, 1500 frames, never read
      lipsync::v1::StreamRequest a;
      a.set_audio(std::string(reinterpret_cast<const char*>(speech.data()), 16000 * 4));
      if (!call->Write(a)) return;
    }
  });
  double peak = before;
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    peak = std::max(peak, server.rss_mb());
  }
  std::cout << "[ rss ] non-reading RAW stream: " << before << " MB before, peak " << peak
            << " MB (+" << peak - before << ")\n";
  EXPECT_LT(peak - before, kSanitized ? 700.0 : 250.0)
      << "the server buffers frames for a client that never reads";
  context.TryCancel();
  writer.join();
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(CliServe, AFastMinuteThroughRealSizeModelsEqualsTheRender) {
  // The reference models (the real network, about 84 ms a frame here) and a minute of audio sent
  // as fast as the server takes it: the old server refused it part-way (RESOURCE_EXHAUSTED).
  const fs::path config = real_size_config(dir_.path(), testing::reference_models(), 2);
  const fs::path audio_path = speech_file(dir_.path(), 60);
  ServeProcess server(dir_.path(), "--config " + q(config));
  ASSERT_GT(server.grpc_port(), 0) << server.output();
  auto r =
      run_lipsync("client --target " + server.target() + " --model real --audio " + q(audio_path) +
                  " -o " + q(dir_ / "streamed") + " --format jpeg --chunk-ms 1000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["frames"], 1499);
  EXPECT_EQ(server.stop(), 0);
  r = run_lipsync("render --models " + q(testing::reference_models()) + " --avatar " +
                  q(dir_ / "avatar") + " --audio " + q(audio_path) + " -o " + q(dir_ / "rendered") +
                  " --format jpeg --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int compared = 0;
  for (int i = 0; i < 1499; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%05d.jpg", i);
    const std::string a = testing::read_text(dir_ / "streamed" / name);
    const std::string b = testing::read_text(dir_ / "rendered" / name);
    ASSERT_FALSE(a.empty()) << name;
    ASSERT_EQ(a, b) << "frame " << i << " differs";
    ++compared;
  }
  EXPECT_EQ(compared, 1499);
}

// The README's walkthrough "From a SyncTalk_2D training run to a running server", its block
// taken from README.md and run as written (so the text cannot drift from what is tested), on the
// golden checkpoints (written by real PyTorch) and the reference avatar's frames and landmarks
// laid out as SyncTalk_2D's folders.
TEST_F(CliServe, TheSyncTalkWalkthroughFromCheckpointsToAServedMp4) {
  const fs::path st = dir_ / "SyncTalk_2D";
  fs::create_directories(st / "checkpoint" / "May");
  fs::create_directories(st / "model" / "checkpoints");
  fs::create_directories(st / "dataset" / "May" / "full_body_img");
  fs::copy_file(testing::testdata("checkpoints/unet.pth"), st / "checkpoint" / "May" / "99.pth");
  fs::copy_file(testing::testdata("checkpoints/audio_encoder.pth"),
                st / "model" / "checkpoints" / "audio_visual_encoder.pth");
  fs::create_directory_symlink(testing::testdata("reference/landmarks/0.lms").parent_path(),
                               st / "dataset" / "May" / "landmarks");
  for (int i = 0; i < 60; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%05d.png", i);
    fs::create_symlink(testing::testdata("reference/frames/" + std::string(name)),
                       st / "dataset" / "May" / "full_body_img" / (std::to_string(i) + ".jpg"));
  }
  const fs::path speech = dir_ / "speech.wav";  // 1.2 s: real-size models take ~80 ms a frame
  ASSERT_EQ(std::system(("sox " + q(testing::testdata("reference/speech_a_en.wav")) + " " +
                         q(speech) + " trim 0 1.2")
                            .c_str()),
            0);
  // `lipsync` on the PATH, as after scripts/install.
  fs::create_directories(dir_ / "bin");
  fs::create_symlink(LIPSYNC_BINARY, dir_ / "bin" / "lipsync");

  // The README's block, as written (it uses the default ports: this test runs alone), then a
  // wait for the server it stopped, in the folder the paths are relative to.
  const std::string block = readme_block("walkthrough");
  ASSERT_NE(block.find("lipsync models import"), std::string::npos) << block;
  // A step that fails leaves no server behind.
  std::ofstream(dir_ / "walkthrough.sh")
      << "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
      << block << "wait\n";
  const auto r = testing::run_command("cd " + q(dir_.path()) + " && PATH=" + q(dir_ / "bin") +
                                      ":\"$PATH\" bash walkthrough.sh");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  const auto model = nlohmann::json::parse(testing::read_text(dir_ / "models/may/model.json"));
  EXPECT_EQ(model["kind"], "trained");
  EXPECT_EQ(model["name"], "may");
  EXPECT_EQ(model["sources"][0]["file"], "99.pth");
  EXPECT_TRUE(fs::exists(dir_ / "avatars/may/avatar.json"));
  const auto rendered = testing::probe_media(dir_ / "may.mp4");
  EXPECT_EQ(rendered.video_codec, "h264");
  EXPECT_EQ(rendered.audio_codec, "aac");
  EXPECT_EQ(rendered.width, 640);
  EXPECT_EQ(rendered.height, 360);
  EXPECT_EQ(rendered.video_frames, 29);  // the frames of 1.2 s of audio (REFERENCE.md §3)
  EXPECT_NEAR(rendered.audio_seconds, rendered.video_seconds, 0.05);
  const auto served = testing::probe_media(dir_ / "from_server.mp4");
  EXPECT_EQ(served.video_frames, rendered.video_frames);
  EXPECT_EQ(served.audio_codec, "aac");
  EXPECT_NEAR(served.audio_seconds, served.video_seconds, 0.05);
}

TEST_F(CliServe, TheLogSaysHttpOffWhenItIs) {
  ServeProcess server(dir_.path(), "--http off");
  ASSERT_GT(server.grpc_port(), 0);
  EXPECT_EQ(server.stop(), 0);
  EXPECT_NE(server.output().find("HTTP off"), std::string::npos) << server.output();
  EXPECT_EQ(server.output().find("HTTP on port 0"), std::string::npos);
}

// Issue 28: a client started before its server waits for it (--wait-s, default 30 s), as the
// README's walkthrough pasted in one block does; with --wait-s 0 it fails at once (exit 5).
TEST_F(CliServe, AClientStartedBeforeItsServerWaitsForIt) {
  const std::string target = "127.0.0.1:" + std::to_string(free_port());
  const auto at_once = run_lipsync("client --target " + target + " --wait-s 0 -o " +
                                   q(dir_ / "none") + " --format jpeg");
  EXPECT_EQ(at_once.exit_code, 5);
  EXPECT_NE(at_once.err.find("server " + target), std::string::npos) << at_once.err;
  testing::CommandResult waited;
  std::thread client([&] {
    waited = run_lipsync("client --target " + target + " -o " + q(dir_ / "frames") +
                         " --format jpeg --chunk-ms 200");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ServeProcess server(dir_.path(), "--grpc " + target);
  client.join();
  EXPECT_GT(server.grpc_port(), 0) << server.output();
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_EQ(nlohmann::json::parse(waited.out).at("frames"), 188) << waited.out;
}

// Issue 28: one model is served from its two folders without a config file; a folder that is
// not one (in the flags or in a config, a model loaded on first use too) stops the start naming
// the key and the path, before anything listens (exit 3).
TEST_F(CliServe, ServesAModelFromFlagsAndRefusesMissingFoldersBeforeListening) {
  const auto made =
      run_lipsync("avatar demo -o " + q(dir_ / "avatar") + " --frames 5 --width 320 --height 240");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  {
    ServeProcess server(dir_.path(), "--models " + q(testing::demo_models()) + " --avatar " +
                                         q(dir_ / "avatar") + " --model-id may");
    ASSERT_GT(server.http_port(), 0) << server.output();
    const auto created = testing::http_exchange(
        server.http_port(),
        "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"model\":\"may\"}");
    EXPECT_EQ(created.status, 201) << created.body;
  }
  const auto missing = run_lipsync("serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 --models " +
                                   q(dir_ / "nope") + " --avatar " + q(dir_ / "avatar"));
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("--models: '" + (dir_ / "nope").string() + "' is not a folder"),
            std::string::npos)
      << missing.err;
  EXPECT_EQ(missing.out.find("grpc_port"), std::string::npos) << "it listened: " << missing.out;
  std::ofstream(dir_ / "lazy.yaml") << "avatars:\n  may: {avatar: " << q(dir_ / "avatar")
                                    << ", models: " << q(dir_ / "avatar") << "}\n";
  const auto lazy =
      run_lipsync("serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 --config " + q(dir_ / "lazy.yaml"));
  EXPECT_EQ(lazy.exit_code, 3);
  EXPECT_NE(lazy.err.find("avatars.may.models: '" + (dir_ / "avatar").string() +
                          "' has no audio_encoder.onnx"),
            std::string::npos)
      << lazy.err;
  EXPECT_EQ(run_lipsync("serve --models " + q(dir_ / "avatar")).exit_code, 2);  // no --avatar
}

TEST_F(CliServe, UnknownConfigKeyFailsStartUpNamingIt) {
  std::ofstream(dir_ / "bad.yaml") << "server:\n  grpc: 127.0.0.1:0\nscheduler:\n  max_batchh: 4\n";
  const auto r = run_lipsync("serve --config " + q(dir_ / "bad.yaml"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("scheduler.max_batchh"), std::string::npos) << r.err;
  std::ofstream(dir_ / "bad2.yaml") << "registry:\n  policy: random\n";
  const auto r2 = run_lipsync("serve --config " + q(dir_ / "bad2.yaml"));
  EXPECT_EQ(r2.exit_code, 2);
  EXPECT_NE(r2.err.find("registry.policy"), std::string::npos) << r2.err;
}

// log_format: json makes every line the server writes to stderr one JSON object (time, level,
// msg), the access log's included; the ports line stays on stdout as before.
TEST_F(CliServe, LogFormatJsonWritesOneObjectPerLine) {
  const fs::path config = dir_ / "json.yaml";
  std::ofstream(config) << "log_format: json\n";
  ServeProcess server(dir_.path(), "--config " + config.string());
  ASSERT_GT(server.http_port(), 0) << server.output();
  EXPECT_EQ(testing::http_get(server.http_port(), "/v1/load").status, 200);
  EXPECT_EQ(server.stop(), 0);
  int lines = 0;
  bool access = false;
  std::istringstream in(server.output());
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);  // throws on a line that is not JSON
    if (j.contains("grpc_port")) continue;                 // the ports line (stdout)
    ++lines;
    EXPECT_TRUE(j.at("time").is_string() && j.at("level").is_string() && j.at("msg").is_string())
        << line;
    const std::string msg = j.at("msg");
    if (msg.find("http GET") != std::string::npos && msg.find("/v1/load") != std::string::npos) {
      access = true;
    }
  }
  EXPECT_GT(lines, 2) << server.output();
  EXPECT_TRUE(access) << server.output();
}

}  // namespace
}  // namespace lipsync
