#pragma once

// The explicit list of compiled-in backends (no self-registration: static
// initialisers in static libraries are dropped by the linker).

#include <string_view>
#include <vector>

#include "backends/backend.h"

namespace osprey {

const std::vector<const Backend*>& AllBackends();
// The backend of that format name, or nullptr.
const Backend* FindBackend(std::string_view name);

}  // namespace osprey
