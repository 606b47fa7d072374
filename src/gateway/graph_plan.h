#pragma once

// An InferenceGraph as the gateway runs it: the compiled graph (from the
// canonical JSON the control plane puts in its route, serviceName steps
// already resolved to their InferenceService's URL) and the step planner, a
// pure state machine: (graph, results so far) -> the next calls, or the
// final answer. No I/O, no clock: the executor (graph_executor.h) makes the
// calls and feeds their answers back.
//
// The planner reproduces KServe's router (cmd/router, v0.17):
//   Sequence  steps in order; a step's body is the node's input, or with
//             data: $response (not on the first step) the previous answer;
//             mapPredictionsToInstances turns {"predictions": [...]} into
//             {"instances": [...]}; a step with a condition runs only if it
//             exists (GJSON) in the previous answer, else the node answers
//             that answer with 200 (on the first step: 500 "invalid
//             response"); a Hard step answering non-2xx ends the node with
//             its answer; otherwise the node answers the last step's answer
//             and status.
//   Switch    the first step whose condition exists in the node's input
//             (which must be valid JSON) runs with that input; none: 404
//             "None of the routes matched with the switch condition".
//   Splitter  one step by weight (a low-discrepancy sequence per node: the
//             observed split follows the weights within O(log n / n)).
//   Ensemble  every step at once with the node's input; answers merged into
//             one JSON object keyed by step name (the index when unnamed), each
//             answer re-encoded as Go's encoding/json does (keys sorted); in
//             step order, a Hard step answering non-2xx ends the node with
//             that answer and status; Soft failures are merged as answers.
//             An answer that is not a JSON object is an error.
//   A step that got no answer (connection failed, its client timeout) or a
//   node that failed is an error: 500 for the node that called it, its own
//   status at the root (404 for a Switch with no match); the graph answers
//   {"error": "Failed to process request", "cause": "..."}.
//
// Threading: a GraphRun belongs to one request (one thread at a time); a
// Graph is immutable and shared (a Splitter's draw counters are atomic).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey::gateway {

struct GraphStep {
  std::string name;            // as written; Ensemble keys by it, else by the index
  int node = -1;               // nodeName: index into Graph::nodes; else -1
  std::string url;             // serviceUrl (serviceName resolved by the control plane)
  bool data_response = false;  // data: $response
  bool map_predictions = false;
  int64_t weight = 0;
  std::string condition;  // GJSON path; "" none
  bool hard = false;
};

struct GraphNode {
  enum class Router { kSequence, kSplitter, kEnsemble, kSwitch };
  std::string name;
  Router router = Router::kSequence;
  std::vector<GraphStep> steps;
  std::shared_ptr<std::atomic<uint64_t>> draws = std::make_shared<std::atomic<uint64_t>>(0);
};

struct Graph {
  std::string namespace_;
  std::string name;
  std::vector<GraphNode> nodes;
  int root = 0;
  // spec.timeout: the whole request; 0: none given.
  std::chrono::seconds timeout{0};
  // spec.routerTimeouts.serviceClient: each step's call; 0: none.
  std::chrono::seconds step_timeout{0};
};

// The graph of a canonical InferenceGraph JSON (apiVersion, kind, metadata,
// spec). INVALID_ARGUMENT names what is wrong (an unresolved serviceName, a
// nodeName that names no node, no root).
absl::StatusOr<std::shared_ptr<const Graph>> CompileGraph(std::string_view json);

// One call the executor makes: POST `body` to `step->url`.
struct StepCall {
  uint32_t id = 0;
  const GraphStep* step = nullptr;
  std::shared_ptr<const std::string> body;
};

// What came back of a call. `answered` false: no HTTP answer (the message
// says why), an error for the graph.
struct StepAnswer {
  bool answered = true;
  int http_status = 0;
  std::shared_ptr<const std::string> body;
  std::string error;
};

struct GraphAnswer {
  int http_status = 0;
  std::shared_ptr<const std::string> body;
  bool json = false;  // the body is valid JSON (Content-Type: application/json)
};

class GraphRun {
 public:
  // The graph must outlive the run.
  explicit GraphRun(const Graph& graph);

  // Starts at the root with the request's body; returns the first calls.
  std::vector<StepCall> Start(std::shared_ptr<const std::string> input);
  // The answer to call `id`; returns the calls it makes possible. Answers to
  // calls of a branch already decided (an Ensemble ended by an error) are
  // ignored.
  std::vector<StepCall> OnAnswer(uint32_t id, StepAnswer answer);

  bool done() const { return answer_.has_value(); }
  const GraphAnswer& answer() const { return *answer_; }

 private:
  struct Outcome {
    bool error = false;
    int status = 0;
    std::shared_ptr<const std::string> body;
    std::string message;
  };
  struct Frame {
    int node = 0;
    int parent = -1;       // frame index; -1 for the root
    int parent_step = -1;  // the parent's step this frame runs
    int depth = 0;
    std::shared_ptr<const std::string> input;
    bool finished = false;
    size_t next = 0;  // Sequence: the step running; Ensemble: the next to merge
    Outcome last;     // Sequence: the previous step's answer
    bool has_last = false;
    std::vector<std::optional<Outcome>> results;  // Ensemble
  };
  struct Pending {
    int frame;
    int step;
  };

  bool Abandoned(int frame) const;
  void Enter(int frame);
  void RunSequenceStep(int frame);
  void Execute(int frame, int step, std::shared_ptr<const std::string> body);
  void Deliver(int frame, int step, Outcome outcome);
  void Finish(int frame, Outcome outcome);
  void MergeEnsemble(int frame);

  const Graph& graph_;
  std::vector<Frame> frames_;
  std::vector<Pending> calls_;  // by call id
  std::vector<StepCall> out_;   // calls made during the current Start/OnAnswer
  std::optional<GraphAnswer> answer_;
};

// Go's encoding/json rendering of a JSON text (objects' keys sorted, the last
// of duplicate keys kept, numbers as float64, HTML characters escaped), as
// KServe's router re-encodes Ensemble answers; nullopt when not valid JSON.
std::optional<std::string> GoJsonReencode(std::string_view json);

// The router's error body: {"error": "Failed to process request", "cause": cause}.
std::string RouterErrorBody(std::string_view cause);

}  // namespace osprey::gateway
