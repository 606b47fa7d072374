#include "controlplane/observe.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

using P = RevisionPhase;

RevisionObserved Was(P phase, bool ever_ready = false, std::string reason = "") {
  RevisionObserved o;
  o.phase = phase;
  o.ever_ready = ever_ready;
  o.reason = std::move(reason);
  return o;
}

TEST(ObserveRevision, PhaseTable) {
  RevisionSpec spec;
  spec.name = "iris-predictor-00001";
  struct Case {
    const char* name;
    RevisionObserved previous;
    RevisionObservations in;
    P want;
    std::string want_reason;
  } cases[] = {
      {"new, model to fetch",
       Was(P::kPending),
       {.has_storage = true, .aspired = true},
       P::kPending,
       ""},
      {"fetching",
       Was(P::kPending),
       {.has_storage = true, .fetch = FetchState::kRunning, .aspired = true},
       P::kDownloading,
       ""},
      {"fetched, replica starting",
       Was(P::kDownloading),
       {.has_storage = true, .fetch = FetchState::kDone, .aspired = true, .replicas = 1},
       P::kLoading,
       ""},
      {"no storage: loading at once",
       Was(P::kPending),
       {.aspired = true, .replicas = 1},
       P::kLoading,
       ""},
      {"a ready replica",
       Was(P::kLoading),
       {.fetch = FetchState::kDone, .aspired = true, .replicas = 1, .ready_replicas = 1},
       P::kReady,
       ""},
      {"fetch failed",
       Was(P::kDownloading),
       {.has_storage = true, .fetch = FetchState::kFailed, .fetch_error = "404", .aspired = true},
       P::kFailed,
       "StorageFailed"},
      {"cannot run here beats everything",
       Was(P::kReady, true),
       {.unrunnable_reason = "RuntimeNotRecognized", .aspired = true, .ready_replicas = 1},
       P::kFailed,
       "RuntimeNotRecognized"},
      {"crash before ready",
       Was(P::kLoading),
       {.fetch = FetchState::kDone,
        .aspired = true,
        .replicas = 1,
        .failed_replicas = 1,
        .crashed = true,
        .crash_message = "exit 1; bad model"},
       P::kFailed,
       "ModelLoadFailed"},
      {"scaled to zero stays ready", Was(P::kReady, true), {.aspired = true}, P::kReady, ""},
      {"a crash after ready stays ready while aspired",
       Was(P::kReady, true),
       {.aspired = true, .replicas = 1, .failed_replicas = 1, .crashed = true},
       P::kReady,
       ""},
      {"no longer aspired", Was(P::kReady, true), {.fetch = FetchState::kDone}, P::kRetired, ""},
      {"not aspired but still fetching",
       Was(P::kDownloading),
       {.has_storage = true, .fetch = FetchState::kRunning},
       P::kDownloading,
       ""},
      {"failed, then a backoff restart gets ready",
       Was(P::kFailed, false, "ModelLoadFailed"),
       {.fetch = FetchState::kDone, .aspired = true, .replicas = 1, .ready_replicas = 1},
       P::kReady,
       ""},
  };
  for (const auto& c : cases) {
    Observation o = ObserveRevision(spec, c.previous, c.in);
    EXPECT_EQ(o.observed.phase, c.want) << c.name << ": " << RevisionPhaseName(o.observed.phase);
    EXPECT_EQ(o.observed.reason, c.want_reason) << c.name;
    EXPECT_EQ(o.phase_changed, c.previous.phase != c.want) << c.name;
    EXPECT_EQ(o.observed.replicas, c.in.replicas) << c.name;
    EXPECT_EQ(o.observed.ready_replicas, c.in.ready_replicas) << c.name;
  }
}

