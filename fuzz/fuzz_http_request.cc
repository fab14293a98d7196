// Fuzzes an HTTP request as the server reads it, without a socket: Boost.Beast's request parser
// (the server's limits), the server's HttpRequest (path, query, lower-case headers), and the
// session API's routes (server::HttpApi: routing, bearer token, CORS, JSON bodies, the header
// decision on streamed speech uploads) on a SessionHub whose one model cannot load, so no
// session, pipeline or network is ever started. Every reply must come, and none may be a 500.
#include <algorithm>
#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/text.h"
#include "fuzz_util.h"
#include "server/growing_string_body.h"
#include "server/http_api.h"
#include "server/registry.h"
#include "server/server_options.h"
#include "server/session_hub.h"

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using namespace lipsync;

// The server's default limits (16 kB of header, server.http_max_body_kb = 1024).
constexpr std::size_t kMaxHeaderBytes = 16384;
constexpr std::size_t kMaxBodyBytes = 1 << 20;
constexpr auto kReplyWait = std::chrono::seconds(5);

// What a request's routes need, made once: a registry whose one model ("demo") points nowhere,
// request workers, the session hub; a bearer token and a CORS origin, as the seeds use them.
struct Api {
  server::Registry registry{
      {{"demo", "/nonexistent/avatar", "/nonexistent/models", false}}, {}, {}, {}, {}};
  core::WorkerPool workers{2};
  server::ServerMetrics metrics;
  server::CallTracker calls;
  std::atomic<int> live_sessions{0};
  server::ServiceContext context = [this] {
    server::ServiceContext c;
    c.registry = &registry;
    c.workers = &workers;
    c.metrics = &metrics;
    c.calls = &calls;
    c.live_sessions = &live_sessions;
    c.hub = &hub;  // made next, with a copy of this context
    c.server.api_token = "s3cret";
    c.server.cors_origins = "http://app.example";
    return c;
  }();
  server::SessionHub hub{context, webrtc::WebRtcOptions{}};
  server::HttpRoutes routes = [this] {
    server::HttpApi::Hooks hooks;
    hooks.fallback = [](const server::HttpRequest&) {
      return server::HttpReply{404, "text/plain; charset=utf-8", "not found\n", {}};
    };
    hooks.drain = [] {};  // a drain only refuses later sessions: nothing to find here
    hooks.load = [] { return std::string("{}"); };
    server::HttpApi api(hub, context, std::move(hooks));
    return api.routes();
  }();
};

// The server's own body type: Beast's string_body would reserve a declared Content-Length.
using Parser = http::request_parser<server::GrowingStringBody>;

// One request's reply, made on any thread.
struct Outcome {
  std::mutex mutex;
  std::condition_variable replied;
  std::optional<server::HttpReply> reply;
};

server::HttpResponder responder_for(const std::shared_ptr<Outcome>& outcome) {
  return server::HttpResponder([outcome](server::HttpReply r) {
    std::lock_guard lock(outcome->mutex);
    outcome->reply = std::move(r);
    outcome->replied.notify_all();
  });
}

void check_reply(const server::HttpReply& r) {
  if (fuzz::verbose()) std::fprintf(stderr, "reply %d: %s", r.status, r.body.c_str());
  if (r.status < 100 || r.status > 599) fuzz::finding("a reply with status out of range");
  if (r.status == 500) fuzz::finding("a 500 reply: " + r.body);
}

// Waits for the reply a route made (or will make from a worker) and checks it.
void expect_reply(Outcome& outcome) {
  std::unique_lock lock(outcome.mutex);
  if (!outcome.replied.wait_for(lock, kReplyWait, [&] { return outcome.reply.has_value(); })) {
    fuzz::finding("a request got no reply within 5 s");
  }
  check_reply(*outcome.reply);
}

// Feeds `rest` to the parser; returns false when the parser refused the request (the server
// answers 400, 413 or 431, or just closes).
bool put(Parser& parser, boost::asio::const_buffer& rest) {
  beast::error_code ec;
  while (rest.size() > 0 && !parser.is_done()) {
    const std::size_t n = parser.put(rest, ec);
    rest += n;
    if (ec == http::error::need_more) return true;  // waits for bytes that never come
    if (ec) return false;
    if (n == 0) return true;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Api* api = new Api;  // lives for the process (its threads too)
  Parser parser;
  parser.header_limit(kMaxHeaderBytes);
  // As the server: no body limit while the header is read (a streamed route may take any
  // length), the header first.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  parser.eager(false);
  boost::asio::const_buffer rest(data, size);
  if (!put(parser, rest) || !parser.is_header_done()) return 0;

  // The server's HttpRequest, as HttpServer's on_header makes it.
  const auto& req = parser.get();
  server::HttpRequest request;
  request.method = std::string(req.method_string());
  const std::string target(req.target());
  const auto q = target.find('?');
  request.path = target.substr(0, q);
  if (q != std::string::npos) request.query = target.substr(q + 1);
  for (const auto& field : req) {
    request.headers.emplace_back(core::to_lower_ascii(std::string(field.name_string())),
                                 std::string(field.value()));
  }
  (void)request.param("continue");
  (void)request.param(request.header("x-param"));
  (void)request.header("content-type");
  const std::string host = request.header("host");
  fuzz::accepts([&] { (void)server::parse_listen_address(host, "host"); });

  auto outcome = std::make_shared<Outcome>();
  if (!parser.is_done()) {
    server::HttpBodyPlan plan = api->routes.stream(request, responder_for(outcome));
    if (plan.refusal) {
      check_reply(*plan.refusal);
      return 0;
    }
    if (plan.stream) {
      // A streamed body: each piece as the parser yields it, then the end (a body cut short
      // gets no reply: the server closes the connection).
      parser.eager(true);
      while (rest.size() > 0 && !parser.is_done()) {
        beast::error_code ec;
        const std::size_t n = parser.put(rest, ec);
        rest += n;
        std::string piece = std::move(parser.get().body());
        parser.get().body().clear();
        if (!piece.empty()) plan.stream->on_piece(std::move(piece));
        if (ec || n == 0) break;
      }
      const bool complete = parser.is_done();
      plan.stream->on_end(complete, responder_for(outcome));
      if (complete) expect_reply(*outcome);
      return 0;
    }
  }
  // A body read whole, within the limit.
  if (const auto length = parser.content_length(); length && *length > kMaxBodyBytes) return 0;
  parser.body_limit(kMaxBodyBytes);
  parser.eager(true);
  if (!put(parser, rest) || !parser.is_done()) return 0;
  request.body = std::move(parser.get().body());
  api->routes.handle(std::move(request), responder_for(outcome));
  expect_reply(*outcome);
  return 0;
}
