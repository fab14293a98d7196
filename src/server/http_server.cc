#include "server/http_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <limits>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "core/error.h"
#include "core/mutex.h"
#include "core/text.h"
#include "server/growing_string_body.h"
#include "server/server_options.h"

namespace lipsync::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// The status for a request Beast could not parse, or 0 when the connection just ended.
int status_for_read_error(const beast::error_code& ec) {
  if (ec == http::error::header_limit) return 431;
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == http::error::short_read) {
    return 0;
  }
  if (ec.category() == http::make_error_code(http::error::bad_method).category()) return 400;
  return 0;  // socket errors, timeouts, shutdown
}

const char* reason_text(int status) {
  switch (status) {
    case 400:
      return "bad request\n";
    case 413:
      return "request body too large\n";
    case 431:
      return "request header too large\n";
    default:
      return "error\n";
  }
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return {};
}

std::string HttpRequest::param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view item = rest.substr(0, amp);
    const auto eq = item.find('=');
    if (item.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

void HttpResponder::reply(HttpReply r) const {
  if (!reply_ || reply_->done.exchange(true)) return;
  reply_->reply(std::move(r));
}

void HttpResponder::resume() const {
  if (reply_ && reply_->resume) reply_->resume();
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  class Session;
  class WebSocket;
  class EventStream;

  asio::io_context io;
  tcp::acceptor acceptor{io};
  HttpLimits limits;
  HttpRoutes routes;
  std::thread thread;
  int port = 0;
  std::atomic<int> connections{0};
  std::atomic<int> open_streams{0};  // WebSockets and event streams alive (any thread drops one)
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;         // I/O thread only
  std::unordered_map<WebSocket*, std::weak_ptr<WebSocket>> websockets;   // I/O thread only
  std::unordered_map<EventStream*, std::weak_ptr<EventStream>> streams;  // I/O thread only

  // Connections per remote address: full ones and probe-only ones. Counted where a session is
  // made and destroyed (the I/O thread, or whichever thread drops its last reference).
  struct ClientCount {
    int full = 0;
    int probe_only = 0;
  };
  core::Mutex clients_mutex;
  std::unordered_map<std::string, ClientCount> clients LIPSYNC_GUARDED_BY(clients_mutex);
  int probe_only_connections LIPSYNC_GUARDED_BY(clients_mutex) = 0;

  // Whether a new connection from `client` is served in full, for probes only, or refused
  // (nullopt); counts it when it is taken.
  std::optional<bool> admit(const std::string& client);
  void release(const std::string& client, bool probe_only);

  void accept();
  void close_all();
};

// Probe-only connections: a few per address, a bounded number in all; their header must come
// quickly.
constexpr int kProbeOnlyPerClient = 4;
constexpr int kProbeOnlyInAll = 64;
constexpr int kProbeOnlyTimeoutS = 2;

std::optional<bool> HttpServer::Impl::admit(const std::string& client) {
  core::MutexLock lock(clients_mutex);
  ClientCount& c = clients[client];
  if (connections.load() < limits.max_connections && c.full < limits.max_connections_per_client) {
    ++c.full;
    ++connections;
    return true;
  }
  if (!limits.probe_paths.empty() && c.probe_only < kProbeOnlyPerClient &&
      probe_only_connections < kProbeOnlyInAll) {
    ++c.probe_only;
    ++probe_only_connections;
    return false;
  }
  if (c.full == 0 && c.probe_only == 0) clients.erase(client);
  return std::nullopt;
}

void HttpServer::Impl::release(const std::string& client, bool probe_only) {
  core::MutexLock lock(clients_mutex);
  const auto it = clients.find(client);
  if (it == clients.end()) return;
  if (probe_only) {
    --it->second.probe_only;
    --probe_only_connections;
  } else {
    --it->second.full;
    --connections;
  }
  if (it->second.full == 0 && it->second.probe_only == 0) clients.erase(it);
}

// One connection: read a request's header (within the timeout), then its body whole or as a
// stream, hand it to the routes, write the reply when it comes, maybe read the next.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  // `probe_only`: over a connection limit; its one request is served only for a probe path.
  Session(std::shared_ptr<Impl> server, tcp::socket socket, std::string client, bool probe_only)
      : server_(std::move(server)),
        client_(std::move(client)),
        probe_only_(probe_only),
        stream_(std::move(socket)) {}
  ~Session() { server_->release(client_, probe_only_); }

  void start() {
    server_->sessions[this] = weak_from_this();
    read();
  }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    hold_.reset();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    // No body limit while the header is read: Beast would refuse a Content-Length over it
    // before a streamed route (a long raw speech upload) is asked. on_header sets it for the
    // bodies that are read whole. (The largest value, not boost::none: this Beast compares a
    // Content-Length with the optional, and every length is more than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    body_stream_.reset();
    body_done_ = false;
    replied_ = false;
    ++generation_;
    stream_.expires_after(
        std::chrono::seconds(probe_only_ ? kProbeOnlyTimeoutS : server_->limits.timeout_s));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  // A reply for a read that failed: a status to send, or just the end of the connection.
  void refuse(beast::error_code ec) {
    const int status = status_for_read_error(ec);
    if (status == 0) return finish();
    std::string text = reason_text(status);
    if (status == 400) text = "bad request: " + ec.message() + "\n";  // what Beast found
    HttpReply reply{status, "text/plain; charset=utf-8", text, {}};
    lingering_ = true;  // the client may still be sending what we refused
    version_ = 11;
    keep_alive_ = false;
    head_ = false;
    write(reply);
  }

  void on_header(beast::error_code ec) {
    if (ec) return refuse(ec);
    const auto& req = parser_->get();
    request_ = HttpRequest{};
    request_.method = std::string(req.method_string());
    const std::string target(req.target());
    const auto q = target.find('?');
    request_.path = target.substr(0, q);
    log_method_ = request_.method;
    log_path_ = request_.path;
    log_start_ = std::chrono::steady_clock::now();
    if (q != std::string::npos) request_.query = target.substr(q + 1);
    for (const auto& field : req) {
      request_.headers.emplace_back(core::to_lower_ascii(std::string(field.name_string())),
                                    std::string(field.value()));
    }
    version_ = req.version();
    keep_alive_ = req.keep_alive() && !probe_only_;
    head_ = req.method() == http::verb::head;
    if (probe_only_) {
      const auto& probes = server_->limits.probe_paths;
      if (std::find(probes.begin(), probes.end(), request_.path) == probes.end()) {
        return on_reply({503,
                         "text/plain; charset=utf-8",
                         "too many connections (server.http_max_connections, "
                         "server.http_max_connections_per_client); retry later\n",
                         {{"Retry-After", "1"}}});
      }
    }
    if (server_->routes.websocket && websocket::is_upgrade(parser_->get())) {
      if (upgrade()) return;
    }
    if (server_->routes.events && req.method() == http::verb::get && parser_->is_done()) {
      if (event_stream()) return;
    }
    if (server_->routes.stream && !parser_->is_done()) {
      HttpBodyPlan plan;
      try {
        plan = server_->routes.stream(request_, responder());
      } catch (const std::exception& e) {
        plan.refusal = {
            500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n", {}};
      }
      if (plan.refusal) return on_reply(std::move(*plan.refusal));
      body_stream_ = std::move(plan.stream);
    }
    if (!body_stream_) {
      const auto length = parser_->content_length();
      if (length && *length > server_->limits.max_body_bytes) {
        return refuse(http::error::body_limit);
      }
      parser_->body_limit(server_->limits.max_body_bytes);  // no body octet is parsed yet
    }
    if (beast::iequals(request_.header("expect"), "100-continue")) {
      auto cont =
          std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
      http::async_write(stream_, *cont,
                        [self = shared_from_this(), cont](beast::error_code e, std::size_t) {
                          if (e) return self->finish();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  // A WebSocket upgrade: handed to its handler (true), refused (true: the reply is on its way),
  // or not a WebSocket route (false: served as an ordinary request).
  bool upgrade();
  // The same for an event stream.
  bool event_stream();
  // What both do: ask the route for its plan, send its refusal, or hand the connection to
  // `start`.
  template <class Plan, class Ask, class Start>
  bool take_over(Ask ask, Start start);

  void read_body() {
    if (body_stream_) return read_piece();
    if (parser_->is_done()) return dispatch();
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->refuse(ec);
                       self->dispatch();
                     });
  }

  void dispatch() {
    body_done_ = true;
    hold_ = shared_from_this();  // no read or write is pending until the reply comes
    request_.body = std::move(parser_->get().body());
    try {
      server_->routes.handle(std::move(request_), responder());
    } catch (const std::exception& e) {
      on_reply({500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n", {}});
    }
  }

  // Streamed bodies ---------------------------------------------------------------------------
  void read_piece() {
    if (parser_->is_done()) return end_stream(true);
    stream_.expires_after(std::chrono::seconds(server_->limits.timeout_s));
    http::async_read_some(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_piece(ec); });
  }

  void on_piece(beast::error_code ec) {
    if (!body_stream_) return;
    std::string piece = std::move(parser_->get().body());
    parser_->get().body().clear();
    bool more = true;
    if (!piece.empty()) more = body_stream_->on_piece(std::move(piece));
    if (ec) {
      end_stream(false);
      // A malformed body (a bad chunk) is told; a connection that ended just ends.
      if (status_for_read_error(ec) != 0) return refuse(ec);
      return finish();
    }
    if (parser_->is_done()) return end_stream(true);
    if (more) return read_piece();
    paused_ = true;  // resume() reads on
    hold_ = shared_from_this();
  }

  void on_resume() {
    if (!paused_) return;
    paused_ = false;
    auto keep = std::move(hold_);
    read_piece();
  }

  void end_stream(bool complete) {
    if (body_done_) return;
    body_done_ = true;
    if (complete) hold_ = shared_from_this();
    auto body = std::move(body_stream_);
    if (body) body->on_end(complete, responder());
  }

  // Replies ----------------------------------------------------------------------------------
  // Replies and resumes may come from any thread, also after the server has stopped (a WebRTC
  // answer still being made): they hold the server's state only weakly.
  HttpResponder responder() {
    auto weak = weak_from_this();
    const std::weak_ptr<Impl> server = server_;
    const int generation = generation_;
    return HttpResponder(
        [weak, server, generation](HttpReply reply) {
          const auto s = server.lock();
          if (!s) return;
          asio::post(s->io, [weak, generation, reply = std::move(reply)]() mutable {
            auto self = weak.lock();
            if (self && self->generation_ == generation) self->on_reply(std::move(reply));
          });
        },
        [weak, server, generation] {
          const auto s = server.lock();
          if (!s) return;
          asio::post(s->io, [weak, generation] {
            auto self = weak.lock();
            if (self && self->generation_ == generation) self->on_resume();
          });
        });
  }

  void on_reply(HttpReply reply) {
    if (replied_) return;
    replied_ = true;
    auto keep = std::move(hold_);
    if (!body_done_) {
      // A reply before the body is in: say it, drop the rest, and end the connection.
      body_done_ = true;
      body_stream_.reset();
      lingering_ = true;
      keep_alive_ = false;
    }
    write(reply);
  }

  // One access-log line per request (info; the probes and /metrics at debug): method, path
  // (never the query, where an event stream's token may be), status, time to the reply, the
  // reply's bytes and the client's address.
  void log_access(int status, std::size_t bytes, const char* note = "") const {
    if (log_method_.empty()) return;  // no request came (a refused or idle connection)
    const bool quiet = log_path_ == "/healthz" || log_path_ == "/readyz" || log_path_ == "/metrics";
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - log_start_)
            .count();
    spdlog::log(quiet ? spdlog::level::debug : spdlog::level::info,
                "http {} {} {} {:.1f} ms {} B{} {}", log_method_, core::quote(log_path_, 200),
                status, ms, bytes, note, client_);
  }

  void write(const HttpReply& reply) {
    log_access(reply.status, reply.body.size());
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), version_);
    response->set(http::field::server, "lipsync");
    response->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) response->set(name, value);
    response->keep_alive(keep_alive_);
    response->body() = head_ ? std::string() : reply.body;
    response->prepare_payload();
    if (head_) response->content_length(reply.body.size());
    stream_.expires_after(std::chrono::seconds(server_->limits.timeout_s));
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code ec, std::size_t) {
                        if (!ec && self->lingering_) return self->drain();
                        if (ec || !self->keep_alive_) return self->finish();
                        self->read();
                      });
  }

  // After refusing a request whose body is still coming: stop sending, then read and drop what
  // arrives for a little while, so that closing does not reset the connection and lose the reply.
  void drain() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(1));
    stream_.async_read_some(asio::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->finish();
                              self->drain();
                            });
  }

  void finish() {
    if (body_stream_) end_stream(false);
    ++generation_;  // a late reply or resume finds nothing
    auto keep = shared_from_this();
    close();
    server_->sessions.erase(this);
  }

  static constexpr std::size_t kMaxDrainBytes = 16 << 20;

  friend class WebSocket;
  friend class EventStream;
  std::shared_ptr<Impl> server_;
  const std::string client_;  // the remote address
  // The request being answered, for its access-log line.
  std::string log_method_;
  std::string log_path_;
  std::chrono::steady_clock::time_point log_start_;
  const bool probe_only_;
  bool lingering_ = false;
  std::size_t drained_ = 0;
  std::array<char, 16384> discard_{};
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<GrowingStringBody>> parser_;
  HttpRequest request_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  std::shared_ptr<HttpBodyStream> body_stream_;
  bool body_done_ = false;
  bool replied_ = false;
  bool paused_ = false;
  int generation_ = 0;  // one per request: replies and resumes for an earlier one are dropped
  // The connection itself while it waits for a reply or a resume with nothing pending on its
  // socket (dropped when it is closed).
  std::shared_ptr<Session> hold_;
};

