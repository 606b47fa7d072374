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
//           (kBackoff is removed at once; kStopping --stop_grace--> SIGKILL)
//
// The transitions are NextAction() below, a pure function; the internal
// thread gathers the facts (exit, probe, clock) and carries the action out.
// A replica killed for failing its probes or its startup deadline gets SIGKILL
// at once (it is wedged; there is nothing to drain). Every replica runs in its
// own process group, and signals go to the group, so helper processes of a
// replica (e.g. Python workers) go with it.
//
// Re-adoption: after `osprey up` restarts, Adopt() takes over a replica process
// still running from before (not our child: its exit is seen by polling).
//
// Threading: every method is thread-safe. One internal thread reaps children,
// runs probes and restarts; `on_change` is called from it (never with the
// supervisor's lock held), so it may call back into the supervisor (except
// Shutdown(), which waits for that thread). Exits are seen by polling, every
// 20 ms at most: waitpid(pid, WNOHANG) on our own children only (never
// waitpid(-1): the host process may own other children), kill(pid, 0) and
// /proc for adopted processes, which cannot be reaped.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace osprey::controlplane {

struct ReplicaSpec {
  std::string id;  // unique, e.g. "default/iris-predictor-00001/0"
  // argv[0] is a path or a name looked up in PATH. "{{.Port}}" in any element
  // (or env value) becomes the assigned port; PORT is also set in the
  // environment. "{{.GrpcPort}}" becomes a second free port (ReplicaStatus::
  // grpc_port), for a program that serves gRPC apart.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;  // added to the parent's
  // Working directory; empty: the parent's.
  std::string workdir;
  // stdout and stderr appended here (file and parent directories created);
  // empty: inherited from the parent. stdin is /dev/null.
  std::string log_path;
  // GET this path on 127.0.0.1:{port}; ready when it answers 2xx or 3xx (as
  // a Kubernetes httpGet probe). Empty: ready once the port accepts a
  // connection.
  std::string health_path;
};

enum class ReplicaState { kStarting, kReady, kBackoff, kStopping };
std::string_view ReplicaStateName(ReplicaState s);

struct ReplicaStatus {
  std::string id;
  int pid = 0;        // 0 while in backoff
  uint16_t port = 0;  // 0 while in backoff
  // The second port a replica's command named as {{.GrpcPort}}; 0 when none.
  uint16_t grpc_port = 0;
  ReplicaState state = ReplicaState::kStarting;
  int restarts = 0;
  // Why the last process went, e.g. "exited with status 1", "killed by signal
  // 9", "not ready after 30s", "failed 3 health probes".
  std::string last_exit;
  std::chrono::system_clock::time_point started;
  bool adopted = false;
  // Only in the last on_change for a replica: it is gone from Snapshot().
  bool removed = false;
};

class Supervisor {
 public:
  struct Options {
    // Probes of a starting replica.
    std::chrono::milliseconds probe_interval{50};
    // One probe, connect to status line.
    std::chrono::milliseconds probe_timeout{1000};
    // A starting replica that is not ready by then is killed and restarted.
    std::chrono::milliseconds startup_timeout{120000};
    // A ready replica failing this many probes in a row is restarted.
    int failure_threshold = 3;
    std::chrono::milliseconds ready_probe_interval{1000};
    std::chrono::milliseconds backoff_initial{200};
    std::chrono::milliseconds backoff_max{10000};
    // A replica that stayed ready this long starts its backoff over.
    std::chrono::milliseconds backoff_reset_after{10000};
    std::chrono::milliseconds stop_grace{10000};
    std::function<void(const ReplicaStatus&)> on_change;  // state changes only
  };

  explicit Supervisor(Options options);
  // Stops the internal thread; replicas are left running (see Shutdown).
  ~Supervisor();

  // Starts a replica (spawned before returning); an id already present or
  // an empty argv is an error and keeps nothing. A spawn that fails (no such
  // program, a working directory that is not one) counts as a crash: the
  // replica is kept in backoff with last_exit "spawn failed: ..." and tried
  // again after it, as is a later respawn that fails.
  absl::Status Start(const ReplicaSpec& spec);
  // Takes over a process from a previous run when `pid` is alive and answers
  // the probe on `port` within `deadline`; false (nothing kept) otherwise.
  // `grpc_port`: the {{.GrpcPort}} it was started with (0: none).
  bool Adopt(const ReplicaSpec& spec, int pid, uint16_t port, uint16_t grpc_port = 0,
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

// The lifecycle decision for one replica, pure so that it is tested with a
// table of cases.
enum class ReplicaAction {
  kNone,
  kMarkReady,     // kStarting: the probe answered -> kReady
  kCountFailure,  // kReady: one more failed probe, still under the threshold
  kRestart,       // -> kBackoff, killing the process if it still runs; `reason` is the last_exit
  kSpawn,         // kBackoff: the delay is over -> kStarting on a new port
  kForceKill,     // kStopping: the grace period is over -> SIGKILL
  kRemove,        // kStopping: the process is gone -> removed
};

enum class ProbeOutcome { kNotRun, kOk, kFailed };

struct ReplicaFacts {
  ReplicaState state = ReplicaState::kStarting;
  bool exited = false;      // the process is gone
  std::string exit_reason;  // when exited, e.g. "killed by signal 9"
  ProbeOutcome probe = ProbeOutcome::kNotRun;
  int failed_probes = 0;      // failed probes in a row before this one
  bool force_killed = false;  // kStopping: SIGKILL already sent
  // kStarting: the startup deadline; kBackoff: end of the delay; kStopping:
  // end of the grace period.
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::time_point now;
};

struct ReplicaDecision {
  ReplicaAction action = ReplicaAction::kNone;
  std::string reason;  // kRestart: the new last_exit
};

ReplicaDecision NextAction(const ReplicaFacts& facts, const Supervisor::Options& options);

// The delay before the next spawn after `crashes` earlier crashes in a row:
// backoff_initial doubled per crash, at most backoff_max.
std::chrono::milliseconds BackoffDelay(int crashes, const Supervisor::Options& options);

}  // namespace osprey::controlplane
