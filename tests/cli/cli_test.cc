// Runs the real `lipsync` binary: output files, the JSON line on stdout, errors and exit codes.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/test_data.h"

namespace lipsync {
namespace {

using testing::diff;
using testing::read_f32;
using testing::run_lipsync;
using testing::TempDir;
using testing::testdata;

// The tests' command lines quote paths with shell_quote: a path with a quote and a space in it
// reaches the command as one word, unchanged.
TEST(CliTestSupport, ShellQuoteKeepsAPathOneWord) {
  const std::string path = "/tmp/it's a \"path\" $HOME `x`";
  const auto r = testing::run_command("printf '%s|' " + testing::shell_quote(path));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, path + "|");
}

TEST(CliMel, WritesFramesMajorMelAndPrintsShape) {
  TempDir dir;
  const auto r = run_lipsync("mel '" + testdata("audio/speech_a_en.wav").string() + "' -o '" +
                             (dir / "m.f32").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"frames", 384}, {"bands", 80}}));
  const auto mel = read_f32(dir / "m.f32");
  const auto expected = read_f32(testdata("audio/speech_a_en.mel.f32"));
  ASSERT_EQ(mel.size(), expected.size());
  EXPECT_LE(diff(mel, expected).max_abs, 2e-4);
}

TEST(CliWindows, WritesEveryWindowAndPrintsStarts) {
  TempDir dir;
  for (const char* flag : {"", " --parallel-mel-extraction false"}) {
    const auto r = run_lipsync("windows '" + testdata("audio/sine_440.wav").string() + "' -o '" +
                               (dir / "w.f32").string() + "'" + flag);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["windows"], 47);
    EXPECT_EQ(j["starts"].back(), 145);
    const auto windows = read_f32(dir / "w.f32");
    const auto expected = read_f32(testdata("audio/sine_440.windows16x80.f32"));
    ASSERT_EQ(windows.size(), expected.size());
    EXPECT_LE(diff(windows, expected).max_abs, 2e-4);
  }
}

TEST(CliErrors, MissingInputExitsNonZeroWithMessageAndNoOutput) {
  TempDir dir;
  const auto r = run_lipsync("mel /no/such.wav -o '" + (dir / "m.f32").string() + "'");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("/no/such.wav"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "m.f32"));
}

TEST(CliErrors, TooShortAudioIsInvalidInput) {
  TempDir dir;
  std::ofstream(dir / "short.f32", std::ios::binary) << std::string(2999 * 4, '\0');
  const auto r = run_lipsync("windows '" + (dir / "short.f32").string() + "' -o '" +
                             (dir / "w.f32").string() + "'");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("2999 samples"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "w.f32"));
}

TEST(CliErrors, UnknownFlagAndMissingArgumentsExitTwo) {
  EXPECT_EQ(run_lipsync("mel --no-such-flag").exit_code, 2);
  EXPECT_EQ(run_lipsync("mel").exit_code, 2);
  EXPECT_EQ(run_lipsync("").exit_code, 2);
  EXPECT_EQ(run_lipsync("bench mel x.wav --threads 0").exit_code, 2);
}

// Issue 28: a misspelt command or option is named, with what it probably meant, under the same
// "lipsync: error:" as every other error; exit 2.
TEST(CliErrors, AMisspeltCommandOrOptionIsNamedWithTheNearestOne) {
  const auto expect_error = [](const std::string& args, const std::string& message) {
    const auto r = run_lipsync(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_EQ(r.err.rfind("lipsync: error: ", 0), 0u) << args << ": " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
  };
  expect_error("rendr", "unknown command 'rendr'; did you mean 'render'?");
  expect_error("sreve", "unknown command 'sreve'; did you mean 'serve'?");
  expect_error("quantum", "unknown command 'quantum' (lipsync --help lists them)");
  expect_error("models improt", "lipsync models: unknown command 'improt'; did you mean 'import'?");
  expect_error("render --audo x.wav -o y.mp4",
               "lipsync render: unknown option '--audo'; did you mean '--audio'?");
  expect_error("config --formt=json", "unknown option '--formt'; did you mean '--format'?");
  expect_error("render -o y.mp4 extra", "lipsync render: unexpected argument 'extra'");
  expect_error("mel", "lipsync mel: input is required");
  // A live load test of no session is a mistake, not the unary load test.
  expect_error("loadtest --live 0", "--live: Value 0 not in range 1 to 1000");
}

// The top-level help lists the main jobs first, the pipeline's tools last.
TEST(CliHelp, ListsTheMainCommandsFirst) {
  const auto r = run_lipsync("--help");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto main_at = r.out.find("Main commands:");
  const auto render_at = r.out.find("  render ");
  const auto mel_at = r.out.find("  mel ");
  ASSERT_NE(main_at, std::string::npos) << r.out;
  ASSERT_NE(mel_at, std::string::npos) << r.out;
  EXPECT_LT(main_at, render_at);
  EXPECT_LT(render_at, mel_at);
  EXPECT_LT(r.out.find("Models, avatars and settings:"), r.out.find("Pipeline stages and timing:"));
}

TEST(CliBench, MelAndWindowsPrintTimingJson) {
  const auto mel = run_lipsync("bench mel '" + testdata("audio/short_0p3s.wav").string() +
                               "' --repeat 3 --threads 2");
  ASSERT_EQ(mel.exit_code, 0) << mel.err;
  const auto jm = nlohmann::json::parse(mel.out);
  EXPECT_EQ(jm["frames"], 25);
  EXPECT_EQ(jm["threads"], 2);
  EXPECT_GT(jm["median_ms"].get<double>(), 0.0);
  EXPECT_LE(jm["min_ms"].get<double>(), jm["median_ms"].get<double>());
  const auto win = run_lipsync("bench windows --batch 25 --repeat 50");
  ASSERT_EQ(win.exit_code, 0) << win.err;
  const auto jw = nlohmann::json::parse(win.out);
  EXPECT_EQ(jw["batch"], 25);
  EXPECT_GT(jw["sequential_us"]["median"].get<double>(), 0.0);
}

}  // namespace
}  // namespace lipsync