// A peer that sends no frame (a ping's answer included) for this long is gone; a ping is sent
// after half of it.
constexpr int kWebSocketIdleS = 30;

// Tells a connection's handler (a WebSocket's, an event stream's) that it ended, once; what it
// throws is logged, never let out of the I/O thread.
template <class Handler>
void tell_closed(std::shared_ptr<Handler> handler, const char* what) {
  if (!handler) return;
  try {
    handler->on_close();
  } catch (const std::exception& e) {
    spdlog::error("http: closing {} failed: {}", what, e.what());
  }
}

// One WebSocket connection, after the HTTP session that upgraded it: reads whole messages into
// the handler (paused while it wants no more), writes queued text messages one at a time.
// Everything runs on the I/O thread; the peer methods post there.
class HttpServer::Impl::WebSocket : public WebSocketPeer,
                                    public std::enable_shared_from_this<WebSocket> {
 public:
  explicit WebSocket(std::shared_ptr<Impl> server) : server_(std::move(server)) {
    ++server_->open_streams;
  }
  ~WebSocket() override { --server_->open_streams; }
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // Takes the connection over from `owner` (kept until the end: it holds the connection's count)
  // and answers the handshake.
  void start(std::shared_ptr<Session> owner, std::shared_ptr<WebSocketHandler> handler) {
    owner_ = std::move(owner);
    handler_ = std::move(handler);
    ws_.emplace(std::move(owner_->stream_));
    beast::get_lowest_layer(*ws_).expires_never();  // the stream's own timeouts from here
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(server_->limits.timeout_s);
    timeouts.idle_timeout = std::chrono::seconds(kWebSocketIdleS);
    timeouts.keep_alive_pings = true;
    ws_->set_option(timeouts);
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::response_type& r) { r.set(http::field::server, "lipsync"); }));
    // The size is checked here, a piece at a time (read()): Beast's own check fails the
    // connection with a teardown that can reset it before the client has read the 1009.
    ws_->read_message_max(0);
    server_->websockets[this] = weak_from_this();
    const auto& request = owner_->parser_->get();
    // A client sends no frame before the handshake's answer; anything it sent early is dropped.
    ws_->async_accept(request, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->end();
      self->open_ = true;
      self->read();
      self->write();
    });
  }

  void send_text(std::string message) override {
    on_io([message = std::move(message)](WebSocket& self) mutable {
      if (self.ended_ || self.closing_) return;
      self.queued_bytes_ += message.size();
      if (self.queued_bytes_ > kMaxWebSocketQueuedBytes) {
        spdlog::warn("http: a WebSocket client reads too slowly ({} bytes waiting); closed",
                     self.queued_bytes_);
        return self.end();
      }
      self.queue_.push_back(std::move(message));
      self.write();
    });
  }

  void resume() override {
    on_io([](WebSocket& self) {
      if (!self.paused_ || self.ended_) return;
      self.paused_ = false;
      self.read();
    });
  }

  void close(std::string reason, int code) override {
    on_io([reason = std::move(reason), code](WebSocket& self) mutable {
      if (self.ended_ || self.closing_) return;
      self.closing_ = true;
      self.close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code),
                                                   reason.substr(0, 120));  // 123 bytes at most
      self.write();
    });
  }

  // Ends the connection now (it failed, the server stops, the client reads too slowly, the
  // handler threw): closes the socket, tells the handler once, forgets it. I/O thread.
  void end() {
    if (ended_) return;
    ended_ = true;
    beast::error_code ignored;
    if (ws_) beast::get_lowest_layer(*ws_).socket().close(ignored);
    // The queue stays: a write under way still reads its front (it ends with the connection).
    server_->websockets.erase(this);
    tell_closed(std::move(handler_), "a WebSocket");
  }

 private:
  template <class F>
  void on_io(F f) {
    auto weak = weak_from_this();
    asio::post(server_->io, [weak, f = std::move(f)]() mutable {
      if (auto self = weak.lock()) f(*self);
    });
  }

  // Reads the next message a piece at a time: one over the body limit is answered with a close
  // (1009, too big) that drains the rest of it, so the client reads why.
  void read() {
    if (reading_ || ended_ || paused_ || too_big_) return;
    reading_ = true;
    constexpr std::size_t kPiece = 64u << 10;
    ws_->async_read_some(buffer_, kPiece,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                           self->reading_ = false;
                           self->on_read(ec);
                         });
  }

  void on_read(beast::error_code ec) {
    if (ec || ended_) return end();  // ended meanwhile: a message read before is dropped
    if (buffer_.size() > server_->limits.max_body_bytes) {
      buffer_.consume(buffer_.size());
      too_big_ = true;  // no more reads: the close drains the message and ends the connection
      closing_ = true;
      close_reason_ = websocket::close_reason(
          websocket::close_code::too_big,
          "a message is larger than " + std::to_string(server_->limits.max_body_bytes) + " bytes");
      // No message comes after this one: the handler lets go now (an agent's open utterance is
      // abandoned), not when a client that never answers the close times out.
      tell_closed(std::move(handler_), "a WebSocket");
      return write();
    }
    if (!ws_->is_message_done()) return read();
    std::string data = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    bool more = true;
    try {
      more = handler_->on_message(ws_->got_text(), std::move(data));
    } catch (const std::exception& e) {
      spdlog::error("http: a WebSocket message failed: {}", e.what());
      return end();
    }
    if (more) return read();
    paused_ = true;
  }

  void write() {
    if (!open_ || writing_ || ended_) return;
    if (queue_.empty()) {
      if (closing_ && !close_sent_) {
        close_sent_ = true;
        writing_ = true;
        ws_->async_close(close_reason_, [self = shared_from_this()](beast::error_code ec) {
          self->writing_ = false;
          if (ec) self->end();
          // The read under way ends once the client answers the close.
          if (self->paused_ || self->too_big_) self->end();
        });
      }
      return;
    }
    writing_ = true;
    ws_->text(true);
    ws_->async_write(asio::buffer(queue_.front()),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->writing_ = false;
                       // Ended meanwhile (the read failed): the queue is still whole, unsent.
                       if (ec || self->ended_) return self->end();
                       self->queued_bytes_ -= self->queue_.front().size();
                       self->queue_.pop_front();
                       self->write();
                     });
  }

  std::shared_ptr<Impl> server_;
  std::shared_ptr<Session> owner_;
  std::shared_ptr<WebSocketHandler> handler_;
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  websocket::close_reason close_reason_;
  bool open_ = false;  // the handshake is done
  bool reading_ = false;
  bool writing_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool too_big_ = false;  // a message was over the limit: closed with 1009
  bool ended_ = false;
};

