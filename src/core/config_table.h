// ConfigTable: the one declaration of an options struct's configuration keys. Each key has its
// name, type, range (or choices), one-line doc, and the field it sets; the default is read from a
// default-constructed struct. The same table drives the YAML config parser (cli/config_file),
// the struct's validate(), `lipsync config` and the README's table (a test compares the two).
// Thread contract: a table is built once (a function-local static) and then only read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lipsync::core {

// A value as written in a config file: a scalar's text, or the texts of a list. The table
// types it, so every error can name the key and what was expected.
struct ConfigValue {
  std::vector<std::string> items;
  bool is_list = false;
  static ConfigValue scalar(std::string text) { return {{std::move(text)}, false}; }
  static ConfigValue list(std::vector<std::string> texts) { return {std::move(texts), true}; }
};

// What a key is, for `lipsync config` and the README.
struct ConfigKeyInfo {
  std::string key;           // "scheduler.max_batch" (or "log_level" for a top-level key)
  std::string default_text;  // "8", "true", "[cpu]", "veryfast", "" for an empty string
  std::string values;        // "1..256", "true or false", "lru, lfu", "text"
  std::string doc;
  bool is_list = false;  // set from a list in a config file (and by a repeatable flag)
};

// The values a boolean key takes, as `lipsync config` shows them.
inline constexpr const char* kConfigBoolValues = "true or false";

// Parses config texts; config_error throws "<key>: <what>". Each throws Error::Code::kInvalidInput
// naming `key`.
[[noreturn]] void config_error(const std::string& key, const std::string& what);
bool parse_config_bool(const std::string& text, const std::string& key);
std::int64_t parse_config_int(const std::string& text, const std::string& key);
double parse_config_number(const std::string& text, const std::string& key);
// A number as `lipsync config` and the README show it: "0.9", "1", "0.25".
std::string config_number_text(double value);

template <class Options>
class ConfigTable {
 public:
  // `section` is the keys' prefix ("scheduler"); empty for top-level keys such as log_level.
  explicit ConfigTable(std::string section) : section_(std::move(section)) {}

