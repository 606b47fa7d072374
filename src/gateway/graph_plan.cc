#include "gateway/graph_plan.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "common/strings.h"
#include "gateway/graph_gjson.h"
#include "gateway/route_table.h"

namespace osprey::gateway {
namespace {

using Router = GraphNode::Router;

constexpr int kMaxDepth = 64;  // a node calling itself would recurse forever in KServe
// Nodes entered plus calls made for one request: Ensembles nested in Ensembles
// fan out exponentially long before kMaxDepth.
constexpr size_t kMaxRunSteps = 4096;

bool Success(int status) { return status >= 200 && status <= 299; }

std::string_view Str(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return {};
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

int64_t Int(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return 0;
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
}

// ---- Go's encoding/json ----

void GoString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        case '\b':
          out->append("\\b");
          break;
        case '\f':
          out->append("\\f");
          break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out->append("\\u00");
            out->push_back(kHex[c >> 4]);
            out->push_back(kHex[c & 15]);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence; invalid bytes become U+FFFD, U+2028/9 are escaped.
    int len = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    bool valid = len > 0 && i + len <= s.size();
    for (int k = 1; valid && k < len; ++k)
      valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (!valid) {
      out->append("\\ufffd");
      ++i;
      continue;
    }
    if (len == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) == 0xA8 ||
         static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out->append(static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029");
    } else {
      out->append(s.substr(i, len));
    }
    i += len;
  }
  out->push_back('"');
}

// strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json picks them.
void GoNumber(std::string* out, double f) {
  char buf[64];
  const double a = std::fabs(f);
  const bool exp = a != 0 && (a < 1e-6 || a >= 1e21);
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f,
                                 exp ? std::chars_format::scientific : std::chars_format::fixed);
  std::string s(buf, end);
  if (exp) {  // e-07 -> e-7, as Go writes exponents
    size_t e = s.find('e');
    if (e != std::string::npos && e + 3 < s.size() + 1 && s.size() - e == 4 && s[e + 2] == '0')
      s.erase(e + 2, 1);
  }
  out->append(s);
}

void GoValue(std::string* out, const rapidjson::Value& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out->append("null");
      break;
    case rapidjson::kFalseType:
      out->append("false");
      break;
    case rapidjson::kTrueType:
      out->append("true");
      break;
    case rapidjson::kStringType:
      GoString(out, {v.GetString(), v.GetStringLength()});
      break;
    case rapidjson::kNumberType:
      GoNumber(out, v.GetDouble());
      break;
    case rapidjson::kArrayType: {
      out->push_back('[');
      bool first = true;
      for (const auto& e : v.GetArray()) {
        if (!first) out->push_back(',');
        first = false;
        GoValue(out, e);
      }
      out->push_back(']');
      break;
    }
    case rapidjson::kObjectType: {
      // A Go map: one entry per key (the last one wins), keys in byte order.
      std::map<std::string_view, const rapidjson::Value*> sorted;
      for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it)
        sorted[{it->name.GetString(), it->name.GetStringLength()}] = &it->value;
      out->push_back('{');
      bool first = true;
      for (const auto& [k, e] : sorted) {
        if (!first) out->push_back(',');
        first = false;
        GoString(out, k);
        out->push_back(':');
        GoValue(out, *e);
      }
      out->push_back('}');
      break;
    }
  }
}

bool Parse(rapidjson::Document* d, std::string_view json) { return ParseGraphJson(json, d); }

bool ValidJson(const std::shared_ptr<const std::string>& body) {
  if (!body) return false;
  rapidjson::Document d;
  return Parse(&d, *body);
}

// mapPredictionsToInstances: Go unmarshals {predictions, instances} (keys
// matched case-insensitively) and, with predictions non-empty, re-marshals
// {"instances": predictions}; anything else leaves the body as it was.
std::shared_ptr<const std::string> MapPredictions(std::shared_ptr<const std::string> body) {
  rapidjson::Document d;
  if (!body || !Parse(&d, *body) || !d.IsObject()) return body;
  const rapidjson::Value* predictions = nullptr;
  for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
    std::string key(it->name.GetString(), it->name.GetStringLength());
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (key != "predictions" && key != "instances") continue;
    if (!it->value.IsArray() && !it->value.IsNull()) return body;  // an unmarshal error
    if (key == "predictions") predictions = it->value.IsNull() ? nullptr : &it->value;
  }
  if (predictions == nullptr || predictions->Empty()) return body;
  auto out = std::make_shared<std::string>("{\"instances\":");
  GoValue(out.get(), *predictions);
  out->push_back('}');
  return out;
}

}  // namespace

