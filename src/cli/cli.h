#pragma once

// kubectl-like commands against the control-plane API of `osprey up`:
//   apply -f FILE [--wait] [--timeout S], get KIND [NAME] [-o yaml|json|wide|name],
//   describe KIND NAME, delete KIND NAME | -f FILE, logs NAME [--revision R] [--tail N]
// with -n NAMESPACE / -A, --server URL, --token T, --data-dir D. The API's
// address and token come from the data directory `osprey up` writes them to.

#include <string>
#include <string_view>
#include <vector>

namespace osprey::cli {

// Runs `command` (apply, get, describe, delete, logs); returns the exit code.
int CliMain(std::string_view command, const std::vector<std::string_view>& args,
            const std::string& default_data_dir);

}  // namespace osprey::cli
