// The HTTP endpoints against slow, malformed and idle clients: a slowloris of 200 connections does
// not delay /healthz, malformed requests get 400, wrong methods 405, limits 413/431, query
// strings are fine, and stopping never waits for an idle keep-alive connection.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/stopwatch.h"
#include "server/http_server.h"
#include "support/http_client.h"

namespace lipsync {
namespace {

using testing::http_exchange;
using testing::http_get;
using testing::RawConnection;

class HttpTest : public ::testing::Test {
 protected:
  void start(server::HttpLimits limits = {}) {
    server_ = std::make_unique<server::HttpServer>(
        "127.0.0.1:0", limits, [](const server::HttpRequest& r) {
          if (r.path != "/healthz" && r.path != "/echo")
            return server::HttpReply{404, "text/plain", "no\n", {}};
          if (r.path == "/healthz" && r.method != "GET" && r.method != "HEAD") {
            return server::HttpReply{405, "text/plain", "get\n", {{"Allow", "GET, HEAD"}}};
          }
          return server::HttpReply{
              200, "text/plain", r.path == "/echo" ? r.query + "|" + r.body : "ok\n", {}};
        });
  }
  void SetUp() override { start(); }
  int port() const { return server_->port(); }
  // Waits up to 2 s until the server counts `n` full connections.
  bool eventually_open(int n) const {
    for (int i = 0; i < 100 && server_->open_connections() != n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return server_->open_connections() == n;
  }
  std::unique_ptr<server::HttpServer> server_;
};

TEST_F(HttpTest, ASlowlorisOfTwoHundredConnectionsDoesNotDelayHealthz) {
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 200; ++i) {  // from 4 addresses: each within its share (128)
    slow.push_back(std::make_unique<RawConnection>(port(), "127.0.0." + std::to_string(2 + i % 4)));
    ASSERT_TRUE(slow.back()->ok());
    slow.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // and never the rest
  }
  for (int round = 0; round < 3; ++round) {
    for (auto& c : slow) c->send("X-Slow: 1\r\n");  // a byte now and then keeps them alive
    core::Stopwatch sw;
    const auto r = http_get(port(), "/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok\n");
    EXPECT_LT(sw.elapsed_ms(), 1000.0) << "round " << round;
  }
  EXPECT_GE(server_->open_connections(), 200);
}

// Issue 24: one client holding 1024 idle connections reset every other connection, /healthz
// included: the cap was global, with no share per client.
TEST_F(HttpTest, Issue24_OneClientHoldingConnectionsLocksOutNoOneAndProbesGetThrough) {
  server::HttpLimits limits;
  limits.max_connections_per_client = 8;
  limits.probe_paths = {"/healthz"};
  start(limits);
  std::vector<std::unique_ptr<RawConnection>> hog;
  for (int i = 0; i < 40; ++i) {
    hog.push_back(std::make_unique<RawConnection>(port(), "127.0.0.2"));
    ASSERT_TRUE(hog.back()->ok());
  }
  // Its share, and a few for probes; the rest are closed at once.
  int closed = 0;
  for (auto& c : hog) closed += c->closed_by_peer(std::chrono::milliseconds(100));
  EXPECT_GE(closed, 40 - 8 - 4);
  EXPECT_LE(server_->open_connections(), 8);
  // Anyone else is served in full...
  const auto other = http_get(port(), "/echo?x=1", "127.0.0.3");
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, "x=1|");
  // ...and the hog's own probes still answer, while its other requests are told why.
  hog.clear();
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<RawConnection>(port(), "127.0.0.2"));
  ASSERT_TRUE(eventually_open(8));
  EXPECT_EQ(http_get(port(), "/healthz", "127.0.0.2").status, 200);
  const auto refused = http_get(port(), "/echo", "127.0.0.2");
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("http_max_connections_per_client"), std::string::npos);
}