// One event stream, after the HTTP session whose GET it answers: writes the reply's header, then
// what is queued, a keep-alive comment now and then, and reads only to see the client go.
// Everything runs on the I/O thread; the peer methods post there.
class HttpServer::Impl::EventStream : public EventStreamPeer,
                                      public std::enable_shared_from_this<EventStream> {
 public:
  explicit EventStream(std::shared_ptr<Impl> server)
      : server_(std::move(server)), timer_(server_->io) {
    ++server_->open_streams;
  }
  ~EventStream() override { --server_->open_streams; }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  void start(std::shared_ptr<Session> owner, std::shared_ptr<EventStreamHandler> handler,
             const std::vector<std::pair<std::string, std::string>>& headers) {
    owner_ = std::move(owner);
    handler_ = std::move(handler);
    server_->streams[this] = weak_from_this();
    std::string head =
        "HTTP/1.1 200 OK\r\nServer: lipsync\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n";
    for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
    head += "\r\n";
    queue_.push_front(std::move(head));  // before anything sent meanwhile
    queued_bytes_ += queue_.front().size();
    open_ = true;
    read();
    write();
    keep_alive();
  }

  void send(std::string text) override {
    on_io([text = std::move(text)](EventStream& self) mutable {
      if (self.ended_ || self.closing_) return;
      self.queued_bytes_ += text.size();
      if (self.queued_bytes_ > kMaxEventStreamQueuedBytes) {
        spdlog::warn("http: an event stream client reads too slowly ({} bytes waiting); closed",
                     self.queued_bytes_);
        return self.end();
      }
      self.queue_.push_back(std::move(text));
      self.write();
    });
  }

  void close() override {
    on_io([](EventStream& self) {
      if (self.ended_ || self.closing_) return;
      self.closing_ = true;
      self.write();
    });
  }

  void end() {
    if (ended_) return;
    ended_ = true;
    timer_.cancel();
    beast::error_code ignored;
    owner_->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    owner_->stream_.socket().close(ignored);
    server_->streams.erase(this);
    tell_closed(std::move(handler_), "an event stream");
  }

 private:
  template <class F>
  void on_io(F f) {
    auto weak = weak_from_this();
    asio::post(server_->io, [weak, f = std::move(f)]() mutable {
      if (auto self = weak.lock()) f(*self);
    });
  }

  // A client sends nothing on an event stream: a read ends when it goes (what it sends anyway
  // is dropped).
  void read() {
    owner_->stream_.socket().async_read_some(
        asio::buffer(discard_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec || self->ended_) return self->end();
          self->read();
        });
  }

  void write() {
    if (!open_ || writing_ || ended_) return;
    if (queue_.empty()) {
      if (closing_) end();
      return;
    }
    writing_ = true;
    owner_->stream_.expires_after(std::chrono::seconds(kEventStreamStallS));
    asio::async_write(owner_->stream_, asio::buffer(queue_.front()),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec || self->ended_) return self->end();
                        self->owner_->stream_.expires_never();
                        self->queued_bytes_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                        self->write();
                      });
  }

  void keep_alive() {
    timer_.expires_after(std::chrono::seconds(kEventStreamKeepAliveS));
    timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->ended_) return;
      if (!self->closing_) {
        self->queue_.push_back(": keep-alive\n\n");
        self->queued_bytes_ += self->queue_.back().size();
        self->write();
      }
      self->keep_alive();
    });
  }

  std::shared_ptr<Impl> server_;
  std::shared_ptr<Session> owner_;  // its socket, and the connection's count
  std::shared_ptr<EventStreamHandler> handler_;
  asio::steady_timer timer_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  std::array<char, 4096> discard_{};
  bool open_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool ended_ = false;
};

