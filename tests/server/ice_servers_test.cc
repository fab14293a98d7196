// TURN and STUN for viewers (webrtc.turn_servers, webrtc.turn_secret_file): the URL parser, the
// time-limited credentials of coturn's use-auth-secret, what the server's ICE agent and the
// client get, and the ice_servers a real server hands out with each session. (TURN relaying real
// media through Debian's coturn is tested in a browser: tests/browser/turn.test.mjs.)
#include "webrtc/ice_servers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "avatar/avatar_import.h"
#include "core/error.h"
#include "server/server.h"
#include "support/http_client.h"
#include "support/test_data.h"
#include "support/test_models.h"
#include "support/test_server.h"

namespace lipsync::webrtc {
namespace {

using nlohmann::json;

// What invalid_input says for `url` as a TURN URL ("" when it parses).
std::string turn_url_error(const std::string& url) {
  try {
    parse_turn_url(url);
    return "";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    return e.what();
  }
}

TEST(TurnUrl, TheFormsOfRfc7065AndCredentialsParse) {
  TurnUrl t = parse_turn_url("turn:relay.example.com");
  EXPECT_FALSE(t.tls);
  EXPECT_EQ(t.host, "relay.example.com");
  EXPECT_EQ(t.port, 3478);
  EXPECT_EQ(t.transport, "");
  EXPECT_EQ(t.username, "");
  EXPECT_EQ(t.client_url(), "turn:relay.example.com:3478");

  t = parse_turn_url("turns:relay.example.com?transport=tcp");
  EXPECT_TRUE(t.tls);
  EXPECT_EQ(t.port, 5349);
  EXPECT_EQ(t.client_url(), "turns:relay.example.com:5349?transport=tcp");

  t = parse_turn_url("turn://alice:pa:ss@10.0.0.7:3479?transport=udp");
  EXPECT_EQ(t.username, "alice");
  EXPECT_EQ(t.password, "pa:ss");  // the first colon splits
  EXPECT_EQ(t.host, "10.0.0.7");
  EXPECT_EQ(t.port, 3479);
  EXPECT_EQ(t.client_url(), "turn:10.0.0.7:3479?transport=udp");  // no credentials in it

  t = parse_turn_url("turn:[2001:db8::1]:3478");
  EXPECT_EQ(t.host, "[2001:db8::1]");
  EXPECT_EQ(t.port, 3478);
}

TEST(TurnUrl, EveryMalformedUrlIsRefusedSayingWhy) {
  EXPECT_NE(turn_url_error("stun:relay:3478").find("does not start with turn:"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:relay:0").find("port '0'"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:relay:99999").find("port"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:relay:34x").find("port '34x'"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:relay?transport=sctp").find("query"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:relay?foo=1").find("query"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:alice@relay").find("USER:PASSWORD"), std::string::npos);
  EXPECT_NE(turn_url_error("turn::pw@relay").find("USER:PASSWORD"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:").find("no host"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:a b").find("character ' '"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:relay/x").find("character '/'"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:[::1").find("without its ]"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:[::1]x").find("text after"), std::string::npos);
  // Each message names the key and shows the expected form.
  EXPECT_NE(turn_url_error("turn:").find("webrtc.turn_servers"), std::string::npos);
  EXPECT_NE(turn_url_error("turn:").find("turn:[USER:PASSWORD@]HOST"), std::string::npos);
}

// The value Python's hmac/base64 give for the same secret and username (coturn's REST API).
TEST(TurnCredential, IsBase64OfHmacSha1OfTheUsername) {
  EXPECT_EQ(turn_credential("north-wind", "1700086400:a1.s3cr3t"), "GQZDFyMY4LmAivR4oza51qc1n44=");
}

class IceServersTest : public ::testing::Test {
 protected:
  WebRtcOptions with_secret(const std::string& secret_text) {
    std::ofstream(dir_ / "secret") << secret_text;
    WebRtcOptions o;
    o.turn_secret_file = (dir_ / "secret").string();
    return o;
  }
  testing::TempDir dir_;
};

TEST_F(IceServersTest, AUrlWithoutCredentialsGetsTimeLimitedOnesFromTheSecret) {
  WebRtcOptions o = with_secret("north-wind\n");  // the file's line end is not the secret's
  o.stun_server = "stun.example.com:3478";
  o.turn_servers = {"turn:127.0.0.1:3478?transport=udp", "turns:bob:b@b@relay.example.com"};
  o.turn_credential_ttl_s = 86400;
  o.validate();
  const IceServers ice(o);
  const auto client = ice.for_client("a1.s3cr3t", 1700000000);
  ASSERT_EQ(client.size(), 3u);
  EXPECT_EQ(client[0].urls, std::vector<std::string>{"stun:stun.example.com:3478"});
  EXPECT_EQ(client[0].username, "");
  EXPECT_EQ(client[1].urls, std::vector<std::string>{"turn:127.0.0.1:3478?transport=udp"});
  EXPECT_EQ(client[1].username, "1700086400:a1.s3cr3t");
  EXPECT_EQ(client[1].credential, "GQZDFyMY4LmAivR4oza51qc1n44=");
  // The user's own credentials (the last @ ends them) are handed on as written.
  EXPECT_EQ(client[2].urls, std::vector<std::string>{"turns:relay.example.com:5349"});
  EXPECT_EQ(client[2].username, "bob");
  EXPECT_EQ(client[2].credential, "b@b");

  // The server's agent gets the same credentials inside webrtcbin's URI, percent-encoded (the
  // username's colon, base64's + / =).
  const auto agent = ice.for_agent("a1.s3cr3t", 1700000000);
  ASSERT_EQ(agent.size(), 2u);
  EXPECT_EQ(agent[0],
            "turn://1700086400%3Aa1.s3cr3t:GQZDFyMY4LmAivR4oza51qc1n44%3D@127.0.0.1:3478"
            "?transport=udp");
  EXPECT_EQ(agent[1], "turns://bob:b%40b@relay.example.com:5349");
}

TEST_F(IceServersTest, AMissingUnreadableOrEmptySecretStopsTheStartNamingTheKey) {
  WebRtcOptions o;
  o.turn_servers = {"turn:127.0.0.1"};
  try {
    o.validate();
    FAIL() << "a URL without credentials and no secret passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("webrtc.turn_secret_file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(IceServers{o}, Error);

  o.turn_secret_file = (dir_ / "absent").string();
  try {
    IceServers ice(o);
    FAIL() << "an absent secret file was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("webrtc.turn_secret_file: cannot read"), std::string::npos)
        << e.what();
  }
  o = with_secret("\n");
  o.turn_servers = {"turn:127.0.0.1"};
  try {
    IceServers ice(o);
    FAIL() << "an empty secret was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is empty"), std::string::npos) << e.what();
  }
  o = with_secret(std::string(5000, 'x'));
  o.turn_servers = {"turn:127.0.0.1"};
  EXPECT_THROW(IceServers{o}, Error);
  // Without any STUN or TURN server there is nothing to hand out.
  EXPECT_TRUE(IceServers(WebRtcOptions{}).empty());
  EXPECT_TRUE(IceServers(WebRtcOptions{}).for_client("x").empty());
}

// A real server hands each session's client its ice_servers: in the answer to POST /v1/sessions
// and to GET /v1/sessions/ID (a page that watches a session made elsewhere), with credentials
// that coturn will take for that session until the ttl has passed.
TEST_F(IceServersTest, ASessionsClientGetsItsIceServersFromTheServer) {
  avatar::write_demo_avatar(dir_ / "avatar", 5, 320, 240);
  server::ServerConfig config = testing::test_server_config(dir_ / "avatar");
  config.webrtc = with_secret("north-wind");
  config.webrtc.turn_servers = {"turn:127.0.0.1:3478?transport=udp"};
  config.webrtc.turn_credential_ttl_s = 600;
  server::Server server(config);
  server.start();
  const auto post = testing::http_exchange(
      server.http_port(),
      "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(post.status, 201) << post.body;
  const json created = json::parse(post.body);
  const std::string id = created.at("id");
  const auto get = testing::http_exchange(
      server.http_port(),
      "GET /v1/sessions/" + id + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(get.status, 200) << get.body;
  for (const json& reply : {created, json::parse(get.body)}) {
    const json& servers = reply.at("ice_servers");
    ASSERT_EQ(servers.size(), 1u) << reply.dump();
    EXPECT_EQ(servers[0].at("urls"), json::array({"turn:127.0.0.1:3478?transport=udp"}));
    const std::string username = servers[0].at("username");
    const auto colon = username.find(':');
    ASSERT_NE(colon, std::string::npos) << username;
    EXPECT_EQ(username.substr(colon + 1), id);
    const std::int64_t expiry = std::stoll(username.substr(0, colon));
    EXPECT_NEAR(static_cast<double>(expiry), static_cast<double>(unix_time_now() + 600), 5.0);
    EXPECT_EQ(servers[0].at("credential"), turn_credential("north-wind", username));
  }
  server.stop();
}

}  // namespace
}  // namespace lipsync::webrtc