namespace lipsync {
namespace {

TEST(CliConfig, ConfigFileSetsAudioKeysAndFlagsWin) {
  testing::TempDir dir;
  std::ofstream(dir / "ok.yaml")
      << "audio:\n  parallel_mel_extraction: false\n  pack_windows_per_task: 64\n";
  const std::string in = testdata("audio/short_0p3s.wav").string();
  const auto r =
      run_lipsync("windows '" + in + "' -o '" + (dir / "w.f32").string() + "' --config '" +
                  (dir / "ok.yaml").string() + "' --parallel-mel-extraction true");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["windows"], 4);
}

TEST(CliConfig, UnknownKeyAndBadValueNameTheKey) {
  testing::TempDir dir;
  std::ofstream(dir / "unknown.yaml") << "audio:\n  parallel_mel_extractoin: true\n";
  std::ofstream(dir / "bad.yaml") << "audio:\n  pack_windows_per_task: 0\n";
  std::ofstream(dir / "type.yaml") << "audio:\n  parallel_mel_extraction: maybe\n";
  // yaml-cpp keeps both entries of a repeated key; the config refuses them.
  std::ofstream(dir / "twice.yaml") << "audio:\n  mel_frames_per_task: 64\n"
                                       "  mel_frames_per_task: 128\n";
  std::ofstream(dir / "section.yaml") << "audio: {mel_frames_per_task: 64}\n"
                                         "audio: {pack_windows_per_task: 64}\n";
  const std::string in = testdata("audio/short_0p3s.wav").string();
  const std::pair<const char*, const char*> cases[] = {
      {"unknown.yaml", "unknown key 'audio.parallel_mel_extractoin'"},
      {"bad.yaml", "audio.pack_windows_per_task: 0 is out of range; expected 1 to 1000000"},
      {"type.yaml", "audio.parallel_mel_extraction: 'maybe' is not a boolean"},
      {"twice.yaml", "audio.mel_frames_per_task: the key is given twice"},
      {"section.yaml", "audio: the key is given twice"},
  };
  for (const auto& [file, message] : cases) {
    const auto r = run_lipsync("mel '" + in + "' -o '" + (dir / "m.f32").string() + "' --config '" +
                               (dir / file).string() + "'");
    EXPECT_EQ(r.exit_code, 2) << file;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  }
}

// Issue 28: `config --format yaml` is a starter config: valid as printed (every key commented
// out), and valid with every key uncommented (each at its default).
TEST(CliConfig, TheStarterConfigIsValidWithAnyKeyUncommented) {
  testing::TempDir dir;
  const auto r = run_lipsync("config --format yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> names;
  for (const auto& key : nlohmann::json::parse(run_lipsync("config --format json").out)) {
    const std::string k = key["key"];
    names.insert(k.substr(k.find('.') + 1));
  }
  std::ofstream(dir / "commented.yaml") << r.out;
  std::istringstream lines(r.out);
  std::string uncommented;
  int keys = 0;
  const std::regex key_line(R"(^(\s*)# ([a-z_0-9]+): (.*)$)");
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, key_line) && names.count(m[2].str()) > 0) {
      line = m[1].str() + m[2].str() + ": " + m[3].str();
      ++keys;
    }
    uncommented += line + "\n";
  }
  const auto total = nlohmann::json::parse(run_lipsync("config --format json").out).size();
  EXPECT_EQ(static_cast<std::size_t>(keys), total) << "every key is in the starter config";
  std::ofstream(dir / "uncommented.yaml") << uncommented;
  const std::string in = (std::filesystem::path(LIPSYNC_SOURCE_DIR) / "assets/demo_speech.wav");
  for (const char* file : {"commented.yaml", "uncommented.yaml"}) {
    const auto loaded = run_lipsync("mel '" + in + "' -o '" + (dir / "m.f32").string() +
                                    "' --config '" + (dir / file).string() + "'");
    EXPECT_EQ(loaded.exit_code, 0) << file << ": " << loaded.err;
  }
}

