#pragma once

// An informer: one resource's objects kept in memory from a list and then a
// watch, as client-go's reflector and store do. The watch resumes from the
// last resourceVersion it saw (bookmarks included); a 410 Gone (the version
// was compacted away) lists again, telling handlers what changed meanwhile;
// a broken stream reconnects after an exponential backoff. Handlers run on the
// informer's thread, outside its lock; they should only enqueue work.

#include <rapidjson/document.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kube/client.h"

namespace osprey::kube {

// An object as an informer keeps it; shared and never changed once made.
// Its DOM lives in a pool sized to it (RapidJSON's default is a 64 KiB
// chunk per document: thousands of cached objects would mostly hold air).
struct Object {
  explicit Object(size_t pool_chunk = 1024) : pool(pool_chunk), doc(&pool) {}
  rapidjson::MemoryPoolAllocator<> pool;
  std::string namespace_;
  std::string name;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  bool deleting = false;  // metadata.deletionTimestamp is set
  rapidjson::Document doc;
  std::string Key() const { return namespace_.empty() ? name : namespace_ + "/" + name; }
};
using ObjectPtr = std::shared_ptr<const Object>;

// Parses one object (metadata read into the fields above), without
// metadata.managedFields: nobody here reads them and they are often the
// larger part of an object.
absl::StatusOr<ObjectPtr> ParseObject(std::string_view json);

struct InformerOptions {
  ResourceRef resource;
  std::string namespace_;  // "" for all namespaces
  std::string label_selector;
  std::string field_selector;
  int watch_timeout_seconds = 300;  // the server ends a watch after this; it resumes
  int page_size = 500;              // list in pages of this many
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{30000};
};

class Informer {
 public:
  // `now` is null for a deletion, `before` null for an addition.
  using Handler = std::function<void(const ObjectPtr& now, const ObjectPtr& before)>;

  Informer(Client* client, InformerOptions options);
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void AddHandler(Handler handler);  // before Start
  void Start();
  // Asks the thread to end (a watch in progress ends within about a second);
  // Stop also waits for it. Stopping several informers: Cancel each, then Stop.
  void Cancel();
  void Stop();
  // True once the first list is in (later relists do not clear it).
  bool synced() const { return synced_.load(); }
  bool WaitForSync(std::chrono::milliseconds timeout);

  ObjectPtr Get(const std::string& key) const;  // "ns/name", or "name" when cluster-scoped
  std::vector<ObjectPtr> List() const;
  size_t size() const;

  // For tests and metrics.
  uint64_t lists() const { return lists_.load(); }
  uint64_t watches() const { return watches_.load(); }
  std::string resource_version() const;

 private:
  void Run();
  absl::Status ListAll();
  absl::Status WatchOnce(bool* gone);
  void Apply(const std::string& type, ObjectPtr obj);
  void Notify(const ObjectPtr& now, const ObjectPtr& before);
  bool SleepFor(std::chrono::milliseconds d);  // false when stopped
  std::string Query() const;

  Client* client_;
  InformerOptions options_;
  std::vector<Handler> handlers_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  std::map<std::string, ObjectPtr> store_;
  std::string rv_;
  std::atomic<bool> running_{false};
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> lists_{0};
  std::atomic<uint64_t> watches_{0};
  std::thread thread_;
};

}  // namespace osprey::kube
