#include "controlplane/local/watch.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "common/strings.h"
#include "controlplane/local/kube_api.h"

namespace osprey::controlplane {
namespace {

using Clock = std::chrono::steady_clock;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Terms split at commas outside parentheses (`a in (x,y),b`).
std::vector<std::string_view> SplitTerms(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = pos;
    for (int depth = 0; comma < s.size(); ++comma) {
      if (s[comma] == '(') ++depth;
      if (s[comma] == ')') --depth;
      if (s[comma] == ',' && depth <= 0) break;
    }
    std::string_view term = Trim(s.substr(pos, comma - pos));
    if (!term.empty()) out.push_back(term);
    pos = comma + 1;
  }
  return out;
}

}  // namespace

absl::StatusOr<ObjectView> ObjectViewOf(std::string json) {
  rapidjson::Document d;
  if (d.Parse(json.data(), json.size()).HasParseError() || !d.IsObject())
    return absl::InternalError("an object the controller rendered is not JSON");
  ObjectView out;
  auto meta = d.FindMember("metadata");
  if (meta == d.MemberEnd() || !meta->value.IsObject()) return out;
  const auto& m = meta->value;
  if (auto it = m.FindMember("namespace"); it != m.MemberEnd() && it->value.IsString())
    out.ns = it->value.GetString();
  if (auto it = m.FindMember("name"); it != m.MemberEnd() && it->value.IsString())
    out.name = it->value.GetString();
  if (auto it = m.FindMember("labels"); it != m.MemberEnd() && it->value.IsObject())
    for (auto l = it->value.MemberBegin(); l != it->value.MemberEnd(); ++l)
      if (l->value.IsString()) out.labels[l->name.GetString()] = l->value.GetString();
  out.json = std::move(json);
  return out;
}

absl::StatusOr<Selector> Selector::Parse(std::string_view labels, std::string_view fields,
                                         const std::vector<std::string_view>& extra_fields) {
  Selector out;
  for (bool field : {false, true}) {
    for (std::string_view term : SplitTerms(field ? fields : labels)) {
      Term t;
      t.field = field;
      size_t op = term.find_first_of("!=");
      // Set-based: `key in (a,b)`, `key notin (a,b)`.
      const size_t space = term.find(' ');
      if (!field && space != std::string_view::npos && op == std::string_view::npos) {
        std::string_view rest = Trim(term.substr(space));
        const bool in = rest.starts_with("in ") || rest.starts_with("in(");
        const bool notin = rest.starts_with("notin ") || rest.starts_with("notin(");
        rest = Trim(rest.substr(in ? 2 : notin ? 5 : 0));
        if ((!in && !notin) || !rest.starts_with('(') || !rest.ends_with(')'))
          return absl::InvalidArgumentError(StrCat(
              "labelSelector: cannot read \"", term,
              "\" (terms are key=value, key==value, key!=value, key, !key, key in (a,b) and key "
              "notin (a,b))"));
        t.op = in ? Term::kIn : Term::kNotIn;
        t.key = std::string(term.substr(0, space));
        for (std::string_view v : SplitTerms(rest.substr(1, rest.size() - 2)))
          t.values.emplace_back(v);
        if (t.values.empty())
          return absl::InvalidArgumentError(
              StrCat("labelSelector: \"", term, "\": a set needs at least one value"));
        out.terms_.push_back(std::move(t));
        continue;
      }
      if (!field && term.starts_with('!')) {
        t.op = Term::kAbsent;
        t.key = std::string(Trim(term.substr(1)));
      } else if (op == std::string_view::npos) {
        if (field)
          return absl::InvalidArgumentError(
              StrCat("fieldSelector: \"", term, "\" is not key=value"));
        t.op = Term::kExists;
        t.key = std::string(term);
      } else {
        t.key = std::string(Trim(term.substr(0, op)));
        std::string_view rest = term.substr(op);
        if (rest.starts_with("!=")) {
          t.op = Term::kNe;
          rest.remove_prefix(2);
        } else if (rest.starts_with("==")) {
          t.op = Term::kEq;
          rest.remove_prefix(2);
        } else if (rest.starts_with("=")) {
          t.op = Term::kEq;
          rest.remove_prefix(1);
        } else {
          return absl::InvalidArgumentError(
              StrCat(field ? "fieldSelector" : "labelSelector", ": cannot read \"", term, "\""));
        }
        t.value = std::string(Trim(rest));
      }
      if (t.key.empty() || t.key.find(' ') != std::string::npos)
        return absl::InvalidArgumentError(
            StrCat(field ? "fieldSelector" : "labelSelector", ": cannot read \"", term, "\""));
      if (field && t.key != "metadata.name" && t.key != "metadata.namespace" &&
          std::find(extra_fields.begin(), extra_fields.end(), t.key) == extra_fields.end())
        return absl::InvalidArgumentError(
            StrCat("fieldSelector: \"", t.key,
                   "\" is not a field label Osprey selects by (metadata.name, "
                   "metadata.namespace)"));
      out.terms_.push_back(std::move(t));
    }
  }
  return out;
}

