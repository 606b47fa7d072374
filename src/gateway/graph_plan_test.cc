#include "gateway/graph_plan.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>

#include "common/strings.h"
#include "gateway/graph_gjson.h"

namespace osprey::gateway {
namespace {

// A service: its answer to a body (status, body), or no answer at all.
struct Reply {
  int status = 200;
  std::string body;
  bool answered = true;
};
using Service = std::function<Reply(const std::string& body)>;

Service Fixed(int status, std::string body) {
  return [=](const std::string&) { return Reply{status, body}; };
}
Service Echo(std::string tag) {
  return [=](const std::string& body) { return Reply{200, StrCat("{\"", tag, "\":", body, "}")}; };
}

struct Run {
  GraphAnswer answer;
  std::vector<std::pair<std::string, std::string>> calls;  // url, body, in the order made
};

// Runs a graph against `services` (by URL). Calls are answered in the order
// made unless `reverse` (the last made first: an Ensemble's later step
// answering before an earlier one).
Run Drive(const std::string& spec, std::map<std::string, Service> services, std::string input,
          bool reverse = false) {
  auto graph = CompileGraph(spec);
  EXPECT_TRUE(graph.ok()) << graph.status();
  Run out;
  GraphRun run(**graph);
  std::deque<StepCall> pending;
  for (auto& c : run.Start(std::make_shared<const std::string>(input))) pending.push_back(c);
  while (!run.done() && !pending.empty()) {
    StepCall c = reverse ? pending.back() : pending.front();
    reverse ? pending.pop_back() : pending.pop_front();
    out.calls.emplace_back(c.step->url, *c.body);
    auto it = services.find(c.step->url);
    Reply r = it == services.end() ? Reply{0, "", false} : it->second(*c.body);
    StepAnswer a;
    a.answered = r.answered;
    a.http_status = r.status;
    a.body = std::make_shared<const std::string>(r.body);
    if (!r.answered) a.error = StrCat("dial tcp: ", c.step->url, ": connection refused");
    for (auto& next : run.OnAnswer(c.id, std::move(a))) pending.push_back(next);
  }
  EXPECT_TRUE(run.done());
  if (run.done()) out.answer = run.answer();
  return out;
}

std::string Graph(std::string nodes, std::string extra = "") {
  return StrCat(R"({"apiVersion":"serving.kserve.io/v1alpha1","kind":"InferenceGraph",)",
                R"("metadata":{"name":"g","namespace":"default"},"spec":{"nodes":)", nodes, extra,
                "}}");
}

std::string Body(const Run& r) { return r.answer.body ? *r.answer.body : ""; }

TEST(GraphPlan, SequencePassesTheResponseOnWithDataResponse) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://a"},{"serviceUrl":"http://b","data":"$response"}]}})"),
                 {{"http://a", Echo("a")}, {"http://b", Echo("b")}}, R"({"x":1})");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1].second, R"({"a":{"x":1}})");
  EXPECT_EQ(r.answer.http_status, 200);
  EXPECT_EQ(Body(r), R"({"b":{"a":{"x":1}}})");
  EXPECT_TRUE(r.answer.json);
}

TEST(GraphPlan, SequenceStepsWithoutDataGetTheRequest) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://a","data":"$response"},{"serviceUrl":"http://b","data":"$request"}]}})"),
                 {{"http://a", Echo("a")}, {"http://b", Echo("b")}}, R"({"x":1})");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].second, R"({"x":1})") << "$response on the first step is the request";
  EXPECT_EQ(r.calls[1].second, R"({"x":1})");
  EXPECT_EQ(Body(r), R"({"b":{"x":1}})");
}

