#include "server/http_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "core/error.h"

namespace lipsync::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  Handler handler;
  std::atomic<bool> stopping{false};
  std::thread thread;
  int port = 0;

  void serve() {
    while (!stopping) {
      tcp::socket socket(io);
      boost::system::error_code ec;
      acceptor.accept(socket, ec);
      if (stopping) break;
      if (ec) continue;
      beast::flat_buffer buffer;
      http::request<http::string_body> request;
      http::read(socket, buffer, request, ec);
      if (ec) continue;
      HttpReply reply;
      try {
        reply = handler(std::string(request.method_string()), std::string(request.target()));
      } catch (const std::exception& e) {
        reply = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
      }
      http::response<http::string_body> response{static_cast<http::status>(reply.status),
                                                 request.version()};
      response.set(http::field::server, "lipsync");
      response.set(http::field::content_type, reply.content_type);
      response.keep_alive(false);
      response.body() = std::move(reply.body);
      response.prepare_payload();
      http::write(socket, response, ec);
      socket.shutdown(tcp::socket::shutdown_send, ec);
    }
  }
};

HttpServer::HttpServer(const std::string& address, Handler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw Error::invalid_input("server.http: '" + address + "' is not host:port");
  }
  try {
    const auto ip = asio::ip::make_address(address.substr(0, colon));
    const int port = std::stoi(address.substr(colon + 1));
    const tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen();
    impl_->port = impl_->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    throw Error::invalid_input("server.http: cannot listen on '" + address + "': " + e.what());
  }
  impl_->thread = std::thread([this] { impl_->serve(); });
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::port() const {
  return impl_->port;
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  // Wake the blocking accept with a connection of our own.
  boost::system::error_code ec;
  tcp::socket poke(impl_->io);
  poke.connect(tcp::endpoint(impl_->acceptor.local_endpoint().address(), impl_->port), ec);
  impl_->thread.join();
  impl_->acceptor.close(ec);
}

}  // namespace lipsync::server
