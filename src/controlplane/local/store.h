#pragma once

// The control plane's durable state: a key -> JSON document map in SQLite
// (WAL mode) under the data directory. Keys are paths:
//   isvc/{ns}/{name}          applied InferenceService + its status
//   runtime/{ns}/{name}       ServingRuntime ({ns} empty: ClusterServingRuntime)
//   revision/{ns}/{name}      a revision and its status
//   replica/{ns}/{rev}/{i}    a running replica's pid and port (re-adoption)
//   event/{ns}/{name}/{seq}   events shown by `describe`
// Every write is one transaction: a crash loses nothing that Put returned for.
// Thread-safe (one connection behind a mutex).

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace osprey::controlplane {

class Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();

  absl::Status Put(const std::string& key, const std::string& value);
  absl::StatusOr<std::string> Get(const std::string& key);  // kNotFound when absent
  absl::Status Delete(const std::string& key);
  // Every key starting with `prefix`, with its value, in key order.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix);
  absl::Status DeletePrefix(const std::string& prefix);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace osprey::controlplane
