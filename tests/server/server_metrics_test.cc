// The /metrics text: values as written, and the families read from their owners at a scrape.
#include "server/server_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace lipsync::server {
namespace {

TEST(MetricValueText, WholeNumbersInFullOthersInTheFewestDigits) {
  EXPECT_EQ(metric_value_text(0), "0");
  EXPECT_EQ(metric_value_text(-3), "-3");
  EXPECT_EQ(metric_value_text(0.5), "0.5");
  EXPECT_EQ(metric_value_text(1.0 / 3), "0.3333333333333333");
  // Bytes: an ostream's default 6 digits would write 1.23457e+10.
  EXPECT_EQ(metric_value_text(12345678901.0), "12345678901");
  EXPECT_EQ(metric_value_text(100000000.0), "100000000");
  EXPECT_EQ(std::stod(metric_value_text(1e300)), 1e300);
  EXPECT_EQ(metric_value_text(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(metric_value_text(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(metric_value_text(std::nan("")), "NaN");
}

// A histogram's sum keeps its digits: over a day of uptime a sum of seconds passes 100000, where
// 6 digits would round it to whole seconds.
TEST(ServerMetrics, AHistogramsSumKeepsEveryDigit) {
  ServerMetrics metrics;
  metrics.observe_ms("generator", 123456789.0);
  metrics.observe_ms("generator", 1.5);
  const std::string text = metrics.render();
  EXPECT_NE(text.find("lipsync_stage_seconds_sum{stage=\"generator\"} 123456.7905\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lipsync_stage_seconds_count{stage=\"generator\"} 2\n"), std::string::npos);
}

struct Snapshot {
  double load = 0;
  std::vector<std::pair<std::string, double>> models;
};

TEST(ReadMetrics, EachFamilyOnceInOrderWithItsHelpTypeAndSamples) {
  int reads = 0;
  ReadMetrics<Snapshot> metrics;
  metrics.gauge("x_load", "The load.", [](const Snapshot& s) { return s.load; })
      .gauge("x_accepting", "1 below 0.5.", [](const Snapshot& s) { return s.load < 0.5; })
      .family("x_bytes_total", "counter", "Bytes per model.",
              [&reads](const Snapshot& s, std::vector<MetricSample>& out) {
                ++reads;
                for (const auto& [id, bytes] : s.models)
                  out.push_back({"model=\"" + id + "\"", bytes});
              });
  EXPECT_EQ(metrics.size(), 3u);
  std::ostringstream out;
  metrics.render({0.75, {{"a", 4294967296.0}, {"b", 0}}}, out);
  EXPECT_EQ(out.str(),
            "# HELP x_load The load.\n# TYPE x_load gauge\nx_load 0.75\n"
            "# HELP x_accepting 1 below 0.5.\n# TYPE x_accepting gauge\nx_accepting 0\n"
            "# HELP x_bytes_total Bytes per model.\n# TYPE x_bytes_total counter\n"
            "x_bytes_total{model=\"a\"} 4294967296\nx_bytes_total{model=\"b\"} 0\n");
  // A family without samples still says what it is; samples from an earlier scrape are gone.
  std::ostringstream empty;
  metrics.render({0.25, {}}, empty);
  EXPECT_NE(empty.str().find("x_accepting 1\n"), std::string::npos) << empty.str();
  EXPECT_NE(empty.str().find("# TYPE x_bytes_total counter\n"), std::string::npos);
  EXPECT_EQ(empty.str().find("x_bytes_total{"), std::string::npos) << empty.str();
  EXPECT_EQ(reads, 2);
}

}  // namespace
}  // namespace lipsync::server