TEST(GraphPlan, SequenceHardFailureStopsWithThatAnswer) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://err","dependency":"Hard"},{"serviceUrl":"http://ok"}]}})"),
                 {{"http://err", Fixed(404, R"({"detail":"Intentional 404 code"})")},
                  {"http://ok", Fixed(200, R"({"predictions":[{"message":"SUCCESS"}]})")}},
                 "{}");
  EXPECT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.answer.http_status, 404);
  EXPECT_EQ(Body(r), R"({"detail":"Intentional 404 code"})");
}

TEST(GraphPlan, SequenceSoftFailureContinues) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://err","dependency":"Soft"},{"serviceUrl":"http://ok"}]}})"),
                 {{"http://err", Fixed(404, R"({"detail":"Intentional 404 code"})")},
                  {"http://ok", Fixed(200, R"({"predictions":[{"message":"SUCCESS"}]})")}},
                 "{}");
  EXPECT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.answer.http_status, 200);
  EXPECT_EQ(Body(r), R"({"predictions":[{"message":"SUCCESS"}]})");
}

TEST(GraphPlan, SequenceLastStepStatusIsTheGraphs) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://ok"},{"serviceUrl":"http://err"}]}})"),
                 {{"http://err", Fixed(503, "busy")}, {"http://ok", Fixed(200, "{}")}}, "{}");
  EXPECT_EQ(r.answer.http_status, 503);
  EXPECT_EQ(Body(r), "busy");
  EXPECT_FALSE(r.answer.json);
}

TEST(GraphPlan, SequenceConditionOnThePreviousAnswer) {
  const std::string g = Graph(R"j({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://a"},
      {"serviceUrl":"http://b","data":"$response","condition":"predictions.#(==1)"}]}})j");
  auto taken = Drive(
      g, {{"http://a", Fixed(200, R"({"predictions":[0,1]})")}, {"http://b", Echo("b")}}, "{}");
  EXPECT_EQ(taken.calls.size(), 2u);
  EXPECT_EQ(Body(taken), R"({"b":{"predictions":[0,1]}})");
  // Not met: the node answers the previous answer, with 200 whatever its status.
  auto skipped = Drive(
      g, {{"http://a", Fixed(201, R"({"predictions":[0,0]})")}, {"http://b", Echo("b")}}, "{}");
  EXPECT_EQ(skipped.calls.size(), 1u);
  EXPECT_EQ(skipped.answer.http_status, 200);
  EXPECT_EQ(Body(skipped), R"({"predictions":[0,0]})");
}

TEST(GraphPlan, SequenceConditionOnTheFirstStepIsInvalidResponse) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://a","condition":"x"}]}})"),
                 {{"http://a", Echo("a")}}, R"({"x":1})");
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(r.answer.http_status, 500);
  EXPECT_EQ(Body(r), R"({"error":"Failed to process request","cause":"invalid response"})");
}

const char kSwitch[] = R"j({"root":{"routerType":"Switch","steps":[
    {"name":"rootStep1","serviceUrl":"http://err","condition":"[@this].#(decision_picker==ERROR)"},
    {"name":"rootStep2","serviceUrl":"http://ok","condition":"[@this].#(decision_picker==SUCCESS)"}]}})j";

TEST(GraphPlan, SwitchTakesTheFirstStepWhoseConditionHolds) {
  std::map<std::string, Service> services = {
      {"http://err", Fixed(404, R"({"detail":"Intentional 404 code"})")},
      {"http://ok", Fixed(200, R"({"predictions":[{"message":"SUCCESS"}]})")}};
  auto error = Drive(Graph(kSwitch), services, R"({"decision_picker":"ERROR"})");
  EXPECT_EQ(error.answer.http_status, 404);
  EXPECT_EQ(Body(error), R"({"detail":"Intentional 404 code"})");
  auto success = Drive(Graph(kSwitch), services, R"({"decision_picker":"SUCCESS"})");
  EXPECT_EQ(success.answer.http_status, 200);
  ASSERT_EQ(success.calls.size(), 1u);
  EXPECT_EQ(success.calls[0].first, "http://ok");
  EXPECT_EQ(success.calls[0].second, R"({"decision_picker":"SUCCESS"})");
}

