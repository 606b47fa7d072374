#include "controlplane/local/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/logging.h"
#include "controlplane/local/http_probe.h"

extern char** environ;

namespace osprey::controlplane {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Exits are polled at least this often while any process runs.
constexpr milliseconds kReapPoll{20};
// Shutdown() waits this long past stop_grace for the SIGKILLed to go.
constexpr milliseconds kShutdownSlack{2000};

std::string FormatDuration(milliseconds d) {
  if (d.count() % 1000 == 0) return StrCat(d.count() / 1000, "s");
  return StrCat(d.count(), "ms");
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return StrCat("killed by signal ", WTERMSIG(status));
  return StrCat("ended with wait status ", status);
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

// True while `pid` runs: it exists and is not a zombie. For processes we
// cannot reap (adopted ones); a zombie has exited, whoever reaps it.
bool ProcessAlive(int pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  std::ifstream stat(StrCat("/proc/", pid, "/stat"));
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  // "pid (comm) S ...": comm may hold spaces and parentheses; the state
  // follows the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return true;
  char state = line[close + 2];
  return state != 'Z' && state != 'X';
}

// Signals the process group when `pid` leads one (every replica we spawn
// does), else the process alone.
void SignalReplica(int pid, int sig) {
  if (pid <= 0) return;
  if (::getpgid(pid) == pid) {
    ::kill(-pid, sig);
  } else {
    ::kill(pid, sig);
  }
}

struct Spawned {
  int pid = 0;
  uint16_t port = 0;
  uint16_t grpc_port = 0;
};

bool UsesGrpcPort(const ReplicaSpec& spec) {
  auto uses = [](const std::string& s) { return s.find("{{.GrpcPort}}") != std::string::npos; };
  return std::any_of(spec.argv.begin(), spec.argv.end(), uses) ||
         std::any_of(spec.env.begin(), spec.env.end(),
                     [&](const auto& e) { return uses(e.second); });
}

// posix_spawn in its own process group, with the port substituted, the
// environment extended, stdin from /dev/null, stdout and stderr to the log,
// default signal dispositions and no inherited descriptor beyond 0-2.
absl::StatusOr<Spawned> SpawnReplica(const ReplicaSpec& spec) {
  OSPREY_ASSIGN_OR_RETURN(uint16_t port, PickFreePort());
  const std::string port_text = StrCat(port);
  uint16_t grpc_port = 0;
  if (UsesGrpcPort(spec)) {
    // Two picks in a row may name one port (each is free once closed): pick again.
    for (int tries = 0; tries < 8 && (grpc_port == 0 || grpc_port == port); ++tries) {
      OSPREY_ASSIGN_OR_RETURN(grpc_port, PickFreePort());
    }
    if (grpc_port == port) return absl::UnavailableError("no second free port for gRPC");
  }
  const std::string grpc_text = StrCat(grpc_port);
  auto fill = [&](const std::string& s) {
    return ReplaceAll(ReplaceAll(s, "{{.Port}}", port_text), "{{.GrpcPort}}", grpc_text);
  };

  std::vector<std::string> args;
  args.reserve(spec.argv.size());
  for (const std::string& arg : spec.argv) args.push_back(fill(arg));

  // The parent's environment, then spec.env, then PORT; a later key wins.
  std::vector<std::pair<std::string, std::string>> added;
  for (const auto& [name, value] : spec.env) added.emplace_back(name, fill(value));
  added.emplace_back("PORT", port_text);
  std::vector<std::string> env;
  auto overridden = [&](std::string_view entry, size_t from) {
    std::string_view key = entry.substr(0, entry.find('='));
    for (size_t i = from; i < added.size(); ++i) {
      if (added[i].first == key) return true;
    }
    return false;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e, 0)) env.emplace_back(*e);
  }
  for (size_t i = 0; i < added.size(); ++i) {
    if (!overridden(added[i].first, i + 1)) {
      env.push_back(StrCat(added[i].first, "=", added[i].second));
    }
  }