std::optional<std::string> GoJsonReencode(std::string_view json) {
  rapidjson::Document d;
  if (!Parse(&d, json)) return std::nullopt;
  std::string out;
  GoValue(&out, d);
  return out;
}

std::string RouterErrorBody(std::string_view cause) {
  std::string out = "{\"error\":\"Failed to process request\",\"cause\":";
  GoString(&out, cause);
  out.push_back('}');
  return out;
}

absl::StatusOr<std::shared_ptr<const Graph>> CompileGraph(std::string_view json) {
  rapidjson::Document d;
  if (!Parse(&d, json) || !d.IsObject())
    return absl::InvalidArgumentError("the InferenceGraph is not a JSON object");
  auto g = std::make_shared<Graph>();
  if (d.HasMember("metadata")) {
    g->name = std::string(Str(d["metadata"], "name"));
    g->namespace_ = std::string(Str(d["metadata"], "namespace"));
  }
  if (!d.HasMember("spec") || !d["spec"].IsObject())
    return absl::InvalidArgumentError("spec: required");
  const rapidjson::Value& spec = d["spec"];
  g->timeout = std::chrono::seconds(Int(spec, "timeout"));
  if (spec.HasMember("routerTimeouts"))
    g->step_timeout = std::chrono::seconds(Int(spec["routerTimeouts"], "serviceClient"));
  if (!spec.HasMember("nodes") || !spec["nodes"].IsObject())
    return absl::InvalidArgumentError("spec.nodes: required");
  const rapidjson::Value& nodes = spec["nodes"];
  std::map<std::string, int> index;
  for (auto it = nodes.MemberBegin(); it != nodes.MemberEnd(); ++it) {
    index[it->name.GetString()] = static_cast<int>(g->nodes.size());
    GraphNode node;
    node.name = it->name.GetString();
    g->nodes.push_back(std::move(node));
  }
  auto root = index.find("root");
  if (root == index.end()) return absl::InvalidArgumentError("spec.nodes.root: required");
  g->root = root->second;
  for (auto it = nodes.MemberBegin(); it != nodes.MemberEnd(); ++it) {
    GraphNode& node = g->nodes[index[it->name.GetString()]];
    const std::string path = StrCat("spec.nodes.", node.name);
    std::string_view router = Str(it->value, "routerType");
    if (router == "Sequence") {
      node.router = Router::kSequence;
    } else if (router == "Splitter") {
      node.router = Router::kSplitter;
    } else if (router == "Ensemble") {
      node.router = Router::kEnsemble;
    } else if (router == "Switch") {
      node.router = Router::kSwitch;
    } else {
      return absl::InvalidArgumentError(StrCat(path, ".routerType: \"", router, "\" is invalid"));
    }
    if (!it->value.HasMember("steps") || !it->value["steps"].IsArray()) continue;
    const auto& steps = it->value["steps"].GetArray();
    for (rapidjson::SizeType i = 0; i < steps.Size(); ++i) {
      const rapidjson::Value& s = steps[i];
      GraphStep step;
      step.name = std::string(Str(s, "name"));
      std::string_view node_name = Str(s, "nodeName");
      if (!node_name.empty()) {
        auto target = index.find(std::string(node_name));
        if (target == index.end())
          return absl::InvalidArgumentError(
              StrCat(path, ".steps[", i, "].nodeName: no node is named \"", node_name, "\""));
        step.node = target->second;
      } else {
        step.url = std::string(Str(s, "serviceUrl"));
        if (step.url.empty())
          return absl::InvalidArgumentError(StrCat(path, ".steps[", i,
                                                   "]: no serviceUrl (serviceName \"",
                                                   Str(s, "serviceName"), "\" unresolved)"));
      }
      step.data_response = Str(s, "data") == "$response";
      step.map_predictions = s.HasMember("mapPredictionsToInstances") &&
                             s["mapPredictionsToInstances"].IsBool() &&
                             s["mapPredictionsToInstances"].GetBool();
      step.weight = Int(s, "weight");
      step.condition = std::string(Str(s, "condition"));
      step.hard = Str(s, "dependency") == "Hard";
      node.steps.push_back(std::move(step));
    }
  }
  return std::shared_ptr<const Graph>(std::move(g));
}

