#include "kube/informer.h"

#include <algorithm>

#include "common/json_dom.h"
#include "common/logging.h"

namespace osprey::kube {

absl::StatusOr<ObjectPtr> ParseObject(std::string_view json) {
  std::string trimmed;
  if (json.find("\"managedFields\"") != std::string_view::npos) {
    rapidjson::Document full;
    if (full.Parse(json.data(), json.size()).HasParseError() || !full.IsObject())
      return absl::InvalidArgumentError("object is not JSON");
    auto meta = full.FindMember("metadata");
    if (meta != full.MemberEnd() && meta->value.IsObject())
      meta->value.RemoveMember("managedFields");
    trimmed = json::ToText(full);
    json = trimmed;
  }
  // The DOM takes about as much as the text, plus its values' nodes.
  auto obj = std::make_shared<Object>(std::max<size_t>(1024, json.size() * 2));
  if (obj->doc.Parse(json.data(), json.size()).HasParseError() || !obj->doc.IsObject())
    return absl::InvalidArgumentError("object is not JSON");
  auto meta = obj->doc.FindMember("metadata");
  if (meta == obj->doc.MemberEnd() || !meta->value.IsObject())
    return absl::InvalidArgumentError("object has no metadata");
  const auto& m = meta->value;
  obj->namespace_ = json::GetString(m, "namespace");
  obj->name = json::GetString(m, "name");
  obj->uid = json::GetString(m, "uid");
  obj->resource_version = json::GetString(m, "resourceVersion");
  obj->generation = json::GetInt(m, "generation");
  obj->deleting = !json::GetString(m, "deletionTimestamp").empty();
  return ObjectPtr(std::move(obj));
}

Informer::Informer(Client* client, InformerOptions options)
    : client_(client), options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

void Informer::AddHandler(Handler handler) { handlers_.push_back(std::move(handler)); }

void Informer::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.store(false);
  }
  stop_cv_.notify_all();
}

void Informer::Stop() {
  Cancel();
  if (thread_.joinable()) thread_.join();
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!synced_.load()) {
    if (std::chrono::steady_clock::now() >= deadline || !running_.load()) return synced_.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

ObjectPtr Informer::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = store_.find(key);
  return it == store_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(store_.size());
  for (const auto& [key, obj] : store_) out.push_back(obj);
  return out;
}

size_t Informer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return store_.size();
}

std::string Informer::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

bool Informer::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  stop_cv_.wait_for(lock, d, [this] { return !running_.load(); });
  return running_.load();
}

std::string Informer::Query() const {
  std::string q;
  if (!options_.label_selector.empty())
    StrAppend(&q, "&labelSelector=", QueryEscape(options_.label_selector));
  if (!options_.field_selector.empty())
    StrAppend(&q, "&fieldSelector=", QueryEscape(options_.field_selector));
  return q;
}

void Informer::Notify(const ObjectPtr& now, const ObjectPtr& before) {
  for (const auto& h : handlers_) h(now, before);
}

absl::Status Informer::ListAll() {
  const std::string base = ResourcePath(options_.resource, options_.namespace_);
  std::map<std::string, ObjectPtr> fresh;
  std::string cont;
  std::string rv;
  do {
    std::string path = StrCat(base, "?limit=", options_.page_size, Query());
    if (!cont.empty()) StrAppend(&path, "&continue=", QueryEscape(cont));
    OSPREY_ASSIGN_OR_RETURN(std::string body, client_->Get(path));
    rapidjson::Document d;
    if (d.Parse(body.data(), body.size()).HasParseError() || !d.IsObject())
      return absl::InternalError(StrCat("list ", base, ": answer is not JSON"));
    auto meta = d.FindMember("metadata");
    if (meta == d.MemberEnd())
      return absl::InternalError(StrCat("list ", base, ": answer has no metadata"));
    rv = json::GetString(meta->value, "resourceVersion");
    cont = json::GetString(meta->value, "continue");
    auto items = d.FindMember("items");
    if (items != d.MemberEnd() && items->value.IsArray()) {
      for (const auto& item : items->value.GetArray()) {
        auto obj = ParseObject(json::ToText(item));
        if (obj.ok()) fresh.emplace((*obj)->Key(), *obj);
      }
    }
  } while (!cont.empty());
  lists_.fetch_add(1);
  // What changed since the cache was last right, as events.
  std::vector<std::pair<ObjectPtr, ObjectPtr>> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, obj] : fresh) {
      auto it = store_.find(key);
      if (it == store_.end()) {
        changes.emplace_back(obj, nullptr);
      } else if (it->second->resource_version != obj->resource_version) {
        changes.emplace_back(obj, it->second);
      }
    }
    for (const auto& [key, obj] : store_)
      if (!fresh.contains(key)) changes.emplace_back(nullptr, obj);
    store_ = std::move(fresh);
    rv_ = rv;
  }
  synced_.store(true);
  for (const auto& [now, before] : changes) Notify(now, before);
  return absl::OkStatus();
}

