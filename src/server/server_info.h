#pragma once

// What the server says about itself, the same on every frontend.

#include <string>
#include <vector>

namespace osprey {

struct ServerInfo {
  std::string name = "osprey";
  std::string version = OSPREY_VERSION;
  std::vector<std::string> extensions = {"binary_tensor_data", "model_repository", "v1", "metrics"};
};

}  // namespace osprey
