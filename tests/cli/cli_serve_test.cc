// `lipsync serve` as a process: start-up with the demo, the reference client, the load test
// (200 requests, zero errors), a config with an unknown key, and SIGTERM -> exit 0.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_data.h"

namespace lipsync {
namespace {

namespace fs = std::filesystem;
using testing::run_lipsync;
using testing::TempDir;

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

// A `lipsync serve` child process on free ports; stopped with SIGTERM.
class ServeProcess {
 public:
  ServeProcess(const fs::path& dir, const std::string& extra = "") : out_(dir / "serve.out") {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string cmd = std::string("exec '") + LIPSYNC_BINARY +
                              "' serve --grpc 127.0.0.1:0 --http 127.0.0.1:0 " + extra + " >'" +
                              out_.string() + "' 2>&1";
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
  // SIGTERM; returns the exit status.
  int stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    stopped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int grpc_port() const { return grpc_port_; }

 private:
  fs::path out_;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int http_port_ = 0;
  bool stopped_ = false;
};

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

  // An unknown model: the client exits 3 with the server's message.
  r = run_lipsync("client --target " + server.target() + " --model ghost -o " + q(dir_ / "x"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("ghost"), std::string::npos) << r.err;

  EXPECT_EQ(server.stop(), 0);
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

}  // namespace
}  // namespace lipsync
