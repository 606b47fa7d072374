#pragma once

// Where `osprey up` keeps its state and the CLI finds it.

#include <cstdlib>
#include <string>

namespace osprey {

// $OSPREY_HOME, else ~/.osprey.
inline std::string DefaultDataDir() {
  if (const char* home = std::getenv("OSPREY_HOME"); home != nullptr && *home != '\0') return home;
  const char* user_home = std::getenv("HOME");
  return std::string(user_home && *user_home ? user_home : ".") + "/.osprey";
}

}  // namespace osprey