void Informer::Apply(const std::string& type, ObjectPtr obj) {
  ObjectPtr before;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!obj->resource_version.empty()) rv_ = obj->resource_version;
    if (type == "BOOKMARK") return;
    auto it = store_.find(obj->Key());
    if (it != store_.end()) before = it->second;
    if (type == "DELETED") {
      if (it != store_.end()) store_.erase(it);
    } else {
      store_[obj->Key()] = obj;
    }
  }
  if (type == "DELETED") {
    Notify(nullptr, before ? before : obj);
  } else {
    Notify(obj, before);
  }
}

absl::Status Informer::WatchOnce(bool* gone) {
  std::string path = StrCat(
      ResourcePath(options_.resource, options_.namespace_),
      "?watch=true&allowWatchBookmarks=true&resourceVersion=", QueryEscape(resource_version()),
      "&timeoutSeconds=", options_.watch_timeout_seconds, Query());
  watches_.fetch_add(1);
  bool stop_stream = false;
  auto on_line = [&](std::string_view line) {
    if (stop_stream) return;
    rapidjson::Document ev;
    if (ev.Parse(line.data(), line.size()).HasParseError() || !ev.IsObject()) return;
    std::string type = json::GetString(ev, "type");
    auto object = ev.FindMember("object");
    if (object == ev.MemberEnd()) return;
    if (type == "ERROR") {
      // A metav1.Status: 410 means our resourceVersion is too old.
      if (json::GetInt(object->value, "code") == 410) *gone = true;
      stop_stream = true;
      return;
    }
    auto obj = ParseObject(json::ToText(object->value));
    if (obj.ok()) Apply(type, *obj);
  };
  // The server ends the watch after timeoutSeconds; a stream still open well
  // after that is a connection gone half-open.
  absl::Status s = client_->Watch(
      path, on_line, [&] { return running_.load() && !stop_stream; },
      std::chrono::seconds(options_.watch_timeout_seconds + 30));
  // The server's own end of a watch can race the client's timeout.
  if (absl::IsDeadlineExceeded(s)) s = absl::UnavailableError(s.message());
  if (absl::IsOutOfRange(s)) *gone = true;
  if (stop_stream && !*gone) return absl::UnavailableError("watch ended with an error event");
  if (absl::IsCancelled(s) && stop_stream) return absl::OkStatus();
  return s;
}

void Informer::Run() {
  bool need_list = true;
  std::chrono::milliseconds backoff = options_.min_backoff;
  const std::string what = ResourcePath(options_.resource, options_.namespace_);
  while (running_.load()) {
    if (need_list) {
      absl::Status s = ListAll();
      if (!s.ok()) {
        if (!running_.load()) break;
        OSPREY_LOG(kWarning) << "informer " << what << ": " << s.message() << "; retrying in "
                             << backoff.count() << " ms";
        if (!SleepFor(backoff)) break;
        backoff = std::min(backoff * 2, options_.max_backoff);
        continue;
      }
      need_list = false;
    }
    bool gone = false;
    auto started = std::chrono::steady_clock::now();
    absl::Status s = WatchOnce(&gone);
    if (!running_.load()) break;
    if (gone) {
      OSPREY_LOG(kInfo) << "informer " << what << ": resource version expired; listing again";
      need_list = true;
      continue;
    }
    if (s.ok()) {
      backoff = options_.min_backoff;
      continue;
    }
    // A stream that ran a while before breaking is not a failing server.
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(10))
      backoff = options_.min_backoff;
    OSPREY_LOG(kWarning) << "informer " << what << ": watch: " << s.message() << "; again in "
                         << backoff.count() << " ms";
    if (!SleepFor(backoff)) break;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace osprey::kube
