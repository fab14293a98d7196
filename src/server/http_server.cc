#include "server/http_server.h"

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "server/server_options.h"

namespace lipsync::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
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

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  class Session;

  asio::io_context io;
  tcp::acceptor acceptor{io};
  HttpLimits limits;
  Handler handler;
  std::thread thread;
  int port = 0;
  std::atomic<int> connections{0};
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // I/O thread only

  void accept();
  void close_all();
};

// One connection: read a request (within the timeout), answer it, maybe read the next.
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Impl> server, tcp::socket socket)
      : server_(std::move(server)), stream_(std::move(socket)) {
    ++server_->connections;
  }
  ~Session() { --server_->connections; }

  void start() {
    server_->sessions[this] = weak_from_this();
    read();
  }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    parser_->body_limit(server_->limits.max_body_bytes);
    stream_.expires_after(std::chrono::seconds(server_->limits.timeout_s));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      const int status = status_for_read_error(ec);
      if (status == 0) return finish();
      HttpReply reply{status, "text/plain; charset=utf-8", reason_text(status), {}};
      lingering_ = true;  // the client may still be sending what we refused
      return write(reply, 11, false, false);
    }
    const auto& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    const std::string target(req.target());
    const auto q = target.find('?');
    request.path = target.substr(0, q);
    if (q != std::string::npos) request.query = target.substr(q + 1);
    request.body = req.body();
    HttpReply reply;
    try {
      reply = server_->handler(request);
    } catch (const std::exception& e) {
      reply = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n", {}};
    }
    write(reply, req.version(), req.keep_alive(), req.method() == http::verb::head);
  }

  void write(const HttpReply& reply, unsigned version, bool keep_alive, bool head) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), version);
    response->set(http::field::server, "lipsync");
    response->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) response->set(name, value);
    response->keep_alive(keep_alive);
    response->body() = head ? std::string() : reply.body;
    response->prepare_payload();
    if (head) response->content_length(reply.body.size());
    stream_.expires_after(std::chrono::seconds(server_->limits.timeout_s));
    http::async_write(
        stream_, *response,
        [self = shared_from_this(), response, keep_alive](beast::error_code ec, std::size_t) {
          if (!ec && self->lingering_) return self->drain();
          if (ec || !keep_alive) return self->finish();
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
    close();
    server_->sessions.erase(this);
  }

  static constexpr std::size_t kMaxDrainBytes = 16 << 20;

  std::shared_ptr<Impl> server_;
  bool lingering_ = false;
  std::size_t drained_ = 0;
  std::array<char, 16384> discard_{};
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

void HttpServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (!self->acceptor.is_open()) return;
    if (!ec) {
      if (self->connections.load() >= self->limits.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<Session>(self, std::move(socket))->start();
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
}

HttpServer::HttpServer(const std::string& address, HttpLimits limits, Handler handler)
    : impl_(std::make_shared<Impl>()) {
  impl_->handler = std::move(handler);
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
  impl_->thread = std::thread([impl = impl_] { impl->io.run(); });
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

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [impl = impl_] { impl->close_all(); });
  impl_->thread.join();
}

}  // namespace lipsync::server