// ---- the planner ----

GraphRun::GraphRun(const Graph& graph) : graph_(graph) {}

std::vector<StepCall> GraphRun::Start(std::shared_ptr<const std::string> input) {
  out_.clear();
  Frame root;
  root.node = graph_.root;
  root.input = std::move(input);
  frames_.push_back(std::move(root));
  Enter(0);
  return std::move(out_);
}

std::vector<StepCall> GraphRun::OnAnswer(uint32_t id, StepAnswer answer) {
  out_.clear();
  if (id >= calls_.size() || answer_.has_value()) return {};
  const Pending p = calls_[id];
  Outcome o;
  if (answer.answered) {
    o.status = answer.http_status;
    o.body = std::move(answer.body);
  } else {
    o.error = true;
    o.status = 500;
    o.message = std::move(answer.error);
  }
  if (!Abandoned(p.frame)) Deliver(p.frame, p.step, std::move(o));
  return std::move(out_);
}

bool GraphRun::Abandoned(int frame) const {
  if (answer_.has_value()) return true;
  for (int f = frame; f >= 0; f = frames_[f].parent)
    if (frames_[f].finished) return true;
  return false;
}

void GraphRun::Enter(int f) {
  const GraphNode& node = graph_.nodes[frames_[f].node];
  if (frames_[f].depth > kMaxDepth) {
    Finish(f, {true, 500, nullptr,
               StrCat("node ", node.name, " is nested more than ", kMaxDepth, " levels deep")});
    return;
  }
  switch (node.router) {
    case Router::kSequence:
      if (node.steps.empty()) {
        Finish(f, {true, 500, nullptr, StrCat("node ", node.name, " has no steps")});
        return;
      }
      RunSequenceStep(f);
      return;
    case Router::kSwitch: {
      rapidjson::Document d;
      const std::shared_ptr<const std::string>& input = frames_[f].input;
      if (input && Parse(&d, *input))
        for (size_t i = 0; i < node.steps.size(); ++i)
          if (GjsonExists(d, node.steps[i].condition)) {
            Execute(f, static_cast<int>(i), input);
            return;
          }
      Finish(f, {true, 404, nullptr, "None of the routes matched with the switch condition"});
      return;
    }
    case Router::kSplitter: {
      const double u = SplitDraw(node.draws->fetch_add(1, std::memory_order_relaxed));
      int64_t end = 0;
      for (size_t i = 0; i < node.steps.size(); ++i) {
        end += node.steps[i].weight;
        if (u < static_cast<double>(end)) {
          Execute(f, static_cast<int>(i), frames_[f].input);
          return;
        }
      }
      Finish(f, {true, 500, nullptr, StrCat("node ", node.name, ": no step took the split")});
      return;
    }
    case Router::kEnsemble:
      if (node.steps.empty()) {
        Finish(f, {false, 200, std::make_shared<const std::string>("{}"), ""});
        return;
      }
      frames_[f].results.resize(node.steps.size());
      for (size_t i = 0; i < node.steps.size() && !Abandoned(f); ++i)
        Execute(f, static_cast<int>(i), frames_[f].input);
      return;
  }
}

void GraphRun::RunSequenceStep(int f) {
  const GraphNode& node = graph_.nodes[frames_[f].node];
  Frame& frame = frames_[f];
  const size_t i = frame.next;
  const GraphStep& step = node.steps[i];
  std::shared_ptr<const std::string> body = frame.input;
  if (step.data_response && i > 0) body = frame.last.body;
  if (step.map_predictions) body = MapPredictions(body);
  if (!step.condition.empty()) {
    rapidjson::Document d;
    if (!frame.has_last || !frame.last.body || !Parse(&d, *frame.last.body)) {
      Finish(f, {true, 500, nullptr, "invalid response"});
      return;
    }
    if (!GjsonExists(d, step.condition)) {
      Outcome last = frame.last;
      last.status = 200;
      Finish(f, std::move(last));
      return;
    }
  }
  Execute(f, static_cast<int>(i), std::move(body));
}

