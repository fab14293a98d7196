// ServerOptions: listen addresses and the refusal of an open HTTP API on a network address; the
// log line formats.
#include "server/server_options.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/log_format.h"

namespace lipsync::server {
namespace {

TEST(ServerOptions, LoopbackHostsAreOnlyThisMachine) {
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1"}) {
    EXPECT_TRUE(is_loopback_host(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "127.example.com",
                           "example.com", "::ffff:127.0.0.1", ""}) {
    EXPECT_FALSE(is_loopback_host(host)) << host;
  }
}

// Issue 25: `serve --http 0.0.0.0:8080` without a token put an API that creates sessions and
// makes the avatar speak on the network, silently.
TEST(ServerOptions, AnHttpApiOnANetworkAddressNeedsATokenOrAllowAnonymous) {
  ServerOptions o;
  EXPECT_NO_THROW(o.validate());  // the default listens on loopback
  for (const char* address : {"0.0.0.0:8080", "[::]:0", "10.0.0.5:80"}) {
    o.http_address = address;
    try {
      o.validate();
      ADD_FAILURE() << address << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
      const std::string message = e.what();
      EXPECT_NE(message.find(std::string("server.http: '") + address), std::string::npos)
          << message;
      EXPECT_NE(message.find("server.api_token"), std::string::npos) << message;
      EXPECT_NE(message.find("server.allow_anonymous: true"), std::string::npos) << message;
    }
  }
  o.http_address = "0.0.0.0:8080";
  o.api_token = "secret";
  EXPECT_NO_THROW(o.validate());
  o.api_token.clear();
  o.allow_anonymous = true;
  EXPECT_NO_THROW(o.validate());
  o.allow_anonymous = false;
  o.http_address = "off";  // no HTTP at all: nothing to protect
  EXPECT_NO_THROW(o.validate());
  o.http_address = "[::1]:8080";
  EXPECT_NO_THROW(o.validate());
}

// Issue 26: the instance id every session id starts with: checked when given, made from the
// host name when not.
TEST(ServerOptions, AnInstanceIdIsLowercaseLettersDigitsAndDashesAndDefaultsToTheHostName) {
  for (const char* good : {"a", "lipsync-0", "pod-12", "x0123456789"}) {
    EXPECT_TRUE(is_instance_id(good)) << good;
  }
  for (const char* bad : {"", "Pod", "a.b", "a_b", "a b", "é"}) {
    EXPECT_FALSE(is_instance_id(bad)) << bad;
  }
  EXPECT_TRUE(is_instance_id(std::string(63, 'a')));
  EXPECT_FALSE(is_instance_id(std::string(64, 'a')));
  ServerOptions o;
  o.instance_id = "Pod.1";
  try {
    o.validate();
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("server.instance_id: 'Pod.1' is not an instance id"),
              std::string::npos)
        << e.what();
  }
  o.instance_id = "pod-1";
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(o.resolved_instance_id(), "pod-1");
  o.instance_id.clear();  // the host name, made into an id
  const std::string from_host = o.resolved_instance_id();
  EXPECT_TRUE(is_instance_id(from_host)) << from_host;
}

}  // namespace
}  // namespace lipsync::server

namespace lipsync::server {
namespace {

// log_format: json writes one object per line (time, level, msg, in that order), the message
// escaped so a quote, a newline or a byte that is not UTF-8 cannot break the line.
TEST(LogFormat, JsonIsOneEscapedObjectPerLine) {
  const auto formatter = make_log_formatter("json");
  const std::string payload = "GET /v1/sessions \"x\"\nnext \xff";
  spdlog::details::log_msg msg(spdlog::source_loc{}, "", spdlog::level::warn, payload);
  msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1796606625678));
  spdlog::memory_buf_t out;
  formatter->clone()->format(msg, out);
  const std::string line(out.data(), out.size());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("time"), "2026-12-07T01:23:45.678Z");
  EXPECT_EQ(j.at("level"), "warning");
  EXPECT_EQ(j.at("msg"), "GET /v1/sessions \"x\"\nnext \xef\xbf\xbd");
  EXPECT_EQ(line.substr(0, 9), "{\"time\":\"");

  spdlog::memory_buf_t text;
  make_log_formatter("text")->format(msg, text);
  EXPECT_NE(std::string(text.data(), text.size()).find("[warning] GET /v1/sessions"),
            std::string::npos);
  EXPECT_THROW(make_log_formatter("xml"), Error);
}

}  // namespace
}  // namespace lipsync::server
