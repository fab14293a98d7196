#include "support/ws_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace lipsync::testing {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct WsClient::Impl {
  asio::io_context io;
  websocket::stream<tcp::socket> ws{io};
  websocket::response_type response;
  beast::flat_buffer buffer;
  bool ok = false;
  bool failed = false;
};

WsClient::WsClient(int port, const std::string& target,
                   const std::vector<std::pair<std::string, std::string>>& headers)
    : impl_(std::make_unique<Impl>()) {
  beast::error_code ec;
  impl_->ws.next_layer().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
  if (ec) return;
  impl_->ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& r) {
    for (const auto& [name, value] : headers) r.set(name, value);
  }));
  impl_->ws.handshake(impl_->response, "127.0.0.1:" + std::to_string(port), target, ec);
  impl_->ok = !ec;
  if (impl_->ok) return;
  // This Beast keeps a refusal's reply to itself: ask again by hand to read it.
  tcp::socket again(impl_->io);
  again.connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
  if (ec) return;
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  for (const auto& [name, value] : headers) req.set(name, value);
  http::write(again, req, ec);
  if (ec) return;
  beast::flat_buffer buffer;
  http::read(again, buffer, impl_->response, ec);
}

WsClient::~WsClient() {
  beast::error_code ignored;
  impl_->ws.next_layer().close(ignored);
}

bool WsClient::ok() const {
  return impl_->ok;
}

int WsClient::status() const {
  return static_cast<int>(impl_->response.result_int());
}

std::string WsClient::refusal_body() const {
  return impl_->response.body();
}

bool WsClient::send_text(const std::string& text) {
  return send(true, text);
}

bool WsClient::send_binary(const std::string& bytes) {
  return send(false, bytes);
}

bool WsClient::send(bool text, const std::string& data) {
  if (!impl_->ok || impl_->failed) return false;
  beast::error_code ec;
  impl_->ws.text(text);
  impl_->ws.write(asio::buffer(data), ec);
  impl_->failed = static_cast<bool>(ec);
  return !ec;
}

std::optional<std::string> WsClient::read(std::chrono::milliseconds timeout) {
  if (!impl_->ok || impl_->failed) return std::nullopt;
  std::optional<std::string> got;
  bool done = false;
  impl_->ws.async_read(impl_->buffer, [&](beast::error_code ec, std::size_t) {
    done = true;
    if (ec) return;
    got = beast::buffers_to_string(impl_->buffer.data());
    impl_->buffer.consume(impl_->buffer.size());
  });
  impl_->io.restart();
  impl_->io.run_for(timeout);
  if (!done) {
    beast::error_code ignored;
    impl_->ws.next_layer().close(ignored);
    impl_->io.restart();
    impl_->io.run();  // the read ends (aborted)
  }
  if (!got) impl_->failed = true;
  return got;
}

int WsClient::close_code() const {
  return static_cast<int>(impl_->ws.reason().code);
}

}  // namespace lipsync::testing