TEST(GraphPlan, SwitchWithNoMatchIs404) {
  for (const char* input : {R"({"decision_picker":"NO_MATCH"})", "not json"}) {
    auto r = Drive(Graph(kSwitch), {}, input);
    EXPECT_TRUE(r.calls.empty());
    EXPECT_EQ(r.answer.http_status, 404);
    EXPECT_EQ(Body(r), R"({"error":"Failed to process request",)"
                       R"("cause":"None of the routes matched with the switch condition"})");
  }
}

TEST(GraphPlan, ANestedNodesErrorIs500ForItsCaller) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"nodeName":"pick","dependency":"Soft"},{"serviceUrl":"http://ok"}]},
      "pick":{"routerType":"Switch","steps":[{"serviceUrl":"http://x","condition":"nope"}]}})"),
                 {{"http://ok", Fixed(200, "{}")}}, "{}");
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(r.answer.http_status, 500);
  EXPECT_NE(Body(r).find("None of the routes matched"), std::string::npos);
}

TEST(GraphPlan, NodeCallsNodeAndItsAnswerFlowsOn) {
  // KServe's e2e scenarios 5/6: a Switch node's 404 as a Soft step
  // continues, as a Hard one stops the sequence.
  const char* nodes = R"j({"root":{"routerType":"Sequence","steps":[
      {"name":"rootStep1","nodeName":"node1","dependency":"%s"},
      {"name":"rootStep2","serviceUrl":"http://ok"}]},
      "node1":{"routerType":"Switch","steps":[{"name":"node1Step1","serviceUrl":"http://err",
        "condition":"[@this].#(decision_picker==ERROR)","dependency":"Hard"}]}})j";
  std::map<std::string, Service> services = {
      {"http://err", Fixed(404, R"({"detail":"Intentional 404 code"})")},
      {"http://ok", Fixed(200, R"({"predictions":[{"message":"SUCCESS"}]})")}};
  char buf[1024];
  std::snprintf(buf, sizeof(buf), nodes, "Soft");
  auto soft = Drive(Graph(buf), services, R"({"decision_picker":"ERROR"})");
  EXPECT_EQ(soft.answer.http_status, 200);
  EXPECT_EQ(Body(soft), R"({"predictions":[{"message":"SUCCESS"}]})");
  std::snprintf(buf, sizeof(buf), nodes, "Hard");
  auto hard = Drive(Graph(buf), services, R"({"decision_picker":"ERROR"})");
  EXPECT_EQ(hard.answer.http_status, 404);
  EXPECT_EQ(Body(hard), R"({"detail":"Intentional 404 code"})");
  EXPECT_EQ(hard.calls.size(), 1u);
}

TEST(GraphPlan, SplitterFollowsTheWeights) {
  auto graph = CompileGraph(Graph(R"({"root":{"routerType":"Splitter","steps":[
      {"serviceUrl":"http://a","weight":30},{"serviceUrl":"http://b","weight":70}]}})"));
  ASSERT_TRUE(graph.ok());
  std::map<std::string, int> counts;
  for (int i = 0; i < 1000; ++i) {
    GraphRun run(**graph);
    auto calls = run.Start(std::make_shared<const std::string>("{}"));
    ASSERT_EQ(calls.size(), 1u);
    ++counts[calls[0].step->url];
    run.OnAnswer(calls[0].id, {true, 200, std::make_shared<const std::string>("{}"), ""});
    ASSERT_TRUE(run.done());
  }
  EXPECT_NEAR(counts["http://a"], 300, 3);
  EXPECT_NEAR(counts["http://b"], 700, 3);
}