void GraphRun::Execute(int f, int step, std::shared_ptr<const std::string> body) {
  const GraphStep& s = graph_.nodes[frames_[f].node].steps[step];
  if (frames_.size() + calls_.size() >= kMaxRunSteps) {
    Finish(f, {true, 500, nullptr,
               StrCat("the graph takes more than ", kMaxRunSteps, " steps for one request")});
    return;
  }
  if (s.node >= 0) {
    Frame child;
    child.node = s.node;
    child.parent = f;
    child.parent_step = step;
    child.depth = frames_[f].depth + 1;
    child.input = std::move(body);
    frames_.push_back(std::move(child));
    Enter(static_cast<int>(frames_.size() - 1));
    return;
  }
  const uint32_t id = static_cast<uint32_t>(calls_.size());
  calls_.push_back({f, step});
  out_.push_back({id, &s, std::move(body)});
}

void GraphRun::Deliver(int f, int step, Outcome o) {
  const GraphNode& node = graph_.nodes[frames_[f].node];
  switch (node.router) {
    case Router::kSwitch:
    case Router::kSplitter:
      if (o.error) o.status = 500;
      Finish(f, std::move(o));
      return;
    case Router::kSequence: {
      if (o.error) {
        o.status = 500;
        Finish(f, std::move(o));
        return;
      }
      Frame& frame = frames_[f];
      const bool stop = node.steps[step].hard && !Success(o.status);
      frame.last = std::move(o);
      frame.has_last = true;
      if (stop || ++frame.next == node.steps.size()) {
        Finish(f, frame.last);
        return;
      }
      RunSequenceStep(f);
      return;
    }
    case Router::kEnsemble: {
      if (o.error) {  // any error ends the node at once, as KServe's shared error channel does
        o.status = 500;
        Finish(f, std::move(o));
        return;
      }
      // An answer that is not a JSON object fails Go's unmarshal into a
      // map: an error, taken at once.
      rapidjson::Document d;
      if (!o.body || !Parse(&d, *o.body) || !(d.IsObject() || d.IsNull())) {
        Finish(f, {true, 500, nullptr,
                   StrCat("step ", step, " (\"", node.steps[step].name, "\") of node ", node.name,
                          " did not answer a JSON object")});
        return;
      }
      frames_[f].results[step] = std::move(o);
      MergeEnsemble(f);
      return;
    }
  }
}

void GraphRun::MergeEnsemble(int f) {
  const GraphNode& node = graph_.nodes[frames_[f].node];
  Frame& frame = frames_[f];
  // Answers are taken in step order, as KServe waits for them.
  for (; frame.next < node.steps.size() && frame.results[frame.next]; ++frame.next) {
    Outcome& r = *frame.results[frame.next];
    if (node.steps[frame.next].hard && !Success(r.status)) {
      rapidjson::Document d;
      Parse(&d, *r.body);
      std::string body;
      GoValue(&body, d);
      Finish(f, {false, r.status, std::make_shared<const std::string>(std::move(body)), ""});
      return;
    }
  }
  if (frame.next < node.steps.size()) return;
  std::map<std::string, const Outcome*> merged;  // Go sorts the map's keys
  for (size_t i = 0; i < node.steps.size(); ++i)
    merged[node.steps[i].name.empty() ? std::to_string(i) : node.steps[i].name] =
        &*frame.results[i];
  auto body = std::make_shared<std::string>("{");
  bool first = true;
  for (const auto& [key, r] : merged) {
    if (!first) body->push_back(',');
    first = false;
    GoString(body.get(), key);
    body->push_back(':');
    rapidjson::Document d;
    Parse(&d, *r->body);
    GoValue(body.get(), d);
  }
  body->push_back('}');
  Finish(f, {false, 200, std::move(body), ""});
}

void GraphRun::Finish(int f, Outcome o) {
  frames_[f].finished = true;
  const int parent = frames_[f].parent;
  if (parent >= 0) {
    if (!Abandoned(parent)) Deliver(parent, frames_[f].parent_step, std::move(o));
    return;
  }
  GraphAnswer a;
  a.http_status = o.status;
  if (o.error) {
    a.body = std::make_shared<const std::string>(RouterErrorBody(o.message));
    a.json = true;
  } else {
    a.body = o.body ? std::move(o.body) : std::make_shared<const std::string>();
    a.json = ValidJson(a.body);
  }
  answer_ = std::move(a);
}

}  // namespace osprey::gateway