TEST_F(HttpTest, Issue24_AtTheGlobalCapHealthProbesStillAnswer) {
  server::HttpLimits limits;
  limits.max_connections = 12;
  limits.max_connections_per_client = 4;
  limits.probe_paths = {"/healthz"};
  start(limits);
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 12; ++i) {
    held.push_back(std::make_unique<RawConnection>(port(), "127.0.0." + std::to_string(2 + i % 3)));
  }
  ASSERT_TRUE(eventually_open(12));
  EXPECT_EQ(http_get(port(), "/healthz", "127.0.0.9").status, 200);
  EXPECT_EQ(http_get(port(), "/echo", "127.0.0.9").status, 503);
  held.pop_back();  // a slot frees: served in full again
  EXPECT_TRUE(eventually_open(11));
  EXPECT_EQ(http_get(port(), "/echo", "127.0.0.9").status, 200);
}

TEST_F(HttpTest, SlowClientsAreClosedAfterTheTimeout) {
  server::HttpLimits limits;
  limits.timeout_s = 1;
  start(limits);
  RawConnection slow(port());
  slow.send("GET /healthz HTTP/1.1\r\n");
  RawConnection idle(port());
  core::Stopwatch sw;
  EXPECT_TRUE(slow.closed_by_peer(std::chrono::seconds(5)));
  EXPECT_TRUE(idle.closed_by_peer(std::chrono::seconds(5)));
  EXPECT_LT(sw.elapsed_ms(), 4000.0);
}

TEST_F(HttpTest, MalformedRequestsWrongMethodsAndLimitsGetTheirStatus) {
  EXPECT_EQ(http_exchange(port(), "NONSENSE\r\n\r\n").status, 400);
  EXPECT_EQ(http_exchange(port(), "GET /healthz HTTP/9.9\r\n\r\n").status, 400);
  EXPECT_EQ(http_exchange(port(), "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n").status, 400);
  const auto post = http_exchange(
      port(),
      "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos) << post.headers;
  const std::string big_header(20000, 'h');
  EXPECT_EQ(http_exchange(port(), "GET /healthz HTTP/1.1\r\nX: " + big_header + "\r\n\r\n").status,
            431);
  const std::string big_body(2 << 20, 'b');
  EXPECT_EQ(http_exchange(port(), "POST /echo HTTP/1.1\r\nContent-Length: " +
                                      std::to_string(big_body.size()) + "\r\n\r\n" + big_body)
                .status,
            413);
  const auto q = http_get(port(), "/echo?format=text&x=1");
  EXPECT_EQ(q.status, 200);
  EXPECT_EQ(q.body, "format=text&x=1|");
  EXPECT_EQ(http_get(port(), "/nope").status, 404);
  // And it still answers.
  EXPECT_EQ(http_get(port(), "/healthz").status, 200);
}

TEST_F(HttpTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  RawConnection c(port());
  ASSERT_TRUE(
      c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?a HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got;
  for (int i = 0; i < 20 && got.find("a|") == std::string::npos; ++i) {
    got += c.receive(std::chrono::milliseconds(100));
  }
  EXPECT_NE(got.find("ok\n"), std::string::npos) << got;
  EXPECT_NE(got.find("a|"), std::string::npos) << got;
}

TEST_F(HttpTest, StopDoesNotWaitForIdleOrSlowConnections) {
  RawConnection idle(port());
  ASSERT_TRUE(idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));  // keep-alive, then idle
  EXPECT_FALSE(idle.receive(std::chrono::milliseconds(200)).empty());
  RawConnection slow(port());
  slow.send("GET /heal");
  core::Stopwatch sw;
  server_->stop();
  EXPECT_LT(sw.elapsed_ms(), 500.0);
  EXPECT_TRUE(idle.closed_by_peer(std::chrono::seconds(1)));
}

TEST(HttpServer, AnAddressInUseOrOutOfRangeFailsNamingIt) {
  server::HttpServer first("127.0.0.1:0", {},
                           [](const server::HttpRequest&) { return server::HttpReply{}; });
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  try {
    server::HttpServer second(taken, {},
                              [](const server::HttpRequest&) { return server::HttpReply{}; });
    ADD_FAILURE() << "a second server bound " << taken;
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(taken), std::string::npos) << e.message();
  }
  EXPECT_THROW(server::HttpServer("127.0.0.1:70000", {},
                                  [](const server::HttpRequest&) { return server::HttpReply{}; }),
               Error);
}