template <class Plan, class Ask, class Start>
bool HttpServer::Impl::Session::take_over(Ask ask, Start start) {
  Plan plan;
  try {
    plan = ask();
  } catch (const std::exception& e) {
    plan.refusal = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n", {}};
  }
  if (plan.refusal) {
    keep_alive_ = false;
    on_reply(std::move(*plan.refusal));
    return true;
  }
  if (!plan.handler) return false;
  // The connection is the new owner's from here: this session leaves the server's list (the
  // owner is in its own) and is kept only for its count.
  body_done_ = true;
  replied_ = true;
  ++generation_;
  server_->sessions.erase(this);
  log_access(std::is_same_v<Plan, WebSocketPlan> ? 101 : 200, 0,
             std::is_same_v<Plan, WebSocketPlan> ? " (websocket)" : " (event stream)");
  start(plan);
  return true;
}

bool HttpServer::Impl::Session::event_stream() {
  auto stream = std::make_shared<EventStream>(server_);
  return take_over<EventStreamPlan>([&] { return server_->routes.events(request_, stream); },
                                    [&](EventStreamPlan& plan) {
                                      stream->start(shared_from_this(), std::move(plan.handler),
                                                    plan.headers);
                                    });
}

bool HttpServer::Impl::Session::upgrade() {
  auto ws = std::make_shared<WebSocket>(server_);
  return take_over<WebSocketPlan>(
      [&] { return server_->routes.websocket(request_, ws); },
      [&](WebSocketPlan& plan) { ws->start(shared_from_this(), std::move(plan.handler)); });
}

void HttpServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (!self->acceptor.is_open()) return;
    if (!ec) {
      beast::error_code endpoint_error;
      const auto remote = socket.remote_endpoint(endpoint_error);
      const std::string client = endpoint_error ? std::string() : remote.address().to_string();
      const std::optional<bool> full = endpoint_error ? std::nullopt : self->admit(client);
      if (!full) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<Session>(self, std::move(socket), client, !*full)->start();
      }
    }
    self->accept();
  });
}

void HttpServer::Impl::close_all() {
  beast::error_code ec;
  acceptor.close(ec);
  for (auto& [raw, weak] : sessions) {
    if (auto s = weak.lock()) s->close();
  }
  sessions.clear();
  auto open_websockets = std::move(websockets);
  for (auto& [raw, weak] : open_websockets) {
    if (auto w = weak.lock()) w->end();
  }
  auto open_event_streams = std::move(streams);
  for (auto& [raw, weak] : open_event_streams) {
    if (auto e = weak.lock()) e->end();
  }
}

HttpServer::HttpServer(const std::string& address, HttpLimits limits, Handler handler)
    : HttpServer(
          address, limits,
          HttpRoutes{[handler = std::move(handler)](HttpRequest request, HttpResponder responder) {
                       responder.reply(handler(request));
                     },
                     {},
                     {},
                     {}}) {}