  int log_fd = -1;
  if (!spec.log_path.empty()) {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(spec.log_path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::InternalError(
          StrCat("replica ", spec.id, ": open log ", spec.log_path, ": ", std::strerror(errno)));
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (log_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  }
  if (!spec.workdir.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.workdir.c_str());
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t signals;
  sigemptyset(&signals);
  posix_spawnattr_setsigmask(&attr, &signals);
  sigfillset(&signals);
  posix_spawnattr_setsigdefault(&attr, &signals);

  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);

  pid_t pid = 0;
  const bool has_slash = args[0].find('/') != std::string::npos;
  int rc = has_slash ? ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data())
                     : ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (log_fd >= 0) ::close(log_fd);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        StrCat("replica ", spec.id, ": spawn ", args[0], ": ", std::strerror(rc)));
  }
  return Spawned{pid, port, grpc_port};
}

// One readiness check of a replica: GET health_path answering 2xx or 3xx (a
// Kubernetes httpGet probe's success), or, without a path, a TCP connect.
bool ProbeOnce(uint16_t port, const std::string& health_path, std::chrono::milliseconds timeout) {
  if (health_path.empty()) return TcpProbe(port, timeout).ok();
  absl::StatusOr<int> code = HttpProbe(port, health_path, timeout);
  return code.ok() && *code >= 200 && *code < 400;
}

}  // namespace

std::string_view ReplicaStateName(ReplicaState s) {
  switch (s) {
    case ReplicaState::kStarting:
      return "Starting";
    case ReplicaState::kReady:
      return "Ready";
    case ReplicaState::kBackoff:
      return "Backoff";
    case ReplicaState::kStopping:
      return "Stopping";
  }
  return "Unknown";
}

ReplicaDecision NextAction(const ReplicaFacts& facts, const Supervisor::Options& options) {
  switch (facts.state) {
    case ReplicaState::kStopping:
      if (facts.exited) return {ReplicaAction::kRemove, ""};
      if (!facts.force_killed && facts.now >= facts.deadline) {
        return {ReplicaAction::kForceKill, ""};
      }
      return {};
    case ReplicaState::kBackoff:
      if (facts.now >= facts.deadline) return {ReplicaAction::kSpawn, ""};
      return {};
    case ReplicaState::kStarting:
      if (facts.exited) return {ReplicaAction::kRestart, facts.exit_reason};
      if (facts.probe == ProbeOutcome::kOk) return {ReplicaAction::kMarkReady, ""};
      if (facts.now >= facts.deadline) {
        return {ReplicaAction::kRestart,
                StrCat("not ready after ", FormatDuration(options.startup_timeout))};
      }
      return {};
    case ReplicaState::kReady: {
      if (facts.exited) return {ReplicaAction::kRestart, facts.exit_reason};
      if (facts.probe != ProbeOutcome::kFailed) return {};
      const int threshold = std::max(1, options.failure_threshold);
      if (facts.failed_probes + 1 >= threshold) {
        return {ReplicaAction::kRestart, StrCat("failed ", threshold, " health probes")};
      }
      return {ReplicaAction::kCountFailure, ""};
    }
  }
  return {};
}

milliseconds BackoffDelay(int crashes, const Supervisor::Options& options) {
  milliseconds delay = options.backoff_initial;
  for (int i = 0; i < crashes && delay < options.backoff_max; ++i) delay *= 2;
  return std::min(delay, options.backoff_max);
}

struct Supervisor::Impl {
  struct Replica {
    ReplicaSpec spec;
    ReplicaStatus status;
    // Bumped on every spawn or adoption: a probe result belongs to the
    // process it was made on.
    uint64_t instance = 0;
    Clock::time_point deadline;    // see ReplicaFacts::deadline
    Clock::time_point next_probe;  // kStarting, kReady
    Clock::time_point ready_since;
    int failed_probes = 0;
    int crashes = 0;  // in a row, for the backoff
    bool force_killed = false;
    bool gone = false;  // the process exited (and was reaped when ours)
  };