// An event stream whose source writes as fast as it can: a client that reads gets every event
// in order; one that never reads is closed (its handler told) once the queue cap is reached,
// without slowing the source or the other client.
TEST(HttpServer, AnEventStreamClosesAClientThatDoesNotRead) {
  struct Stream final : server::EventStreamHandler {
    std::atomic<bool> closed{false};
    void on_close() override { closed = true; }
  };
  std::mutex mutex;
  std::vector<std::pair<std::shared_ptr<server::EventStreamPeer>, std::shared_ptr<Stream>>> peers;
  server::HttpRoutes routes;
  routes.handle = [](server::HttpRequest, server::HttpResponder out) {
    out.reply({404, "text/plain", "no\n", {}});
  };
  routes.events = [&](const server::HttpRequest& r, std::shared_ptr<server::EventStreamPeer> peer) {
    server::EventStreamPlan plan;
    if (r.path != "/events") return plan;
    auto stream = std::make_shared<Stream>();
    plan.handler = stream;
    plan.headers = {{"X-Test", "1"}};
    std::lock_guard lock(mutex);
    peers.emplace_back(std::move(peer), stream);
    return plan;
  };
  server::HttpServer server("127.0.0.1:0", {}, routes);
  RawConnection reader(server.port());
  RawConnection stalled(server.port());
  reader.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  stalled.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mutex);
      if (peers.size() == 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(peers.size(), 2u);
  const std::string head = reader.receive(std::chrono::milliseconds(200));
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_NE(head.find("X-Test: 1"), std::string::npos);
  // 4000 events of 4 KB (16 MB: more than loopback buffers hold) at up to about 16 MB/s; the
  // reader reads them as they come. The sending keeps at most 128 KB ahead of what the reader has
  // read, half what the server lets wait: on a loaded machine the reading thread may not run for
  // tens of milliseconds, and the server would rightly close it as a slow reader.
  constexpr std::size_t kEvents = 4000;
  constexpr std::size_t kAhead = 128 * 1024;
  const std::string event = "data: " + std::string(4090, 'x') + "\n\n";
  std::atomic<std::size_t> got{0};
  std::thread read([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (got < kEvents * event.size() && std::chrono::steady_clock::now() < until) {
      got += reader.receive(std::chrono::milliseconds(50)).size();
    }
  });
  core::Stopwatch sw;
  for (std::size_t i = 0; i < kEvents; ++i) {
    while (i * event.size() > got.load() + kAhead && sw.elapsed_ms() < 20000.0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (auto& [peer, stream] : peers) peer->send(event);
    if (i % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  read.join();
  EXPECT_LT(sw.elapsed_ms(), 20000.0);            // sending never waited for a client
  EXPECT_EQ(got.load(), kEvents * event.size());  // every byte, to the reader
  for (int i = 0; i < 500 && !peers[1].second->closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(peers[1].second->closed.load()) << "the client that never reads is still served";
  EXPECT_FALSE(peers[0].second->closed.load());
  // close() ends a stream once its queue is written.
  peers[0].first->send("data: last\n\n");
  peers[0].first->close();
  const std::string tail = reader.receive(std::chrono::seconds(2));
  EXPECT_NE(tail.find("data: last"), std::string::npos);
  for (int i = 0; i < 200 && !peers[0].second->closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(peers[0].second->closed.load());
}

}  // namespace
}  // namespace lipsync
