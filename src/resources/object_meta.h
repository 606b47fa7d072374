#pragma once

// The metadata every API object has (the fields Osprey keeps).

#include <map>
#include <string>

namespace osprey::resources {

struct ObjectMeta {
  std::string name;
  std::string namespace_ = "default";  // "" for cluster-scoped objects
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  bool operator==(const ObjectMeta&) const = default;
};

}  // namespace osprey::resources
