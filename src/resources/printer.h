#pragma once

// What `kubectl get` prints for each kind: the printer columns KServe's,
// Knative's and Istio's CRDs declare (kubectl's own for Deployments), one
// definition for the CLI's tables and the API's meta.k8s.io Table answers.
// Cells are text as the API server renders them (a date column is an age:
// "5m").

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey::resources {

struct PrinterColumn {
  std::string name;    // "NAME", "READY", ...
  std::string type;    // OpenAPI type: string, integer, date
  std::string format;  // "name" for the object's name column, else empty
  int priority = 0;    // 0: always shown; 1: -o wide only
};

struct PrinterRow {
  std::vector<std::string> cells;  // one per column
  std::string metadata_json;       // the item's metadata object, as JSON
  std::string object_json;         // the whole item, as JSON
  std::string namespace_;
};

struct PrinterTable {
  std::vector<PrinterColumn> columns;
  std::vector<PrinterRow> rows;
  std::string resource_version;  // a list's metadata.resourceVersion
  std::string continue_token;    // a list's metadata.continue
};

// The table of `plural`'s objects in `json`: a list ({"items": [...]}) or
// one object. InvalidArgument when `json` is not one of those.
absl::StatusOr<PrinterTable> PrintColumns(std::string_view plural, std::string_view json,
                                          std::chrono::system_clock::time_point now);

// kubectl's age: 45s, 3m12s, 25m, 2h15m, 30h, 5d.
std::string HumanAge(std::chrono::seconds age);

// Seconds since an RFC 3339 UTC time ("2026-01-02T03:04:05Z"); 0 if unreadable.
std::chrono::seconds AgeSince(const std::string& rfc3339,
                              std::chrono::system_clock::time_point now);

}  // namespace osprey::resources