TEST(ObserveRevision, EventsOnTransitionsOnly) {
  RevisionSpec spec;
  spec.name = "iris-predictor-00002";
  RevisionObservations ready{.aspired = true, .replicas = 2, .ready_replicas = 2, .now = "t1"};
  Observation o = ObserveRevision(spec, Was(P::kLoading), ready);
  ASSERT_EQ(o.events.size(), 1u);
  EXPECT_EQ(o.events[0], (EventRecord{"Normal", "RevisionReady",
                                      "revision iris-predictor-00002 is ready (2 "
                                      "replicas)"}));
  EXPECT_TRUE(o.observed.ever_ready);
  EXPECT_TRUE(ObserveRevision(spec, o.observed, ready).events.empty()) << "no change, no event";

  RevisionObservations crash{.aspired = true,
                             .replicas = 1,
                             .failed_replicas = 1,
                             .crashed = true,
                             .crash_message = "exit 3; no model.bst",
                             .now = "t2"};
  Observation failed = ObserveRevision(spec, Was(P::kLoading), crash);
  ASSERT_EQ(failed.events.size(), 1u);
  EXPECT_EQ(failed.events[0].type, "Warning");
  EXPECT_EQ(failed.events[0].reason, "ModelLoadFailed");
  EXPECT_EQ(failed.events[0].message, "revision iris-predictor-00002: exit 3; no model.bst");
  EXPECT_EQ(failed.observed.failure_time, "t2");
  // The same crash seen again (its log not read again): message and time kept.
  crash.crash_message.reset();
  crash.now = "t3";
  Observation again = ObserveRevision(spec, failed.observed, crash);
  EXPECT_TRUE(again.events.empty());
  EXPECT_EQ(again.observed.message, "exit 3; no model.bst");
  EXPECT_EQ(again.observed.failure_time, "t2");
  // A different failure reason is a new failure.
  crash.fetch = FetchState::kFailed;
  crash.fetch_error = "gone";
  Observation storage = ObserveRevision(spec, again.observed, crash);
  ASSERT_EQ(storage.events.size(), 1u);
  EXPECT_EQ(storage.events[0].reason, "StorageFailed");
  EXPECT_EQ(storage.observed.failure_time, "t3");
}

}  // namespace
}  // namespace osprey::controlplane

namespace osprey::controlplane {
namespace {

IsvcStatus WithConditions(std::vector<Condition> c, std::string url = "http://iris") {
  IsvcStatus s;
  s.url = std::move(url);
  s.conditions = std::move(c);
  return s;
}

TEST(StatusTransition, TimesAndReadyEvents) {
  std::map<std::string, std::string> times;
  const IsvcStatus none;
  const IsvcStatus pending = WithConditions(
      {{"PredictorReady", "Unknown", "Pending", ""}, {"Ready", "Unknown", "Pending", ""}});
  const IsvcStatus ready =
      WithConditions({{"PredictorReady", "True", "", ""}, {"Ready", "True", "", ""}});
  const IsvcStatus failed =
      WithConditions({{"PredictorReady", "False", "ModelLoadFailed", "bad model"},
                      {"Ready", "False", "ModelLoadFailed", "bad model"}});
  struct Step {
    const char* name;
    const IsvcStatus* before;
    const IsvcStatus* after;
    std::string now;
    std::vector<EventRecord> want_events;
    std::map<std::string, std::string> want_times;
  } steps[] = {
      {"first status: every condition gets a time",
       &none,
       &pending,
       "t1",
       {},
       {{"PredictorReady", "t1"}, {"Ready", "t1"}}},
      {"same statuses, reasons aside: times kept",
       &pending,
       &pending,
       "t2",
       {},
       {{"PredictorReady", "t1"}, {"Ready", "t1"}}},
      {"ready",
       &pending,
       &ready,
       "t3",
       {{"Normal", "InferenceServiceReady", "serving at http://iris"}},
       {{"PredictorReady", "t3"}, {"Ready", "t3"}}},
      {"failed after ready",
       &ready,
       &failed,
       "t4",
       {{"Warning", "InferenceServiceNotReady", "ModelLoadFailed: bad model"}},
       {{"PredictorReady", "t4"}, {"Ready", "t4"}}},
      {"Unknown to False is no Ready event",
       &pending,
       &failed,
       "t5",
       {},
       {{"PredictorReady", "t5"}, {"Ready", "t5"}}},
  };
  for (const auto& s : steps) {
    EXPECT_EQ(StatusTransition(*s.before, *s.after, s.now, &times), s.want_events) << s.name;
    EXPECT_EQ(times, s.want_times) << s.name;
  }
}

}  // namespace
}  // namespace osprey::controlplane
