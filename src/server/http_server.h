// HttpServer: a small asynchronous HTTP/1.1 server on Boost.Beast for the operational endpoints
// (/healthz, /readyz, /metrics), the session API and the demo page. One I/O thread serves any
// number of connections at once; each request's header and body must arrive within the timeout
// (a client sending a byte a second is closed, and never delays anyone else), header and body
// sizes are limited (431, 413), malformed requests get 400, keep-alive connections idle at most
// the timeout. Connections are limited in all and per remote address (one client holding
// idle connections cannot lock out the others); over a limit a few more are accepted from each
// address for the probe paths only (/healthz and /readyz still answer while a client hogs the
// server), and the rest are closed. Replies may be made later from any thread (a WebRTC answer
// takes a second); a route may take its body as a stream of pieces (an upload that is still being
// recorded), with the timeout applying to each pause between pieces instead. `Expect: 100-continue`
// is answered. A route may take a WebSocket upgrade (RFC 6455): its messages go to a handler, with
// flow control, keep-alive pings (a peer that stops answering is closed) and a bounded send
// queue. stop() closes every connection at once: it never waits for an idle client. Thread
// contract: construction and stop() from one thread; the routes run on the I/O thread and must be
// quick.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lipsync::server {

struct HttpRequest {
  std::string method;  // "GET", ...
  std::string path;    // the target without its query: "/metrics"
  std::string query;   // after '?', may be empty
  std::string body;    // empty for a streamed body
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  // A header's value ("" when absent); `name` in lower case.
  std::string header(std::string_view name) const;
  // A query parameter's value ("" when absent); no percent-decoding beyond what ids need.
  std::string param(std::string_view name) const;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Allow, ...)
};

struct HttpLimits {
  int timeout_s = 10;                    // to send a request; idle between requests
  std::size_t max_header_bytes = 16384;  // bigger: 431
  std::size_t max_body_bytes = 1 << 20;  // bigger: 413 (bodies read whole)
  int max_connections = 1024;            // at once, all clients together
  int max_connections_per_client = 128;  // at once from one remote address
  // Paths a connection over either limit is still served, one request each (health probes).
  std::vector<std::string> probe_paths;
};

// Where a request's reply goes: reply() once, from any thread (later calls are ignored; a reply
// to a closed connection is dropped). resume() continues a streamed body paused by on_piece.
class HttpResponder {
 public:
  HttpResponder() = default;
  explicit HttpResponder(std::function<void(HttpReply)> reply, std::function<void()> resume = {})
      : reply_(std::make_shared<Shared>()) {
    reply_->reply = std::move(reply);
    reply_->resume = std::move(resume);
  }
  void reply(HttpReply r) const;
  void resume() const;

 private:
  struct Shared {
    std::function<void(HttpReply)> reply;
    std::function<void()> resume;
    std::atomic<bool> done{false};
  };
  std::shared_ptr<Shared> reply_;
};

// A request body handed over as it arrives (a chunked upload, say), never held whole.
class HttpBodyStream {
 public:
  virtual ~HttpBodyStream() = default;
  // The next piece (I/O thread; must be quick). Return false to read no more until the
  // responder's resume(); each wait is bounded by the timeout.
  virtual bool on_piece(std::string piece) = 0;
  // The body is complete (or `complete` false: the client went away or was too slow; any reply
  // is then dropped). Reply through `responder`, from any thread.
  virtual void on_end(bool complete, HttpResponder responder) = 0;
};

// What to do with a request's body, decided once its header is in.
struct HttpBodyPlan {
  // Take the body as pieces (never held whole, not limited by max_body_bytes).
  std::shared_ptr<HttpBodyStream> stream;
  // Or answer now without reading the body (a 401, a 409, a declared length that is too long);
  // the connection then closes.
  std::optional<HttpReply> refusal;
  // Neither: read the body whole (within max_body_bytes) and call `handle`.
};

// The server's side of one WebSocket connection (RFC 6455), for its handler. Every method may be
// called from any thread, also after the connection has ended (it then does nothing).
class WebSocketPeer {
 public:
  virtual ~WebSocketPeer() = default;
  // Queues a text message. A peer that does not read what it is sent is closed once
  // kMaxWebSocketQueuedBytes wait: it never holds up the sender.
  virtual void send_text(std::string message) = 0;
  // Reads on after the handler's on_message returned false.
  virtual void resume() = 0;
  // Closes the connection (1000, or `code`) once what is queued has been sent.
  virtual void close(std::string reason, int code = 1000) = 0;
};

