#include "common/flags.h"

#include <gtest/gtest.h>

namespace osprey {
namespace {

using std::chrono::milliseconds;

struct Parsed {
  bool verbose = false;
  std::string dir = "/default";
  int port = 8080;
  int threads = 2;
  int64_t bytes = 64;
  milliseconds window{60000};
  milliseconds tick{2000};
};

std::vector<FlagSpec> Specs(Parsed* p) {
  return {BoolFlag("verbose", &p->verbose, "say more"),
          StringFlag("dir", &p->dir, "where (/default)", "DIR"),
          PortFlag("port", &p->port, "port (8080)"),
          IntFlag("threads", &p->threads, 1, 64, "threads (2)"),
          IntFlag("max-bytes", &p->bytes, 0, INT64_MAX, "largest body (64)"),
          DurationFlag("window-s", &p->window, std::chrono::seconds(1), "window (60)"),
          DurationFlag("tick-ms", &p->tick, milliseconds(1), "tick (2000)"),
          {"raw", false, "kept as text"}};
}

TEST(ParseFlags, TypedValuesLandInTheirDestinations) {
  Parsed p;
  std::vector<std::string> positional;
  auto given =
      ParseFlags({"--verbose", "--dir=/m", "pos", "--port", "0", "--threads=8", "--max-bytes",
                  "1048576", "--window-s", "1.5", "--tick-ms=250", "--raw", "x y"},
                 Specs(&p), &positional);
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_TRUE(p.verbose);
  EXPECT_EQ(p.dir, "/m");
  EXPECT_EQ(p.port, 0);
  EXPECT_EQ(p.threads, 8);
  EXPECT_EQ(p.bytes, 1048576);
  EXPECT_EQ(p.window, milliseconds(1500));
  EXPECT_EQ(p.tick, milliseconds(250));
  EXPECT_EQ(positional, std::vector<std::string>{"pos"});
  EXPECT_EQ(given->at("raw"), "x y");
  EXPECT_EQ(given->count("verbose"), 1u);

  Parsed defaults;
  ASSERT_TRUE(ParseFlags({}, Specs(&defaults)).ok());
  EXPECT_EQ(defaults.port, 8080) << "defaults stand when a flag is not given";
  EXPECT_EQ(defaults.window, milliseconds(60000));
}

TEST(ParseFlags, BadValuesNameTheFlagTheRangeAndTheValue) {
  struct Case {
    std::vector<std::string_view> args;
    std::string want;
  } cases[] = {
      {{"--port", "70000"}, "--port must be an integer from 0 to 65535, got '70000'"},
      {{"--port=http"}, "--port must be an integer from 0 to 65535, got 'http'"},
      {{"--threads", "0"}, "--threads must be an integer from 1 to 64, got '0'"},
      {{"--max-bytes", "-1"}, "--max-bytes must be an integer >= 0, got '-1'"},
      {{"--window-s", "-2"}, "--window-s must be a non-negative number of seconds, got '-2'"},
      {{"--tick-ms", "soon"}, "--tick-ms must be a non-negative number of milliseconds"},
      {{"--verbose=maybe"}, "--verbose takes true or false, got 'maybe'"},
      {{"--nope"}, "unknown flag --nope"},
      {{"--dir"}, "flag --dir needs a value"},
      {{"stray"}, "unexpected argument 'stray'"},
  };
  for (const auto& c : cases) {
    Parsed p;
    auto r = ParseFlags(c.args, Specs(&p));
    ASSERT_FALSE(r.ok()) << c.want;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << r.status().message() << "\nwant: " << c.want;
  }
}

TEST(FlagsHelp, OneAlignedFormat) {
  Parsed p;
  std::vector<FlagSpec> specs = {BoolFlag("verbose", &p.verbose, "say more"),
                                 PortFlag("port", &p.port, "port (8080)"),
                                 StringFlag("dir", &p.dir, "where", "DIR")};
  EXPECT_EQ(FlagsHelp("osprey thing [flags]", specs),
            "usage: osprey thing [flags]\n\n"
            "flags:\n"
            "  --verbose     say more\n"
            "  --port PORT   port (8080)\n"
            "  --dir DIR     where\n");
}

}  // namespace
}  // namespace osprey

namespace osprey {
namespace {

TEST(ParseByteSize, KubernetesQuantities) {
  struct Row {
    std::string_view text;
    uint64_t want;
  } rows[] = {{"0", 0},
              {"1024", 1024},
              {"1Ki", 1024},
              {"512Mi", 536870912},
              {"1.5Gi", 1610612736},
              {"800M", 800000000},
              {"2k", 2000},
              {"1T", 1000000000000}};
  for (const Row& r : rows) {
    auto got = ParseByteSize(r.text);
    ASSERT_TRUE(got.ok()) << r.text << ": " << got.status();
    EXPECT_EQ(*got, r.want) << r.text;
  }
  for (std::string_view bad : {"", "Mi", "-1", "12XB", "1e30", "abc"}) {
    auto got = ParseByteSize(bad);
    EXPECT_FALSE(got.ok()) << bad;
    if (!got.ok())
      EXPECT_NE(std::string(got.status().message()).find("byte size"), std::string::npos);
  }
}

}  // namespace
}  // namespace osprey