// Issue 29: a flag that sets a config key is declared by the key. Its help shows the key's doc,
// values and default as `lipsync config` does; a value the key refuses fails the command line in
// the key's words, before anything runs.
TEST(CliConfig, AKeysFlagTakesItsHelpDefaultAndCheckFromTheKey) {
  std::map<std::string, nlohmann::json> keys;
  for (const auto& key : nlohmann::json::parse(run_lipsync("config --format json").out))
    keys[key["key"]] = key;
  struct Case {
    const char* command;
    const char* flag;
    const char* key;
    const char* bad;
    const char* error;
  };
  const Case cases[] = {
      {"render", "--batch", "render.batch", "300", "300 is out of range; expected 0 to 256"},
      {"render", "--blend", "render.blend", "soft", "'soft' is unknown; expected paste, feather"},
      {"render", "--providers", "infer.execution_providers", "cpu,gpu", "'gpu' is unknown"},
      {"render", "--parallel-runs", "infer.parallel_runs", "65", "65 is out of range"},
      {"serve", "--threads", "cpu.threads", "-1", "-1 is out of range; expected 0 to 1024"},
      {"serve", "--grpc", "server.grpc", "nowhere", "'nowhere' is not host:port"},
      {"bench render", "--intra-op-threads", "infer.intra_op_threads", "x", "'x' is not"},
      {"bench generator", "--device", "infer.device_id", "256", "256 is out of range"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.command) + " " + c.flag);
    ASSERT_EQ(keys.count(c.key), 1u);
    const nlohmann::json& key = keys[c.key];
    const auto help = run_lipsync(std::string(c.command) + " --help");
    ASSERT_EQ(help.exit_code, 0) << help.err;
    // The help's lines are wrapped by nothing: the flag's line holds its whole help.
    const auto at = help.out.find("  " + std::string(c.flag) + " ");
    ASSERT_NE(at, std::string::npos) << help.out;
    const std::string line = help.out.substr(at, help.out.find('\n', help.out.find('[', at)) - at);
    const std::string bracket = "[" + key["key"].get<std::string>() + ", " +
                                key["values"].get<std::string>() + ", default " +
                                key["default"].get<std::string>() + "]";
    EXPECT_NE(line.find(bracket), std::string::npos) << line;
    // The doc's last words (its first letter may be capitalised, a mention of the flag cut).
    const std::string doc = key["doc"];
    EXPECT_NE(line.find(doc.substr(doc.size() - 20)), std::string::npos) << line;
    EXPECT_EQ(line.find(std::string("(") + c.flag), std::string::npos) << "names itself: " << line;
    const auto r = run_lipsync(std::string(c.command) + " " + c.flag + " " + c.bad);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(std::string(c.flag) + ": " + c.key + ": "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << r.err;
  }
  // The GPU default of render.batch, which --batch's own help once left out.
  const auto render_help = run_lipsync("render --help").out;
  EXPECT_NE(render_help.find("32 on a GPU provider"), std::string::npos) << render_help;
}

TEST(CliConfig, TheConfigKeysPageIsTheConfigTables) {
  const auto r = run_lipsync("config");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string page =
      testing::read_text(std::filesystem::path(LIPSYNC_SOURCE_DIR) / "docs/config-keys.md");
  EXPECT_NE(page.find(r.out), std::string::npos)
      << "docs/config-keys.md differs from `lipsync config`; run scripts/gen-docs";
  // Every key there is one the config file takes, with its default.
  const auto j = nlohmann::json::parse(run_lipsync("config --format json").out);
  ASSERT_GT(j.size(), 30u);
  for (const auto& key : j) {
    EXPECT_NE(page.find("| `" + key["key"].get<std::string>() + "` |"), std::string::npos)
        << key["key"];
  }
}

}  // namespace
}  // namespace lipsync
