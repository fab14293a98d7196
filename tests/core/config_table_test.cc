// ConfigTable: typed keys with ranges and choices, defaults read from the struct, and errors that
// name the key.
#include "core/config_table.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "support/test_data.h"

namespace lipsync::core {
namespace {

enum class Mode { kFast, kSlow };

struct Options {
  int count = 3;
  std::int64_t bytes = 1 << 20;
  bool on = true;
  std::string name = "x";
  Mode mode = Mode::kSlow;
  std::vector<std::string> items{"a"};
};

const ConfigTable<Options>& table() {
  static const auto t =
      ConfigTable<Options>("sec")
          .integer("count", &Options::count, 1, 10, "how many")
          .integer("bytes", &Options::bytes, 0, 1LL << 40, "how big")
          .boolean("on", &Options::on, "on or off")
          .text("name", &Options::name, "text", "a name",
                [](const std::string& v, const std::string& k) {
                  if (v.empty()) config_error(k, "empty");
                })
          .choice("mode", &Options::mode, {{"fast", Mode::kFast}, {"slow", Mode::kSlow}}, "speed")
          .list("items", &Options::items, {"a", "b", "c"}, "some letters");
  return t;
}

std::string error_of(std::string_view key, ConfigValue v) {
  Options o;
  try {
    table().set(o, key, v);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Error::Code::kInvalidInput);
    return e.message();
  }
  return "no error";
}

TEST(ConfigTable, SetsEachTypeFromText) {
  Options o;
  table().set(o, "count", ConfigValue::scalar("7"));
  table().set(o, "bytes", ConfigValue::scalar("1099511627776"));
  table().set(o, "on", ConfigValue::scalar("false"));
  table().set(o, "name", ConfigValue::scalar("demo"));
  table().set(o, "mode", ConfigValue::scalar("fast"));
  table().set(o, "items", ConfigValue::list({"c", "a"}));
  EXPECT_EQ(o.count, 7);
  EXPECT_EQ(o.bytes, 1LL << 40);
  EXPECT_FALSE(o.on);
  EXPECT_EQ(o.name, "demo");
  EXPECT_EQ(o.mode, Mode::kFast);
  EXPECT_EQ(o.items, (std::vector<std::string>{"c", "a"}));
}

TEST(ConfigTable, BadValuesNameTheKeyAndWhatWasExpected) {
  EXPECT_EQ(error_of("count", ConfigValue::scalar("11")),
            "sec.count: 11 is out of range; expected 1 to 10");
  EXPECT_EQ(error_of("count", ConfigValue::scalar("3x")), "sec.count: '3x' is not an integer");
  EXPECT_EQ(error_of("count", ConfigValue::scalar("99999999999999999999")),
            "sec.count: '99999999999999999999' is out of range");
  EXPECT_EQ(error_of("count", ConfigValue::list({"1"})),
            "sec.count: expected an integer, not a list");
  EXPECT_EQ(error_of("on", ConfigValue::scalar("maybe")),
            "sec.on: 'maybe' is not a boolean; expected true or false");
  EXPECT_EQ(error_of("name", ConfigValue::scalar("")), "sec.name: empty");
  EXPECT_EQ(error_of("mode", ConfigValue::scalar("warp")),
            "sec.mode: 'warp' is unknown; expected fast, slow");
  EXPECT_EQ(error_of("items", ConfigValue::list({"a", "z"})),
            "sec.items: 'z' is unknown; expected a, b, c");
  EXPECT_EQ(error_of("items", ConfigValue::list({"a", "a"})), "sec.items: 'a' is listed twice");
  EXPECT_EQ(error_of("items", ConfigValue::list({})),
            "sec.items: the list is empty; expected one or more of a, b, c");
  EXPECT_EQ(error_of("nope", ConfigValue::scalar("1")), "sec.nope: unknown key");
}

TEST(ConfigTable, ValidateChecksEveryFieldAndKeysShowTheDefaults) {
  Options o;
  o.count = 0;
  EXPECT_THROW(table().validate(o), Error);
  o = {};
  EXPECT_NO_THROW(table().validate(o));
  const auto keys = table().keys();
  ASSERT_EQ(keys.size(), 6u);
  EXPECT_EQ(keys[0].key, "sec.count");
  EXPECT_EQ(keys[0].default_text, "3");
  EXPECT_EQ(keys[0].values, "1..10");
  EXPECT_EQ(keys[2].default_text, "true");
  EXPECT_EQ(keys[4].default_text, "slow");
  EXPECT_EQ(keys[5].default_text, "[a]");
  EXPECT_EQ(keys[5].doc, "some letters");
}

// A number key (server.load_threshold): parsed whole, finite, in its range, shown as written.
TEST(ConfigTable, ANumberKeyIsFiniteAndInRange) {
  struct Limits {
    double ratio = 0.9;
  };
  static const auto t =
      ConfigTable<Limits>("sec").number("ratio", &Limits::ratio, 0.01, 1, "a fraction");
  Limits o;
  t.set(o, "ratio", ConfigValue::scalar("0.25"));
  EXPECT_DOUBLE_EQ(o.ratio, 0.25);
  for (const char* bad : {"", "x", "0.5x", "nan", "inf", "1e999"}) {
    Limits b;
    try {
      t.set(b, "ratio", ConfigValue::scalar(bad));
      ADD_FAILURE() << bad << " was taken";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("sec.ratio: '" + std::string(bad) + "' is not a number"),
                std::string::npos)
          << e.message();
    }
  }
  o.ratio = 1.5;
  try {
    t.validate(o);
    ADD_FAILURE() << "1.5 passed";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("sec.ratio: 1.5 is out of range; expected 0.01 to 1"),
              std::string::npos)
        << e.message();
  }
  const auto keys = t.keys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].default_text, "0.9");
  EXPECT_EQ(keys[0].values, "0.01..1");
}

}  // namespace
}  // namespace lipsync::core
