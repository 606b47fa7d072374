#pragma once

// Resource versions and watches for the API's objects, as a Kubernetes API
// server keeps them. The controller keeps no versions: the hub gives each
// object one when it sees it change (a counter that starts at the hub's
// start time in microseconds, so versions keep growing across restarts) and
// sends each watcher the changes of its kind in order: ADDED, MODIFIED,
// DELETED, BOOKMARK, and ERROR (410 Expired) for a version older than the
// changes it keeps. Kinds (Osprey's, and core v1 pods and events) are
// observed when read and, while someone watches them, every poll interval.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "net/http_types.h"
#include "resources/kinds.h"

namespace osprey::controlplane {

// One object as the hub knows it.
struct ObjectView {
  std::string ns, name;
  std::map<std::string, std::string> labels;
  // Field labels beyond metadata.name and metadata.namespace that its kind
  // selects by (an event's involvedObject.name, ...).
  std::map<std::string, std::string> fields;
  uint64_t resource_version = 0;
  std::string json;  // as the controller renders it, with metadata.resourceVersion
};

// labelSelector and fieldSelector of a list or watch, as Kubernetes reads
// them: labels `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
// `k notin (a,b)`; fields metadata.name,
// metadata.namespace and the kind's own field labels (`extra_fields`) with
// `=`, `==`, `!=`; every term must hold.
class Selector {
 public:
  static absl::StatusOr<Selector> Parse(std::string_view labels, std::string_view fields,
                                        const std::vector<std::string_view>& extra_fields = {});
  bool Matches(const ObjectView& object) const;

 private:
  struct Term {
    enum Op { kEq, kNe, kExists, kAbsent, kIn, kNotIn } op;
    bool field;  // a field of metadata, else a label
    std::string key, value;
    std::vector<std::string> values;  // kIn, kNotIn
  };
  std::vector<Term> terms_;
};

// An object's namespace, name and labels read from its JSON (metadata);
// Internal when it is not a JSON object.
absl::StatusOr<ObjectView> ObjectViewOf(std::string json);

// `json` with metadata.resourceVersion set to `rv`.
std::string WithResourceVersion(std::string_view json, uint64_t rv);

class WatchHub {
 public:
  struct Options {
    std::chrono::milliseconds poll{100};
    std::chrono::seconds bookmark{5};  // between bookmarks, for watchers that take them
    size_t history = 10000;            // changes kept per kind for watches that resume
  };
  // Every object of a kind in every namespace (ObjectViewOf for JSON that
  // carries its own labels).
  using Lister = std::function<absl::StatusOr<std::vector<ObjectView>>(const resources::KindInfo&)>;

  WatchHub(Lister lister, Options options);
  ~WatchHub();
  // Ends every watch (their streams end) and the poller.
  void Stop();

  struct List {
    uint64_t resource_version = 0;
    std::vector<std::shared_ptr<const ObjectView>> items;  // by namespace, then name
  };
  // Observes `kind` now: its objects and the version of this list.
  absl::StatusOr<List> Sync(const resources::KindInfo& kind);

  struct WatchRequest {
    const resources::KindInfo* kind = nullptr;
    std::string ns;  // "": every namespace
    Selector selector;
    // The version to start after; absent or 0: every object as ADDED first.
    std::optional<uint64_t> since;
    bool bookmarks = false;
    // sendInitialEvents: every object as ADDED, then a bookmark marking
    // their end (k8s.io/initial-events-end), then the changes.
    bool send_initial_events = false;
    std::chrono::seconds timeout{1800};
    // An event's object as sent (the object, or a Table of it).
    std::function<std::string(const ObjectView&)> encode;
  };
  // Writes the watch's events to `stream` (one JSON object per line) until
  // the stream ends, the timeout passes or the hub stops.
  absl::Status Watch(WatchRequest request, std::shared_ptr<HttpStream> stream);

  size_t watchers() const;

  // Runs `change` with no observation of any kind under way: what it
  // changes (the controller's objects and their API records) is seen
  // together, as one change. `change` must not call Sync or Watch.
  void Exclusive(const std::function<void()>& change);

 private:
  struct Event {
    uint64_t rv;
    std::string_view type;  // ADDED, MODIFIED, DELETED
    std::shared_ptr<const ObjectView> object;
  };
  struct Watcher {
    WatchRequest request;
    std::shared_ptr<HttpStream> stream;
    std::chrono::steady_clock::time_point deadline, next_bookmark;
  };
  struct KindState {
    const resources::KindInfo* kind = nullptr;
    std::map<std::string, std::shared_ptr<const ObjectView>> objects;  // ns/name
    std::map<std::string, std::string> raw;                            // ns/name -> JSON seen
    std::deque<Event> history;
    uint64_t floor = 0;  // changes after this version are all in `history`
    std::vector<std::shared_ptr<Watcher>> watchers;
  };

  absl::Status SyncLocked(const resources::KindInfo& kind, KindState& state);
  void Send(Watcher& w, std::string_view type, const ObjectView& object);
  void Bookmark(Watcher& w, uint64_t rv, bool initial_events_end = false);
  void Poll();

  Lister lister_;
  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t rv_;
  std::map<std::string, KindState> kinds_;  // by plural
  bool stopped_ = false;
  std::thread poller_;
};

}  // namespace osprey::controlplane