TEST(GraphPlan, EnsembleMergesByStepNameAsGoEncodesIt) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Ensemble","steps":[
      {"name":"xgb","serviceUrl":"http://a"},{"serviceUrl":"http://b"}]}})"),
                 {{"http://a", Fixed(200, R"({"predictions":[1.0,2.50],"z":"<&>","a":1e21})")},
                  {"http://b", Fixed(200, R"({"predictions":[0.000000123]})")}},
                 "{}", /*reverse=*/true);
  EXPECT_EQ(r.answer.http_status, 200);
  EXPECT_EQ(Body(r), R"({"1":{"predictions":[1.23e-7]},)"
                     R"("xgb":{"a":1e+21,"predictions":[1,2.5],"z":"\u003c\u0026\u003e"}})");
}

TEST(GraphPlan, EnsembleSoftFailuresAreMerged) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Ensemble","steps":[
      {"name":"rootStep1","serviceUrl":"http://ok"},{"name":"rootStep2","serviceUrl":"http://err"}]}})"),
                 {{"http://err", Fixed(404, R"({"detail":"Intentional 404 code"})")},
                  {"http://ok", Fixed(200, R"({"predictions":[{"message":"SUCCESS"}]})")}},
                 "{}");
  EXPECT_EQ(r.answer.http_status, 200);
  EXPECT_EQ(Body(r), R"({"rootStep1":{"predictions":[{"message":"SUCCESS"}]},)"
                     R"("rootStep2":{"detail":"Intentional 404 code"}})");
}

TEST(GraphPlan, EnsembleHardFailureAnswersThatStep) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Ensemble","steps":[
      {"name":"rootStep1","serviceUrl":"http://err","dependency":"Hard"},
      {"name":"rootStep2","serviceUrl":"http://ok"},{"name":"rootStep3","serviceUrl":"http://ok"}]}})"),
                 {{"http://err", Fixed(404, R"({"detail":"Intentional 404 code"})")},
                  {"http://ok", Fixed(200, R"({"predictions":[{"message":"SUCCESS"}]})")}},
                 "{}");
  EXPECT_EQ(r.answer.http_status, 404);
  EXPECT_EQ(Body(r), R"({"detail":"Intentional 404 code"})");
}

TEST(GraphPlan, EnsembleStepThatIsNotAnObjectIsAnError) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Ensemble","steps":[
      {"serviceUrl":"http://a"},{"serviceUrl":"http://b"}]}})"),
                 {{"http://a", Fixed(200, "{}")}, {"http://b", Fixed(200, "[1]")}}, "{}");
  EXPECT_EQ(r.answer.http_status, 500);
  EXPECT_NE(Body(r).find("did not answer a JSON object"), std::string::npos);
}

TEST(GraphPlan, NoAnswerIsAnErrorEvenForASoftStep) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://down","dependency":"Soft"},{"serviceUrl":"http://ok"}]}})"),
                 {{"http://ok", Fixed(200, "{}")}}, "{}");
  EXPECT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.answer.http_status, 500);
  EXPECT_EQ(Body(r), R"({"error":"Failed to process request",)"
                     R"("cause":"dial tcp: http://down: connection refused"})");
}

TEST(GraphPlan, SequenceIntoEnsembleNode) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://feast"},{"nodeName":"ensembleModel","data":"$response"}]},
      "ensembleModel":{"routerType":"Ensemble","steps":[
        {"name":"sk","serviceUrl":"http://sk"},{"name":"xgb","serviceUrl":"http://xgb"}]}})"),
                 {{"http://feast", Fixed(200, R"({"instances":[[1,2]]})")},
                  {"http://sk", Echo("p")},
                  {"http://xgb", Fixed(200, R"({"predictions":[1]})")}},
                 "{}");
  ASSERT_EQ(r.calls.size(), 3u);
  EXPECT_EQ(r.calls[1].second, R"({"instances":[[1,2]]})");
  EXPECT_EQ(Body(r), R"({"sk":{"p":{"instances":[[1,2]]}},"xgb":{"predictions":[1]}})");
}