  // An integer key (int or int64 field) in [lo, hi].
  template <class Int>
  ConfigTable& integer(std::string name, Int Options::*field, std::int64_t lo, std::int64_t hi,
                       std::string doc) {
    Entry e{std::move(name),
            std::move(doc),
            std::to_string(lo) + ".." + std::to_string(hi),
            {},
            {},
            {},
            false};
    e.set = [field](Options& o, const ConfigValue& v, const std::string& key) {
      o.*field = static_cast<Int>(parse_config_int(scalar_of(v, key, "an integer"), key));
    };
    e.get = [field](const Options& o) { return std::to_string(o.*field); };
    e.check = [field, lo, hi](const Options& o, const std::string& key) {
      require_range(key, static_cast<std::int64_t>(o.*field), lo, hi);
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  // A number key (double field) in [lo, hi].
  ConfigTable& number(std::string name, double Options::*field, double lo, double hi,
                      std::string doc) {
    Entry e{std::move(name),
            std::move(doc),
            config_number_text(lo) + ".." + config_number_text(hi),
            {},
            {},
            {},
            false};
    e.set = [field](Options& o, const ConfigValue& v, const std::string& key) {
      o.*field = parse_config_number(scalar_of(v, key, "a number"), key);
    };
    e.get = [field](const Options& o) { return config_number_text(o.*field); };
    e.check = [field, lo, hi](const Options& o, const std::string& key) {
      if (!(o.*field >= lo && o.*field <= hi)) {
        fail(key, config_number_text(o.*field) + " is out of range; expected " +
                      config_number_text(lo) + " to " + config_number_text(hi));
      }
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  ConfigTable& boolean(std::string name, bool Options::*field, std::string doc) {
    Entry e{std::move(name), std::move(doc), kConfigBoolValues, {}, {}, {}, false};
    e.set = [field](Options& o, const ConfigValue& v, const std::string& key) {
      o.*field = parse_config_bool(scalar_of(v, key, kConfigBoolValues), key);
    };
    e.get = [field](const Options& o) { return std::string(o.*field ? "true" : "false"); };
    entries_.push_back(std::move(e));
    return *this;
  }

  // A string key; `check` (optional) throws kInvalidInput naming the key for a bad value.
  ConfigTable& text(std::string name, std::string Options::*field, std::string values,
                    std::string doc,
                    std::function<void(const std::string&, const std::string&)> check = {}) {
    Entry e{std::move(name), std::move(doc), std::move(values), {}, {}, {}, false};
    e.set = [field](Options& o, const ConfigValue& v, const std::string& key) {
      o.*field = scalar_of(v, key, "a string");
    };
    e.get = [field](const Options& o) { return o.*field; };
    if (check) {
      e.check = [field, check](const Options& o, const std::string& key) { check(o.*field, key); };
    }
    entries_.push_back(std::move(e));
    return *this;
  }

  // A key with a fixed set of names, each meaning one value of the field's type.
  template <class T>
  ConfigTable& choice(std::string name, T Options::*field,
                      std::vector<std::pair<std::string, T>> choices, std::string doc) {
    std::string values;
    for (const auto& c : choices) values += (values.empty() ? "" : ", ") + c.first;
    Entry e{std::move(name), std::move(doc), values, {}, {}, {}, false};
    e.set = [field, choices, values](Options& o, const ConfigValue& v, const std::string& key) {
      const std::string& t = scalar_of(v, key, values);
      for (const auto& c : choices) {
        if (c.first == t) {
          o.*field = c.second;
          return;
        }
      }
      fail(key, "'" + t + "' is unknown; expected " + values);
    };
    e.get = [field, choices](const Options& o) {
      for (const auto& c : choices) {
        if (c.second == o.*field) return c.first;
      }
      return std::string("?");
    };
    e.check = [field, choices, values](const Options& o, const std::string& key) {
      for (const auto& c : choices) {
        if (c.second == o.*field) return;
      }
      fail(key, "the value is not one of " + values);
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  // A list of names, each one of `allowed`, non-empty and without repeats.
  ConfigTable& list(std::string name, std::vector<std::string> Options::*field,
                    std::vector<std::string> allowed, std::string doc) {
    std::string values;
    for (const auto& a : allowed) values += (values.empty() ? "" : ", ") + a;
    Entry e{std::move(name), std::move(doc), "list of " + values, {}, {}, {}, true};
    e.set = [field](Options& o, const ConfigValue& v, const std::string& key) {
      if (!v.is_list)
        fail(key, "expected a list such as [" + (v.items.empty() ? "" : v.items[0]) + "]");
      o.*field = v.items;
    };
    e.get = [field](const Options& o) { return list_text(o.*field); };
    e.check = [field, allowed, values](const Options& o, const std::string& key) {
      const auto& items = o.*field;
      if (items.empty()) fail(key, "the list is empty; expected one or more of " + values);
      for (std::size_t i = 0; i < items.size(); ++i) {
        bool known = false;
        for (const auto& a : allowed) known |= a == items[i];
        if (!known) fail(key, "'" + items[i] + "' is unknown; expected " + values);
        check_not_repeated(key, items, i);
      }
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  // A list of free texts (URLs, ...), possibly empty; `what` names one item for `lipsync
  // config` ("TURN URL"). Items are non-empty and not repeated; the struct's validate() checks
  // their form.
  ConfigTable& texts(std::string name, std::vector<std::string> Options::*field, std::string what,
                     std::string doc) {
    Entry e{std::move(name), std::move(doc), "list of " + what, {}, {}, {}, true};
    e.set = [field](Options& o, const ConfigValue& v, const std::string& key) {
      if (!v.is_list) fail(key, "expected a list such as [\"" + v.items[0] + "\"]");
      o.*field = v.items;
    };
    e.get = [field](const Options& o) { return list_text(o.*field); };
    e.check = [field](const Options& o, const std::string& key) {
      const auto& items = o.*field;
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (items[i].empty()) fail(key, "item " + std::to_string(i + 1) + " is empty");
        check_not_repeated(key, items, i);
      }
    };
    entries_.push_back(std::move(e));
    return *this;
  }

  const std::string& section() const { return section_; }
  bool has(std::string_view name) const { return find(name) != nullptr; }

  // Sets one key (its name within the section) from a config value, then checks the value.
  // Throws Error::Code::kInvalidInput naming the full key for a bad value, and for an unknown
  // name.
  void set(Options& options, std::string_view name, const ConfigValue& value) const {
    const Entry* e = find(name);
    if (e == nullptr) fail(full_key(std::string(name)), "unknown key");
    const std::string key = full_key(e->name);
    e->set(options, value, key);
    if (e->check) e->check(options, key);
  }

  // Checks every field against its range or choices (what Options::validate() calls).
  void validate(const Options& options) const {
    for (const Entry& e : entries_) {
      if (e.check) e.check(options, full_key(e.name));
    }
  }

  // Every key with its default (read from Options{}), values and doc.
  std::vector<ConfigKeyInfo> keys() const {
    std::vector<ConfigKeyInfo> out;
    const Options defaults{};
    for (const Entry& e : entries_) out.push_back(info_of(e, defaults));
    return out;
  }
  // One key (its name within the section); Error::Code::kInvalidInput for an unknown name.
  ConfigKeyInfo key(std::string_view name) const {
    const Entry* e = find(name);
    if (e == nullptr) fail(full_key(std::string(name)), "unknown key");
    return info_of(*e, Options{});
  }

 private:
  struct Entry {
    std::string name;
    std::string doc;
    std::string values;
    std::function<void(Options&, const ConfigValue&, const std::string&)> set;
    std::function<std::string(const Options&)> get;
    std::function<void(const Options&, const std::string&)> check;
    bool is_list = false;
  };

  ConfigKeyInfo info_of(const Entry& e, const Options& defaults) const {
    return {full_key(e.name), e.get(defaults), e.values, e.doc, e.is_list};
  }

  const Entry* find(std::string_view name) const {
    for (const Entry& e : entries_) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }
  std::string full_key(const std::string& name) const {
    return section_.empty() ? name : section_ + "." + name;
  }
  static const std::string& scalar_of(const ConfigValue& v, const std::string& key,
                                      const std::string& expected) {
    if (v.is_list || v.items.size() != 1) fail(key, "expected " + expected + ", not a list");
    return v.items[0];
  }
  [[noreturn]] static void fail(const std::string& key, const std::string& what) {
    config_error(key, what);
  }
  // A list as `lipsync config` shows it: "[a, b]".
  static std::string list_text(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return "[" + out + "]";
  }
  // Fails when items[i] is one of the items before it.
  static void check_not_repeated(const std::string& key, const std::vector<std::string>& items,
                                 std::size_t i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (items[j] == items[i]) fail(key, "'" + items[i] + "' is listed twice");
    }
  }
  static void require_range(const std::string& key, std::int64_t v, std::int64_t lo,
                            std::int64_t hi) {
    if (v < lo || v > hi) {
      fail(key, std::to_string(v) + " is out of range; expected " + std::to_string(lo) + " to " +
                    std::to_string(hi));
    }
  }

  std::string section_;
  std::vector<Entry> entries_;
};

}  // namespace lipsync::core
