#include "controlplane/retire.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(ReplicasToStop, DrainDelayTable) {
  const Clock::time_point t0{};
  struct Step {
    const char* name;
    std::vector<ReplicaPresence> present;
    std::set<std::string> wanted;
    std::chrono::milliseconds at;
    std::vector<std::string> want_stop;
    size_t want_retiring;
  };
  // One scenario, step by step over the same `retiring` map; drain delay 1 s.
  std::vector<Step> steps = {
      {"all wanted", {{"a/0", true}, {"a/1", true}}, {"a/0", "a/1"}, 0ms, {}, 0},
      {"a/1 unwanted: leaves the routes, not stopped yet",
       {{"a/0", true}, {"a/1", true}},
       {"a/0"},
       100ms,
       {},
       1},
      {"still within the delay", {{"a/0", true}, {"a/1", true}}, {"a/0"}, 1000ms, {}, 1},
      {"delay over: stopped", {{"a/0", true}, {"a/1", true}}, {"a/0"}, 1100ms, {"a/1"}, 0},
      {"a replica not ready stops at once",
       {{"a/0", true}, {"a/2", false}},
       {"a/0"},
       1200ms,
       {"a/2"},
       0},
      {"one already stopping is left alone",
       {{"a/0", true}, {"a/3", true, true}},
       {"a/0"},
       1300ms,
       {},
       0},
      {"b/0 unwanted", {{"a/0", true}, {"b/0", true}}, {"a/0"}, 1400ms, {}, 1},
      {"wanted again before the delay: forgotten",
       {{"a/0", true}, {"b/0", true}},
       {"a/0", "b/0"},
       1500ms,
       {},
       0},
      {"c/0 unwanted", {{"c/0", true}}, {}, 1600ms, {}, 1},
      {"gone on its own: forgotten", {}, {}, 1700ms, {}, 0},
  };
  std::map<std::string, Clock::time_point> retiring;
  for (const auto& s : steps) {
    EXPECT_EQ(ReplicasToStop(s.present, s.wanted, t0 + s.at, 1000ms, &retiring), s.want_stop)
        << s.name;
    EXPECT_EQ(retiring.size(), s.want_retiring) << s.name;
  }
}

}  // namespace
}  // namespace osprey::controlplane
