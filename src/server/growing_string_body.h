// GrowingStringBody: the HTTP server's request body type (Boost.Beast), a std::string that grows
// with the octets that arrive. Beast's string_body reserves the whole declared Content-Length
// before the first octet: a header that declares 100 GB is a promise, not memory to set aside.
// Its own header so that the HTTP fuzz harness parses with the very type the server uses.
// Thread contract: a plain Beast body type; one parser at a time.
#pragma once

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/optional.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lipsync::server {

struct GrowingStringBody {
  using value_type = std::string;
  static std::uint64_t size(const value_type& body) { return body.size(); }

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      constexpr std::uint64_t kMostReserved = 1 << 20;
      if (length) body_.reserve(static_cast<std::size_t>(std::min(*length, kMostReserved)));
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      const std::size_t n = boost::asio::buffer_size(buffers);
      const std::size_t at = body_.size();
      if (n > body_.max_size() - at) {
        ec = boost::beast::http::error::buffer_overflow;
        return 0;
      }
      body_.resize(at + n);
      ec = {};
      return boost::asio::buffer_copy(boost::asio::buffer(body_.data() + at, n), buffers);
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

}  // namespace lipsync::server