  // A probe to run without the lock.
  struct Probe {
    std::string id;
    uint64_t instance = 0;
    uint16_t port = 0;
    std::string health_path;
    ProbeOutcome outcome = ProbeOutcome::kNotRun;
  };

  explicit Impl(Options o) : options(std::move(o)) {}

  void Run();
  // Under the lock: exits, deadlines and backoffs of every replica.
  void ObserveAll(Clock::time_point now);
  // Under the lock: carries out `decision` for `r`. False when `r` is erased.
  bool Execute(Replica& r, const ReplicaDecision& decision, Clock::time_point now);
  std::optional<std::string> CheckExit(Replica& r);
  void BeginStop(Replica& r, Clock::time_point now);
  void Notify(const ReplicaStatus& status, bool removed = false);
  Clock::time_point NextWake(Clock::time_point now) const;
  void ReapKilled();
  uint64_t NextInstance() { return ++last_instance; }

  const Options options;
  mutable std::mutex mu;
  std::condition_variable wake;     // the thread: new work, or time to quit
  std::condition_variable changed;  // Shutdown(): a tick went by
  std::map<std::string, Replica> replicas;
  std::vector<int> killed_children;   // SIGKILLed on restart, not reaped yet
  std::deque<ReplicaStatus> pending;  // on_change calls, in order
  bool delivering = false;            // the thread is calling on_change
  uint64_t last_instance = 0;
  bool quit = false;
  std::thread thread;
};

void Supervisor::Impl::Notify(const ReplicaStatus& status, bool removed) {
  if (!options.on_change) return;
  pending.push_back(status);
  pending.back().removed = removed;
}

std::optional<std::string> Supervisor::Impl::CheckExit(Replica& r) {
  const int pid = r.status.pid;
  if (pid <= 0) return std::nullopt;
  if (r.status.adopted) {
    if (ProcessAlive(pid)) return std::nullopt;
    return std::string("exited (status unknown: adopted process)");
  }
  int status = 0;
  pid_t got = ::waitpid(pid, &status, WNOHANG);
  if (got == 0 || (got < 0 && errno == EINTR)) return std::nullopt;
  if (got != pid) return std::string("exited (status unknown: reaped elsewhere)");
  // The leader is gone: whatever it left in its group goes too. The group id
  // cannot be reused while a member lives, so this hits only its leftovers.
  ::kill(-pid, SIGKILL);
  return DescribeWaitStatus(status);
}

void Supervisor::Impl::ReapKilled() {
  std::erase_if(killed_children, [](int pid) {
    pid_t got = ::waitpid(pid, nullptr, WNOHANG);
    return got == pid || (got < 0 && errno == ECHILD);
  });
}

