#pragma once

// What a Kubernetes API server keeps of an object and Osprey's controller
// does not: its uid, finalizers, deletionTimestamp and managedFields, by kind,
// namespace and name, in the store (apimeta/{plural}/{ns}/{name}). Each
// record belongs to the object's creationTimestamp: an object deleted and
// made again by other means gets a new uid and none of the old one's
// fields. The API (api.cc) writes records; the objects it serves carry them
// in their metadata (Decorate). Thread-safe.

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "controlplane/local/field_manager.h"
#include "controlplane/local/store.h"

namespace osprey::controlplane {

class ApiMetadata {
 public:
  struct Record {
    std::string created;  // the object's creationTimestamp; "": the next one seen
    std::string uid;
    std::vector<std::string> finalizers;
    std::string deletion_timestamp;  // set: deleted, waiting for its finalizers
    fields::Managed managed;
  };

  // Reads the records `store` holds.
  explicit ApiMetadata(Store* store);

  // `objects` (JSON as the controller renders them, of kind `plural`, with
  // metadata first) with their records in their metadata: uid, and
  // finalizers, deletionTimestamp and managedFields when set. An object
  // seen for the first time gets its record (a new uid); the records of
  // objects of the kind no longer listed go.
  void Decorate(std::string_view plural, std::vector<std::string>* objects);

  // The record of an object created at `created` (a new one, with a new
  // uid, when there is none for that creation).
  Record Get(std::string_view plural, std::string_view ns, std::string_view name,
             std::string_view created);
  // The uid of an object as last seen, "" when never seen.
  std::string Uid(std::string_view plural, std::string_view ns, std::string_view name);
  absl::Status Put(std::string_view plural, std::string_view ns, std::string_view name,
                   const Record& record);
  absl::Status Erase(std::string_view plural, std::string_view ns, std::string_view name);

  // A random (version 4) UUID.
  static std::string NewUid();

 private:
  static std::string Key(std::string_view plural, std::string_view ns, std::string_view name);
  Record& GetLocked(const std::string& key, std::string_view created, bool* made);
  absl::Status SaveLocked(const std::string& key, const Record& record);

  Store* store_;
  std::mutex mu_;
  std::map<std::string, Record> records_;  // by Key
  // Per kind: an object's JSON as the controller rendered it -> its record's
  // key and the JSON decorated.
  struct Decorated {
    std::string key, json;
  };
  std::map<std::string, std::unordered_map<std::string, Decorated>, std::less<>> decorated_;
};

}  // namespace osprey::controlplane
