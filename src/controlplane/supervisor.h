#pragma once

// Replica supervisor: runs replicas (an `osprey serve` or a runtime's command)
// as child processes on free ports, probes them over HTTP before they count as
// ready, restarts one that exits with exponential backoff, and stops retired
// ones gracefully (SIGTERM, then SIGKILL after the grace period).
//
// Replica lifecycle:
//
//   kStarting --probe answers 200--> kReady --process exits--> kBackoff
//       |  \--process exits / startup deadline--> kBackoff --delay--> kStarting
//       |                                   kReady --probe fails N times--> kBackoff
//   Stop(): any state --> kStopping --exited--> (removed)
//
// Re-adoption: after `osprey up` restarts, Adopt() takes over a replica process
// still running from before (not our child: its exit is seen by polling).
//
// Threading: every method is thread-safe. One internal thread reaps children,
// runs probes and restarts; `on_change` is called from it (never with the
// supervisor's lock held), so it may call back into the supervisor.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace osprey::controlplane {

struct ReplicaSpec {
  std::string id;  // unique, e.g. "default/iris-predictor-00001/0"
  // argv[0] is a path or a name looked up in PATH. "{{.Port}}" in any element
  // becomes the assigned port; PORT is also set in the environment.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;  // added to the parent's
  std::string workdir;   // empty: the parent's
  std::string log_path;  // stdout and stderr appended here (created)
  // GET this path on 127.0.0.1:{port}; ready when it answers 200. Empty: ready
  // once the port accepts a connection.
  std::string health_path;
};

enum class ReplicaState { kStarting, kReady, kBackoff, kStopping };
std::string_view ReplicaStateName(ReplicaState s);

struct ReplicaStatus {
  std::string id;
  int pid = 0;        // 0 while in backoff
  uint16_t port = 0;  // 0 while in backoff
  ReplicaState state = ReplicaState::kStarting;
  int restarts = 0;
  std::string last_exit;  // e.g. "exited with status 1", "killed by signal 9", "not ready after 30s"
  std::chrono::system_clock::time_point started;
  bool adopted = false;
};

class Supervisor {
 public:
  struct Options {
    std::chrono::milliseconds probe_interval{50};
    // A starting replica that is not ready by then is killed and restarted.
    std::chrono::milliseconds startup_timeout{120000};
    // A ready replica failing this many probes in a row is restarted.
    int failure_threshold = 3;
    std::chrono::milliseconds ready_probe_interval{1000};
    std::chrono::milliseconds backoff_initial{200};
    std::chrono::milliseconds backoff_max{10000};
    std::chrono::milliseconds stop_grace{10000};
    std::function<void(const ReplicaStatus&)> on_change;  // state changes only
  };

  explicit Supervisor(Options options);
  // Stops the internal thread; replicas are left running (see Shutdown).
  ~Supervisor();

  // Starts a replica; an id already present is an error.
  absl::Status Start(const ReplicaSpec& spec);
  // Takes over a process from a previous run when `pid` is alive and answers
  // the probe on `port` within `deadline`; false (nothing kept) otherwise.
  bool Adopt(const ReplicaSpec& spec, int pid, uint16_t port,
             std::chrono::milliseconds deadline = std::chrono::milliseconds(2000));
  // Graceful stop: SIGTERM, SIGKILL after stop_grace; forgotten once gone.
  void Stop(const std::string& id);
  // Stops every replica and waits until all are gone (at most stop_grace).
  void Shutdown();

  std::vector<ReplicaStatus> Snapshot() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey::controlplane
