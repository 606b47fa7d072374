#pragma once

// Writing a whole file so that readers see the old text or the new, never
// half: written beside it, then renamed over it.

#include <string>

#include "common/status.h"

namespace osprey {

// `owner_only`: the file is made 0600 before anything is written to it (it
// holds a secret: a token, a private key).
absl::Status WriteFileAtomically(const std::string& path, const std::string& text,
                                 bool owner_only = false);

}  // namespace osprey
