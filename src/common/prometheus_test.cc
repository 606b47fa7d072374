#include "common/prometheus.h"

#include <gtest/gtest.h>

#include <string>

namespace osprey {
namespace {

TEST(HistogramTest, BucketsAreCumulativeAndCountIsTheirTotal) {
  static constexpr double kBounds[] = {0.25, 1, 5};
  Histogram h(kBounds);
  h.Observe(0.125);
  h.Observe(0.25);  // on a bound: that bucket (le)
  h.Observe(1);
  h.Observe(7);  // +Inf only
  std::string out;
  h.Render("x_seconds", "a=\"b\"", &out);
  EXPECT_EQ(out,
            "x_seconds_bucket{a=\"b\",le=\"0.25\"} 2\n"
            "x_seconds_bucket{a=\"b\",le=\"1\"} 3\n"
            "x_seconds_bucket{a=\"b\",le=\"5\"} 3\n"
            "x_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n"
            "x_seconds_sum{a=\"b\"} 8.375\n"
            "x_seconds_count{a=\"b\"} 4\n");
}

TEST(HistogramTest, DefaultBoundsPrintWithoutExponents) {
  Histogram h;
  std::string out;
  h.Render("y", "m=\"n\"", &out);
  EXPECT_NE(out.find("y_bucket{m=\"n\",le=\"0.0001\"} 0\n"), std::string::npos);
  EXPECT_NE(out.find("y_bucket{m=\"n\",le=\"10\"} 0\n"), std::string::npos);
  EXPECT_NE(out.find("y_sum{m=\"n\"} 0\n"), std::string::npos);
}

TEST(PrometheusTest, FamilyHeaderAndLabelEscapes) {
  std::string out;
  prometheus::AppendFamily("z_total", "counter", "Things.", &out);
  EXPECT_EQ(out, "# HELP z_total Things.\n# TYPE z_total counter\n");
  EXPECT_EQ(prometheus::LabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace osprey
