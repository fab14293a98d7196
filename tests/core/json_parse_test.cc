// parse_json: JSON from outside, with a key given twice refused (issue 24: duplicate keys were
// accepted, the last one silently winning).
#include "core/json_parse.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace lipsync::core {
namespace {

std::string error_of(std::string_view text) {
  try {
    parse_json(text, "the body");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    return e.what();
  }
  return "";
}

TEST(ParseJson, Issue24_AKeyGivenTwiceInOneObjectIsRefused) {
  EXPECT_EQ(error_of(R"({"model": "a", "model": "b"})"),
            "the body: the key 'model' is given twice");
  EXPECT_NE(error_of(R"({"a": {"x": 1, "x": 2}})").find("'x' is given twice"), std::string::npos);
  EXPECT_NE(error_of(R"([{"k": 1}, {"k": 1, "k": 1}])").find("'k'"), std::string::npos);
}

TEST(ParseJson, EqualKeysInDifferentObjectsAreFine) {
  const auto j = parse_json(R"({"x": {"x": {"x": 1}}, "y": [{"x": 2}, {"x": 3}]})", "t");
  EXPECT_EQ(j["x"]["x"]["x"], 1);
  EXPECT_EQ(j["y"][1]["x"], 3);
  EXPECT_EQ(parse_json("[1, 2]", "t").size(), 2u);
}

TEST(ParseJson, NotJsonNamesWhat) {
  EXPECT_EQ(error_of("{not json").rfind("the body: not valid JSON: ", 0), 0u);
  EXPECT_EQ(error_of("").rfind("the body: not valid JSON", 0), 0u);
}

TEST(ParseJson, ABadTokenOfAMegabyteIsNotEchoedWhole) {
  // nlohmann's message quotes the last token read: here all of the input (found by fuzzing the
  // agent's WebSocket messages).
  EXPECT_LT(error_of(std::string(1 << 20, '\t')).size(), 300u);
  EXPECT_LT(error_of("\"" + std::string(1 << 20, 'x')).size(), 300u);
  EXPECT_LT(error_of("{\"" + std::string(1 << 20, 'k') + "\":1,\"" + std::string(1 << 20, 'k') +
                     "\":2}")
                .size(),
            300u);
}

}  // namespace
}  // namespace lipsync::core