bool Selector::Matches(const ObjectView& o) const {
  for (const auto& t : terms_) {
    std::optional<std::string> value;
    if (t.field) {
      if (t.key == "metadata.name")
        value = o.name;
      else if (t.key == "metadata.namespace")
        value = o.ns;
      else if (auto it = o.fields.find(t.key); it != o.fields.end())
        value = it->second;
      else
        value = "";
    } else if (auto it = o.labels.find(t.key); it != o.labels.end()) {
      value = it->second;
    }
    switch (t.op) {
      case Term::kEq:
        if (!value || *value != t.value) return false;
        break;
      case Term::kNe:
        if (value && *value == t.value) return false;
        break;
      case Term::kExists:
        if (!value) return false;
        break;
      case Term::kAbsent:
        if (value) return false;
        break;
      case Term::kIn:
        if (!value || std::find(t.values.begin(), t.values.end(), *value) == t.values.end())
          return false;
        break;
      case Term::kNotIn:
        if (value && std::find(t.values.begin(), t.values.end(), *value) != t.values.end())
          return false;
        break;
    }
  }
  return true;
}

std::string WithResourceVersion(std::string_view json, uint64_t rv) {
  constexpr std::string_view kMeta = "\"metadata\":{";
  size_t at = json.find(kMeta);
  if (at == std::string_view::npos) return std::string(json);
  at += kMeta.size();
  const bool empty = at < json.size() && json[at] == '}';
  return StrCat(json.substr(0, at), "\"resourceVersion\":\"", rv, "\"", empty ? "" : ",",
                json.substr(at));
}

WatchHub::WatchHub(Lister lister, Options options)
    : lister_(std::move(lister)),
      options_(options),
      rv_(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count())) {}

WatchHub::~WatchHub() { Stop(); }

void WatchHub::Stop() {
  std::thread poller;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    for (auto& [_, state] : kinds_) {
      for (auto& w : state.watchers) w->stream->Close();
      state.watchers.clear();
    }
    poller = std::move(poller_);
  }
  cv_.notify_all();
  if (poller.joinable()) poller.join();
}

void WatchHub::Exclusive(const std::function<void()>& change) {
  std::lock_guard<std::mutex> lock(mu_);
  change();
}

size_t WatchHub::watchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [_, state] : kinds_) n += state.watchers.size();
  return n;
}

absl::StatusOr<WatchHub::List> WatchHub::Sync(const resources::KindInfo& kind) {
  std::lock_guard<std::mutex> lock(mu_);
  KindState& state = kinds_[std::string(kind.plural)];
  OSPREY_RETURN_IF_ERROR(SyncLocked(kind, state));
  List out;
  out.resource_version = rv_;
  out.items.reserve(state.objects.size());
  for (const auto& [_, o] : state.objects) out.items.push_back(o);
  return out;
}