bool Supervisor::Impl::Execute(Replica& r, const ReplicaDecision& decision, Clock::time_point now) {
  ReplicaStatus& s = r.status;
  switch (decision.action) {
    case ReplicaAction::kNone:
      return true;
    case ReplicaAction::kMarkReady:
      s.state = ReplicaState::kReady;
      r.ready_since = now;
      r.failed_probes = 0;
      r.next_probe = now + options.ready_probe_interval;
      OSPREY_LOG(kInfo) << "replica " << s.id << " ready on port " << s.port << " (pid " << s.pid
                        << ")";
      Notify(s);
      return true;
    case ReplicaAction::kCountFailure:
      ++r.failed_probes;
      return true;
    case ReplicaAction::kRestart: {
      if (s.pid > 0 && !r.gone) {
        // Still running (a probe or deadline decided): wedged, no grace.
        SignalReplica(s.pid, SIGKILL);
        if (!s.adopted) killed_children.push_back(s.pid);
      }
      if (s.state == ReplicaState::kReady && now - r.ready_since >= options.backoff_reset_after) {
        r.crashes = 0;
      }
      milliseconds delay = BackoffDelay(r.crashes, options);
      ++r.crashes;
      OSPREY_LOG(kWarning) << "replica " << s.id << " (pid " << s.pid << "): " << decision.reason
                           << "; restarting in " << FormatDuration(delay);
      s.state = ReplicaState::kBackoff;
      s.last_exit = decision.reason;
      s.pid = 0;
      s.port = 0;
      s.grpc_port = 0;
      r.deadline = now + delay;
      Notify(s);
      return true;
    }
    case ReplicaAction::kSpawn: {
      absl::StatusOr<Spawned> spawned = SpawnReplica(r.spec);
      ++s.restarts;
      if (!spawned.ok()) {
        milliseconds delay = BackoffDelay(r.crashes, options);
        ++r.crashes;
        s.last_exit = StrCat("spawn failed: ", StatusMessage(spawned.status()));
        OSPREY_LOG(kWarning) << s.last_exit << "; retrying in " << FormatDuration(delay);
        // A replica that cannot start is a crash to its observers, at once.
        s.state = ReplicaState::kBackoff;
        r.deadline = now + delay;
        Notify(s);
        return true;
      }
      s.state = ReplicaState::kStarting;
      s.pid = spawned->pid;
      s.port = spawned->port;
      s.grpc_port = spawned->grpc_port;
      s.adopted = false;
      s.started = std::chrono::system_clock::now();
      r.instance = NextInstance();
      r.gone = false;
      r.deadline = now + options.startup_timeout;
      r.next_probe = now + options.probe_interval;
      r.failed_probes = 0;
      OSPREY_LOG(kInfo) << "replica " << s.id << " restarted (pid " << s.pid << ", port " << s.port
                        << ", restart " << s.restarts << ")";
      Notify(s);
      return true;
    }
    case ReplicaAction::kForceKill:
      OSPREY_LOG(kWarning) << "replica " << s.id << " (pid " << s.pid << ") still running after "
                           << FormatDuration(options.stop_grace) << "; SIGKILL";
      SignalReplica(s.pid, SIGKILL);
      r.force_killed = true;
      return true;
    case ReplicaAction::kRemove:
      OSPREY_LOG(kInfo) << "replica " << s.id << " stopped";
      Notify(s, /*removed=*/true);
      replicas.erase(s.id);
      return false;
  }
  return true;
}

void Supervisor::Impl::ObserveAll(Clock::time_point now) {
  for (auto it = replicas.begin(); it != replicas.end();) {
    Replica& r = (it++)->second;  // Execute may erase r
    ReplicaFacts facts;
    facts.state = r.status.state;
    if (std::optional<std::string> exit = CheckExit(r)) {
      r.gone = true;
      facts.exited = true;
      facts.exit_reason = *std::move(exit);
    }
    facts.failed_probes = r.failed_probes;
    facts.force_killed = r.force_killed;
    facts.deadline = r.deadline;
    facts.now = now;
    Execute(r, NextAction(facts, options), now);
  }
}

void Supervisor::Impl::BeginStop(Replica& r, Clock::time_point now) {
  OSPREY_LOG(kInfo) << "stopping replica " << r.status.id << " (pid " << r.status.pid << ")";
  SignalReplica(r.status.pid, SIGTERM);
  r.status.state = ReplicaState::kStopping;
  r.deadline = now + options.stop_grace;
  r.force_killed = false;
  Notify(r.status);
}

Clock::time_point Supervisor::Impl::NextWake(Clock::time_point now) const {
  Clock::time_point wake_at = Clock::time_point::max();
  for (const auto& [id, r] : replicas) {
    switch (r.status.state) {
      case ReplicaState::kStarting:
        wake_at = std::min({wake_at, r.next_probe, r.deadline});
        break;
      case ReplicaState::kReady:
        wake_at = std::min(wake_at, r.next_probe);
        break;
      case ReplicaState::kBackoff:
      case ReplicaState::kStopping:
        wake_at = std::min(wake_at, r.deadline);
        break;
    }
    if (r.status.pid > 0) wake_at = std::min(wake_at, now + kReapPoll);
  }
  if (!killed_children.empty()) wake_at = std::min(wake_at, now + kReapPoll);
  return wake_at;
}