TEST(GraphPlan, MapPredictionsToInstances) {
  auto r = Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[
      {"serviceUrl":"http://a"},
      {"serviceUrl":"http://b","data":"$response","mapPredictionsToInstances":true}]}})"),
                 {{"http://a", Fixed(200, R"({"predictions":[[1.0,2]],"model_name":"a"})")},
                  {"http://b", Echo("b")}},
                 "{}");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1].second, R"({"instances":[[1,2]]})");
}

TEST(GraphPlan, ACycleEndsWithAnError) {
  auto r =
      Drive(Graph(R"({"root":{"routerType":"Sequence","steps":[{"nodeName":"root"}]}})"), {}, "{}");
  EXPECT_EQ(r.answer.http_status, 500);
  EXPECT_NE(Body(r).find("nested more than"), std::string::npos);
}

// Two Ensemble steps calling their own node double the work per level: the run
// stops at its step budget, long before the depth limit.
TEST(GraphPlan, AnExponentialFanOutEndsWithAnError) {
  std::string nodes = "{";
  for (int level = 0; level < 13; ++level) {
    std::string name = level == 0 ? "root" : StrCat("n", level);
    std::string next = StrCat("\"nodeName\":\"n", level + 1, "\"");
    if (level == 12) next = "\"serviceUrl\":\"http://a\"";
    nodes += StrCat("\"", name, "\":{\"routerType\":\"Ensemble\",\"steps\":[{\"name\":\"a\",", next,
                    "},{\"name\":\"b\",", next, "}]},");
  }
  nodes.back() = '}';
  auto r = Drive(Graph(nodes), {{"http://a", Echo("a")}}, "{}");
  EXPECT_EQ(r.answer.http_status, 500);
  EXPECT_NE(Body(r).find("more than 4096 steps"), std::string::npos) << Body(r);
}

// A body nested deeper than the graph reads is not JSON to it: a Switch finds
// no condition in it (rather than recursing through it).
TEST(GraphPlan, DeeplyNestedInputIsNotJson) {
  std::string deep = "{\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = Drive(Graph(R"({"root":{"routerType":"Switch","steps":[
      {"serviceUrl":"http://a","condition":"x"}]}})"),
                 {{"http://a", Echo("a")}}, deep);
  EXPECT_EQ(r.answer.http_status, 404);
  EXPECT_FALSE(GjsonExists(deep, "x"));
  EXPECT_TRUE(GjsonExists("{\"x\":" + std::string(100, '[') + std::string(100, ']') + "}", "x"));
  EXPECT_FALSE(GoJsonReencode(deep).has_value());
}

TEST(GraphPlan, CompileRefusesUnresolvedSteps) {
  auto g =
      CompileGraph(Graph(R"({"root":{"routerType":"Sequence","steps":[{"serviceName":"x"}]}})"));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("serviceName \"x\" unresolved"), std::string_view::npos);
  EXPECT_FALSE(CompileGraph(Graph(R"({"other":{"routerType":"Sequence"}})")).ok());
  auto t = CompileGraph(Graph(R"({"root":{"routerType":"Sequence"}})",
                              R"(,"timeout":7,"routerTimeouts":{"serviceClient":2})"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->timeout.count(), 7);
  EXPECT_EQ((*t)->step_timeout.count(), 2);
}

TEST(GraphPlan, GoJsonReencode) {
  EXPECT_EQ(GoJsonReencode(R"({"b":1,"a":[1.5e300,-0.0,100,1e-6,123456789012345678],"b":2})"),
            R"({"a":[1.5e+300,-0,100,0.000001,123456789012345680],"b":2})");
  EXPECT_EQ(GoJsonReencode("\"\\u2028\\u0001\""), R"("\u2028\u0001")");
  EXPECT_FALSE(GoJsonReencode("{").has_value());
}

}  // namespace
}  // namespace osprey::gateway