absl::Status WatchHub::SyncLocked(const resources::KindInfo& kind, KindState& state) {
  // The lister takes the controller's lock, never this one's callers': no cycle.
  state.kind = &kind;
  OSPREY_ASSIGN_OR_RETURN(std::vector<ObjectView> objects, lister_(kind));
  const bool first = state.floor == 0;
  std::map<std::string, std::string> seen;
  std::vector<Event> events;
  for (auto& view : objects) {
    std::string key = StrCat(view.ns, "/", view.name);
    std::string json = std::move(view.json);
    auto raw = state.raw.find(key);
    if (raw == state.raw.end() || raw->second != json) {
      view.resource_version = ++rv_;
      view.json = WithResourceVersion(json, view.resource_version);
      auto shared = std::make_shared<const ObjectView>(std::move(view));
      events.push_back({shared->resource_version,
                        raw == state.raw.end() ? std::string_view("ADDED") : "MODIFIED", shared});
      state.objects[key] = shared;
    }
    seen.emplace(std::move(key), std::move(json));
  }
  for (auto it = state.objects.begin(); it != state.objects.end();) {
    if (seen.contains(it->first)) {
      ++it;
      continue;
    }
    auto gone = std::make_shared<ObjectView>(*it->second);
    gone->resource_version = ++rv_;
    gone->json = WithResourceVersion(state.raw[it->first], gone->resource_version);
    events.push_back({gone->resource_version, "DELETED", std::move(gone)});
    it = state.objects.erase(it);
  }
  state.raw = std::move(seen);
  if (first) {
    // What existed when the hub first looked is its first history (a client
    // may resume from any of those versions); nobody watches yet.
    state.floor = events.empty() ? rv_ : events.front().rv - 1;
    for (auto& e : events) state.history.push_back(std::move(e));
    events.clear();
  }
  for (auto& e : events) {
    for (auto& w : state.watchers) {
      const WatchRequest& r = w->request;
      if ((r.ns.empty() || r.ns == e.object->ns) && r.selector.Matches(*e.object))
        Send(*w, e.type, *e.object);
    }
    state.history.push_back(std::move(e));
  }
  while (state.history.size() > options_.history) {
    state.floor = state.history.front().rv;
    state.history.pop_front();
  }
  return absl::OkStatus();
}

void WatchHub::Send(Watcher& w, std::string_view type, const ObjectView& object) {
  w.stream->Write(StrCat("{\"type\":\"", type, "\",\"object\":", w.request.encode(object), "}\n"));
}

void WatchHub::Bookmark(Watcher& w, uint64_t rv, bool initial_events_end) {
  const auto& k = *w.request.kind;
  w.stream->Write(StrCat(
      "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"", k.kind, "\",\"apiVersion\":\"", k.group,
      k.group.empty() ? "" : "/", k.version, "\",\"metadata\":{\"resourceVersion\":\"", rv, "\"",
      initial_events_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}" : "",
      "}}}\n"));
}

absl::Status WatchHub::Watch(WatchRequest request, std::shared_ptr<HttpStream> stream) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) return absl::UnavailableError("the API is shutting down");
  KindState& state = kinds_[std::string(request.kind->plural)];
  OSPREY_RETURN_IF_ERROR(SyncLocked(*request.kind, state));
  auto w = std::make_shared<Watcher>();
  w->stream = std::move(stream);
  const auto now = Clock::now();
  w->deadline = now + request.timeout;
  w->next_bookmark = now + options_.bookmark;
  w->request = std::move(request);
  const WatchRequest& r = w->request;
  auto wanted = [&r](const ObjectView& o) {
    return (r.ns.empty() || r.ns == o.ns) && r.selector.Matches(o);
  };
  const uint64_t since = r.since.value_or(0);
  if (r.send_initial_events) {
    for (const auto& [_, o] : state.objects)
      if (wanted(*o)) Send(*w, "ADDED", *o);
    Bookmark(*w, rv_, true);
  } else if (since == 0) {
    for (const auto& [_, o] : state.objects)
      if (wanted(*o)) Send(*w, "ADDED", *o);
  } else if (since < state.floor) {
    const std::string status = kube_api::StatusJson(
        410, "Expired", StrCat("too old resource version: ", since, " (", state.floor, ")"));
    w->stream->Write(StrCat("{\"type\":\"ERROR\",\"object\":", status, "}\n"));
    w->stream->Close();
    return absl::OkStatus();
  } else {
    for (const auto& e : state.history)
      if (e.rv > since && wanted(*e.object)) Send(*w, e.type, *e.object);
  }
  state.watchers.push_back(std::move(w));
  if (!poller_.joinable()) poller_ = std::thread([this] { Poll(); });
  return absl::OkStatus();
}

void WatchHub::Poll() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopped_) {
    cv_.wait_for(lock, options_.poll, [this] { return stopped_; });
    if (stopped_) return;
    const auto now = Clock::now();
    for (auto& [_, state] : kinds_) {
      if (state.watchers.empty() || state.kind == nullptr) continue;
      (void)SyncLocked(*state.kind, state);  // a failed listing is tried again next poll
      auto& ws = state.watchers;
      for (auto& w : ws) {
        if (now >= w->deadline) w->stream->Close();
        if (w->request.bookmarks && now >= w->next_bookmark && w->stream->open()) {
          Bookmark(*w, rv_);
          w->next_bookmark = now + options_.bookmark;
        }
      }
      ws.erase(
          std::remove_if(ws.begin(), ws.end(), [](const auto& w) { return !w->stream->open(); }),
          ws.end());
    }
  }
}

}  // namespace osprey::controlplane