void Supervisor::Impl::Run() {
  std::unique_lock<std::mutex> lock(mu);
  while (!quit) {
    Clock::time_point now = Clock::now();
    ReapKilled();
    ObserveAll(now);

    std::vector<Probe> probes;
    for (auto& [id, r] : replicas) {
      const bool probing =
          r.status.state == ReplicaState::kStarting || r.status.state == ReplicaState::kReady;
      if (probing && r.status.pid > 0 && now >= r.next_probe) {
        probes.push_back({id, r.instance, r.status.port, r.spec.health_path});
      }
    }
    if (!probes.empty()) {
      lock.unlock();
      for (Probe& p : probes) {
        p.outcome = ProbeOnce(p.port, p.health_path, options.probe_timeout) ? ProbeOutcome::kOk
                                                                            : ProbeOutcome::kFailed;
      }
      lock.lock();
      now = Clock::now();
      for (const Probe& p : probes) {
        auto it = replicas.find(p.id);
        if (it == replicas.end() || it->second.instance != p.instance) continue;
        Replica& r = it->second;
        if (r.status.state != ReplicaState::kStarting && r.status.state != ReplicaState::kReady) {
          continue;  // stopped meanwhile
        }
        r.next_probe = now + (r.status.state == ReplicaState::kReady ? options.ready_probe_interval
                                                                     : options.probe_interval);
        if (p.outcome == ProbeOutcome::kOk) r.failed_probes = 0;
        ReplicaFacts facts;
        facts.state = r.status.state;
        facts.probe = p.outcome;
        facts.failed_probes = r.failed_probes;
        facts.deadline = r.deadline;
        facts.now = now;
        Execute(r, NextAction(facts, options), now);
      }
    }

    if (!pending.empty()) {
      std::deque<ReplicaStatus> calls;
      calls.swap(pending);
      delivering = true;
      lock.unlock();
      for (const ReplicaStatus& status : calls) options.on_change(status);
      lock.lock();
      delivering = false;
    }
    changed.notify_all();
    if (quit) break;
    if (!pending.empty()) continue;  // queued meanwhile by a caller
    Clock::time_point wake_at = NextWake(Clock::now());
    if (wake_at == Clock::time_point::max()) {
      wake.wait(lock);
    } else {
      wake.wait_until(lock, wake_at);
    }
  }
}

Supervisor::Supervisor(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
}

Supervisor::~Supervisor() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->quit = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->ReapKilled();
}

absl::Status Supervisor::Start(const ReplicaSpec& spec) {
  if (spec.id.empty()) return absl::InvalidArgumentError("replica id is empty");
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError(StrCat("replica ", spec.id, ": empty command"));
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->replicas.count(spec.id) != 0) {
      return absl::AlreadyExistsError(StrCat("replica ", spec.id, " already exists"));
    }
    absl::StatusOr<Spawned> spawned = SpawnReplica(spec);
    const Clock::time_point now = Clock::now();
    Impl::Replica& r = impl_->replicas[spec.id];
    r.spec = spec;
    r.status.id = spec.id;
    if (!spawned.ok()) {
      // Kept, as a crash: its observers see why at once, and it is tried
      // again after the backoff (a missing program may yet be installed).
      const std::chrono::milliseconds delay = BackoffDelay(r.crashes, impl_->options);
      ++r.crashes;
      r.status.state = ReplicaState::kBackoff;
      r.status.restarts = 1;
      r.status.last_exit = StrCat("spawn failed: ", StatusMessage(spawned.status()));
      r.deadline = now + delay;
      OSPREY_LOG(kWarning) << r.status.last_exit << "; retrying in " << FormatDuration(delay);
      impl_->Notify(r.status);
    } else {
      r.status.pid = spawned->pid;
      r.status.port = spawned->port;
      r.status.grpc_port = spawned->grpc_port;
      r.status.state = ReplicaState::kStarting;
      r.status.started = std::chrono::system_clock::now();
      r.instance = impl_->NextInstance();
      r.deadline = now + impl_->options.startup_timeout;
      r.next_probe = now + impl_->options.probe_interval;
      OSPREY_LOG(kInfo) << "replica " << spec.id << " started (pid " << spawned->pid << ", port "
                        << spawned->port << ")";
      impl_->Notify(r.status);
    }
  }
  impl_->wake.notify_all();
  return absl::OkStatus();
}