HttpServer::HttpServer(const std::string& address, HttpLimits limits, HttpRoutes routes)
    : impl_(std::make_shared<Impl>()) {
  impl_->routes = std::move(routes);
  impl_->limits = limits;
  const ListenAddress where = parse_listen_address(address, "server.http");
  try {
    const auto ip = asio::ip::make_address(where.host == "localhost" ? "127.0.0.1" : where.host);
    const tcp::endpoint endpoint(ip, static_cast<unsigned short>(where.port));
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen();
    impl_->port = impl_->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    throw Error::invalid_input("server.http: cannot listen on '" + address + "': " + e.what());
  }
  impl_->accept();
  impl_->thread = std::thread([impl = impl_] {
    // A handler that throws ends its own connection (its state goes with the handler), never
    // the server: log it and run on.
    for (;;) {
      try {
        impl->io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: a request failed: {}", e.what());
      } catch (...) {
        spdlog::error("http: a request failed with an unknown exception");
      }
    }
  });
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::port() const {
  return impl_->port;
}

int HttpServer::open_connections() const {
  return impl_->connections.load();
}

int HttpServer::open_streams() const {
  return impl_->open_streams.load();
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [impl = impl_] { impl->close_all(); });
  impl_->thread.join();
}

}  // namespace lipsync::server