inline constexpr std::size_t kMaxWebSocketQueuedBytes = 4 << 20;

// One WebSocket connection's application side.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  // A whole message from the client (I/O thread; must be quick). Return false to read nothing
  // more until the peer's resume(): the client is held back by TCP flow control.
  virtual bool on_message(bool text, std::string data) = 0;
  // The connection has ended (either side, or the server stopping); called once, last.
  virtual void on_close() = 0;
};

// What to do with a WebSocket upgrade request.
struct WebSocketPlan {
  // Accept it: this handler takes the connection's messages.
  std::shared_ptr<WebSocketHandler> handler;
  // Or refuse it with this reply (401, 404, ...); the connection then closes.
  std::optional<HttpReply> refusal;
  // Neither: the request is served as an ordinary one.
};

// The server's side of one event stream (Server-Sent Events): a GET answered with
// `text/event-stream` and kept open, the body written as it comes. Every method may be called from
// any thread, also after the stream has ended (it then does nothing).
class EventStreamPeer {
 public:
  virtual ~EventStreamPeer() = default;
  // Queues bytes of the stream ("id: 1\nevent: x\ndata: {...}\n\n"). A client that does not
  // read is closed once kMaxEventStreamQueuedBytes wait, or when a write has waited
  // kEventStreamStallS: it never holds up the sender.
  virtual void send(std::string text) = 0;
  // Ends the stream once what is queued has been written.
  virtual void close() = 0;
};

inline constexpr std::size_t kMaxEventStreamQueuedBytes = 256 << 10;
inline constexpr int kEventStreamStallS = 30;
// A comment line (": keep-alive") is written this often, so that proxies and clients see the
// stream alive when nothing happens.
inline constexpr int kEventStreamKeepAliveS = 15;

class EventStreamHandler {
 public:
  virtual ~EventStreamHandler() = default;
  // The stream has ended (the client went away, it was closed, the server stops); once, last.
  virtual void on_close() = 0;
};

// What to do with a GET that may be an event stream.
struct EventStreamPlan {
  // Answer 200 with text/event-stream and these extra headers (CORS), and keep it open.
  std::shared_ptr<EventStreamHandler> handler;
  std::vector<std::pair<std::string, std::string>> headers;
  // Or refuse it with this reply; the connection then closes.
  std::optional<HttpReply> refusal;
  // Neither: the request is served as an ordinary one.
};

struct HttpRoutes {
  // Every request whose body is read whole; reply through the responder, now or later, from
  // any thread. Runs on the I/O thread: hand slow work to another thread.
  std::function<void(HttpRequest, HttpResponder)> handle;
  // Asked once a request's header is in (`header.body` empty), before any body octet is read:
  // how to take the body. Optional (absent: every body is read whole).
  std::function<HttpBodyPlan(const HttpRequest& header, HttpResponder)> stream;
  // Asked for a WebSocket upgrade request (GET, `Upgrade: websocket`) once its header is in.
  // `peer` is the connection's server side, to give the handler; it works once the handshake is
  // done (what is sent before waits for it). Optional (absent: upgrades are ordinary requests).
  std::function<WebSocketPlan(const HttpRequest& header, std::shared_ptr<WebSocketPeer> peer)>
      websocket;
  // Asked for every GET (no body) once its header is in: whether it is an event stream.
  // Optional. `peer` works once the reply's header is written (what is sent before waits).
  std::function<EventStreamPlan(const HttpRequest& header, std::shared_ptr<EventStreamPeer> peer)>
      events;
};

class HttpServer {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;
  // address "host:port" (port 0 picks a free one). Throws Error::Code::kInvalidInput when the
  // address is malformed or cannot be bound (in use).
  HttpServer(const std::string& address, HttpLimits limits, HttpRoutes routes);
  // A server whose every reply is made at once by `handler` on the I/O thread.
  HttpServer(const std::string& address, HttpLimits limits, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  // Connections open now (for tests and metrics).
  int open_connections() const;
  // WebSocket and event stream connections open now: what a server that ends its sessions waits
  // for, so that each gets its last message (an idle keep-alive connection costs nothing).
  int open_streams() const;
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lipsync::server