bool Supervisor::Adopt(const ReplicaSpec& spec, int pid, uint16_t port, uint16_t grpc_port,
                       std::chrono::milliseconds deadline) {
  if (spec.id.empty() || pid <= 0 || port == 0 || !ProcessAlive(pid)) return false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->replicas.count(spec.id) != 0) return false;
  }
  const Options& options = impl_->options;
  const Clock::time_point give_up = Clock::now() + deadline;
  bool ready = false;
  while (true) {
    if (!ProcessAlive(pid)) return false;
    milliseconds left = std::chrono::duration_cast<milliseconds>(give_up - Clock::now());
    if (left.count() <= 0) break;
    milliseconds timeout = std::min(options.probe_timeout, left);
    ready = ProbeOnce(port, spec.health_path, timeout);
    if (ready) break;
    // Polling an external process: there is nothing to wait on.
    std::this_thread::sleep_for(std::min(options.probe_interval, left));
  }
  if (!ready) {
    OSPREY_LOG(kInfo) << "replica " << spec.id << ": pid " << pid << " not ready on port " << port
                      << " within " << FormatDuration(deadline) << "; not adopted";
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->replicas.count(spec.id) != 0) return false;
    const Clock::time_point now = Clock::now();
    Impl::Replica& r = impl_->replicas[spec.id];
    r.spec = spec;
    r.status.id = spec.id;
    r.status.pid = pid;
    r.status.port = port;
    r.status.grpc_port = grpc_port;
    r.status.state = ReplicaState::kReady;
    r.status.started = std::chrono::system_clock::now();
    r.status.adopted = true;
    r.instance = impl_->NextInstance();
    r.ready_since = now;
    r.next_probe = now + options.ready_probe_interval;
    OSPREY_LOG(kInfo) << "replica " << spec.id << " adopted (pid " << pid << ", port " << port
                      << ")";
    impl_->Notify(r.status);
  }
  impl_->wake.notify_all();
  return true;
}

void Supervisor::Stop(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->replicas.find(id);
    if (it == impl_->replicas.end()) return;
    Impl::Replica& r = it->second;
    if (r.status.state == ReplicaState::kStopping) return;
    if (r.status.state == ReplicaState::kBackoff) {
      impl_->Notify(r.status, /*removed=*/true);
      impl_->replicas.erase(it);
    } else {
      impl_->BeginStop(r, Clock::now());
    }
  }
  impl_->wake.notify_all();
}

void Supervisor::Shutdown() {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& [id, r] : impl_->replicas) ids.push_back(id);
  }
  for (const std::string& id : ids) Stop(id);
  std::unique_lock<std::mutex> lock(impl_->mu);
  const Clock::time_point give_up = Clock::now() + impl_->options.stop_grace + kShutdownSlack;
  // Gone, and the last on_change calls made.
  impl_->changed.wait_until(lock, give_up, [&] {
    return impl_->replicas.empty() && impl_->pending.empty() && !impl_->delivering;
  });
  if (!impl_->replicas.empty()) {
    OSPREY_LOG(kWarning) << impl_->replicas.size() << " replica(s) still running after shutdown";
  }
}

std::vector<ReplicaStatus> Supervisor::Snapshot() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<ReplicaStatus> out;
  out.reserve(impl_->replicas.size());
  for (const auto& [id, r] : impl_->replicas) out.push_back(r.status);
  return out;
}

}  // namespace osprey::controlplane
