#pragma once

// One Python worker process and the framed pipe protocol to it (see
// python/osprey_worker.py): u32 JSON length, u64 payload length, JSON, payload.
// Not thread-safe: one caller at a time (the worker pool hands it out).

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace osprey {

class WorkerProcess {
 public:
  // Starts `argv` with stdin/stdout as pipes; stderr is inherited.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Spawn(const std::vector<std::string>& argv);
  ~WorkerProcess();  // closes the pipes, kills the process if still running, reaps it

  struct Frame {
    std::string json;
    std::string payload;
  };
  // Unavailable when the process is gone (the message says how it ended).
  absl::Status Write(std::string_view json, std::string_view payload);
  absl::StatusOr<Frame> Read();

  pid_t pid() const { return pid_; }
  // How the process ended, for messages ("exited with status 1", "killed by
  // signal 9"); reaps it if it has ended.
  std::string ExitDescription();

 private:
  WorkerProcess() = default;
  absl::Status Gone(std::string_view what);

  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
};

}  // namespace osprey
