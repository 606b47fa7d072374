#include "controlplane/local/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "controlplane/local/http_probe.h"

namespace osprey::controlplane {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kPython[] = "/usr/bin/python3";

// A replica: HTTP on argv[1], 200 on /ready only while PORT matches it and
// FAIL_FILE does not exist; writes TERM_MARKER on SIGTERM; tells the log what
// it sees.
constexpr char kServer[] = R"PY(
import http.server, os, signal, sys
port = int(sys.argv[1])
def on_term(*_):
    marker = os.environ.get("TERM_MARKER")
    if marker:
        with open(marker, "w") as f:
            f.write("SIGTERM")
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        fail = os.environ.get("FAIL_FILE")
        ok = (self.path == "/ready" and os.environ.get("PORT") == str(port)
              and not (fail and os.path.exists(fail)))
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
print("stdout port=%d PORT=%s FOO=%s cwd=%s" % (port, os.environ.get("PORT"),
      os.environ.get("FOO"), os.getcwd()), flush=True)
print("stderr line", file=sys.stderr, flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
)PY";

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "supervisor_test.XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Path(std::string_view name) const { return path_ + "/" + std::string(name); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls `done` every 10 ms until it holds or `limit` passes.
template <typename Pred>
bool WaitFor(Pred done, milliseconds limit = milliseconds(10000)) {
  const Clock::time_point deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

std::optional<ReplicaStatus> Find(const Supervisor& supervisor, const std::string& id) {
  for (const ReplicaStatus& s : supervisor.Snapshot()) {
    if (s.id == id) return s;
  }
  return std::nullopt;
}

bool IsReady(const Supervisor& supervisor, const std::string& id, int restarts = 0) {
  std::optional<ReplicaStatus> s = Find(supervisor, id);
  return s && s->state == ReplicaState::kReady && s->restarts >= restarts;
}

// Alive or an unreaped zombie.
bool PidExists(int pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Records on_change calls; declare it before the supervisor it listens to.
class Recorder {
 public:
  std::function<void(const ReplicaStatus&)> Callback() {
    return [this](const ReplicaStatus& s) {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back({s, Clock::now()});
    };
  }
  std::vector<std::pair<ReplicaStatus, Clock::time_point>> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  bool Saw(ReplicaState state) const {
    for (const auto& [s, at] : calls()) {
      if (s.state == state && !s.removed) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<ReplicaStatus, Clock::time_point>> calls_;
};

Supervisor::Options FastOptions() {
  Supervisor::Options o;
  o.probe_interval = milliseconds(20);
  o.ready_probe_interval = milliseconds(50);
  o.startup_timeout = milliseconds(10000);
  o.backoff_initial = milliseconds(50);
  o.backoff_max = milliseconds(1000);
  o.stop_grace = milliseconds(3000);
  return o;
}

ReplicaSpec ServerSpec(const std::string& id, const TempDir& dir) {
  ReplicaSpec spec;
  spec.id = id;
  spec.argv = {kPython, "-c", kServer, "{{.Port}}"};
  spec.health_path = "/ready";
  spec.log_path = dir.Path("logs/" + id + ".log");
  return spec;
}

// Starts the server outside any supervisor, as a previous `osprey up` did:
// fork, own process group, exec.
int SpawnExternalServer(uint16_t port) {
  std::string port_text = std::to_string(port);
  std::vector<char*> argv = {const_cast<char*>(kPython), const_cast<char*>("-c"),
                             const_cast<char*>(kServer), port_text.data(), nullptr};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::setenv("PORT", port_text.c_str(), 1);
    ::execv(kPython, argv.data());
    ::_exit(127);
  }
  return pid;
}

TEST(NextActionTest, Table) {
  Supervisor::Options o;
  o.startup_timeout = milliseconds(120000);
  o.failure_threshold = 3;
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point later = t0 + milliseconds(5);
  using S = ReplicaState;
  using A = ReplicaAction;
  using P = ProbeOutcome;
  struct Case {
    const char* name;
    ReplicaFacts facts;
    A action;
    std::string reason;
  } cases[] = {
      {"starting, nothing yet",
       {S::kStarting, false, "", P::kNotRun, 0, false, later, t0},
       A::kNone,
       ""},
      {"starting, probe fails before the deadline",
       {S::kStarting, false, "", P::kFailed, 0, false, later, t0},
       A::kNone,
       ""},
      {"starting, probe answers",
       {S::kStarting, false, "", P::kOk, 0, false, later, t0},
       A::kMarkReady,
       ""},
      {"starting, deadline passed",
       {S::kStarting, false, "", P::kFailed, 0, false, t0, later},
       A::kRestart,
       "not ready after 120s"},
      {"starting, answers right at the deadline",
       {S::kStarting, false, "", P::kOk, 0, false, t0, later},
       A::kMarkReady,
       ""},
      {"starting, exited",
       {S::kStarting, true, "exited with status 1", P::kNotRun, 0, false, later, t0},
       A::kRestart,
       "exited with status 1"},
      {"ready, probe ok", {S::kReady, false, "", P::kOk, 2, false, t0, later}, A::kNone, ""},
      {"ready, first failure",
       {S::kReady, false, "", P::kFailed, 0, false, t0, later},
       A::kCountFailure,
       ""},
      {"ready, third failure",
       {S::kReady, false, "", P::kFailed, 2, false, t0, later},
       A::kRestart,
       "failed 3 health probes"},
      {"ready, killed",
       {S::kReady, true, "killed by signal 9", P::kNotRun, 0, false, t0, later},
       A::kRestart,
       "killed by signal 9"},
      {"backoff, waiting", {S::kBackoff, false, "", P::kNotRun, 0, false, later, t0}, A::kNone, ""},
      {"backoff, over", {S::kBackoff, false, "", P::kNotRun, 0, false, t0, t0}, A::kSpawn, ""},
      {"stopping, in grace",
       {S::kStopping, false, "", P::kNotRun, 0, false, later, t0},
       A::kNone,
       ""},
      {"stopping, grace over",
       {S::kStopping, false, "", P::kNotRun, 0, false, t0, later},
       A::kForceKill,
       ""},
      {"stopping, already killed",
       {S::kStopping, false, "", P::kNotRun, 0, true, t0, later},
       A::kNone,
       ""},
      {"stopping, exited",
       {S::kStopping, true, "killed by signal 15", P::kNotRun, 0, false, later, t0},
       A::kRemove,
       ""},
      {"stopping ignores probes",
       {S::kStopping, false, "", P::kFailed, 5, false, later, t0},
       A::kNone,
       ""},
  };
  for (const Case& c : cases) {
    ReplicaDecision d = NextAction(c.facts, o);
    EXPECT_EQ(d.action, c.action) << c.name;
    EXPECT_EQ(d.reason, c.reason) << c.name;
  }
  o.startup_timeout = milliseconds(300);
  EXPECT_EQ(NextAction({S::kStarting, false, "", P::kFailed, 0, false, t0, later}, o).reason,
            "not ready after 300ms");
}

TEST(BackoffDelayTest, DoublesUpToTheCap) {
  Supervisor::Options o;
  o.backoff_initial = milliseconds(200);
  o.backoff_max = milliseconds(1000);
  EXPECT_EQ(BackoffDelay(0, o), milliseconds(200));
  EXPECT_EQ(BackoffDelay(1, o), milliseconds(400));
  EXPECT_EQ(BackoffDelay(2, o), milliseconds(800));
  EXPECT_EQ(BackoffDelay(3, o), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(1000, o), milliseconds(1000));
}

TEST(HttpProbeTest, RefusedPortIsUnavailable) {
  absl::StatusOr<uint16_t> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(HttpProbe(*port, "/", milliseconds(500)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(TcpProbe(*port, milliseconds(500)).ok());
}

TEST(SupervisorTest, StartsReadyWithPortEnvWorkdirAndLog) {
  TempDir dir;
  Supervisor supervisor(FastOptions());
  ReplicaSpec spec = ServerSpec("default/iris/0", dir);
  spec.env = {{"FOO", "bar"}};
  spec.workdir = dir.path();
  ASSERT_TRUE(supervisor.Start(spec).ok());
  EXPECT_EQ(supervisor.Start(spec).code(), absl::StatusCode::kAlreadyExists);

  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, spec.id); }));
  ReplicaStatus s = *Find(supervisor, spec.id);
  EXPECT_GT(s.pid, 0);
  EXPECT_GT(s.port, 0);
  EXPECT_EQ(s.grpc_port, 0);  // its command names no {{.GrpcPort}}
  EXPECT_EQ(s.restarts, 0);
  EXPECT_FALSE(s.adopted);
  EXPECT_EQ(::getpgid(s.pid), s.pid);  // its own process group
  absl::StatusOr<int> code = HttpProbe(s.port, "/ready", milliseconds(1000));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 200);  // PORT matched the {{.Port}} argument

  const std::string want = "stdout port=" + std::to_string(s.port) +
                           " PORT=" + std::to_string(s.port) +
                           " FOO=bar cwd=" + std::filesystem::canonical(dir.path()).string();
  ASSERT_TRUE(WaitFor([&] {
    std::string log = ReadFile(spec.log_path);
    return log.find(want) != std::string::npos && log.find("stderr line") != std::string::npos;
  })) << ReadFile(spec.log_path);
  supervisor.Shutdown();
  EXPECT_TRUE(supervisor.Snapshot().empty());
}

// {{.GrpcPort}} in the command or environment: a second port, its own.
TEST(SupervisorTest, ASecondPortForGrpc) {
  TempDir dir;
  Supervisor supervisor(FastOptions());
  ReplicaSpec spec = ServerSpec("default/grpc/0", dir);
  spec.env = {{"FOO", "{{.GrpcPort}}"}};
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, spec.id); }));
  ReplicaStatus s = *Find(supervisor, spec.id);
  EXPECT_GT(s.grpc_port, 0);
  EXPECT_NE(s.grpc_port, s.port);
  ASSERT_TRUE(WaitFor([&] {
    return ReadFile(spec.log_path).find(" FOO=" + std::to_string(s.grpc_port) + " ") !=
           std::string::npos;
  })) << ReadFile(spec.log_path);
  supervisor.Shutdown();
}

TEST(SupervisorTest, StartErrorsKeepNothing) {
  Supervisor supervisor(FastOptions());
  ReplicaSpec spec;
  spec.id = "a";
  EXPECT_EQ(supervisor.Start(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.argv = {};
  EXPECT_EQ(supervisor.Start(spec).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(supervisor.Snapshot().empty());
}

// A replica whose process cannot be spawned is kept as a crash, with why,
// at once (its revision fails with that reason), and tried again.
TEST(SupervisorTest, ASpawnThatFailsIsACrash) {
  TempDir dir;
  Recorder recorder;
  Supervisor::Options o = FastOptions();
  o.backoff_initial = milliseconds(20);
  o.on_change = recorder.Callback();
  Supervisor supervisor(o);
  ReplicaSpec spec;
  spec.id = "nowhere";
  spec.argv = {"/nonexistent/osprey-serve"};
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ReplicaStatus s = *Find(supervisor, "nowhere");
  EXPECT_EQ(s.state, ReplicaState::kBackoff);
  EXPECT_EQ(s.restarts, 1);
  EXPECT_NE(s.last_exit.find("spawn failed"), std::string::npos) << s.last_exit;
  EXPECT_TRUE(WaitFor([&] { return recorder.Saw(ReplicaState::kBackoff); }));
  ASSERT_TRUE(WaitFor([&] { return Find(supervisor, "nowhere")->restarts >= 3; }));
  EXPECT_EQ(Find(supervisor, "nowhere")->state, ReplicaState::kBackoff);

  ReplicaSpec workdir = ServerSpec("file-workdir", dir);
  std::ofstream(dir.Path("a-file")) << "x";
  workdir.workdir = dir.Path("a-file");
  ASSERT_TRUE(supervisor.Start(workdir).ok());
  s = *Find(supervisor, "file-workdir");
  EXPECT_EQ(s.state, ReplicaState::kBackoff);
  EXPECT_NE(s.last_exit.find("Not a directory"), std::string::npos) << s.last_exit;
  supervisor.Shutdown();
}

TEST(SupervisorTest, KilledReplicaRestartsAfterBackoff) {
  TempDir dir;
  Recorder recorder;
  Supervisor::Options o = FastOptions();
  o.on_change = recorder.Callback();
  Supervisor supervisor(o);
  ReplicaSpec spec = ServerSpec("r", dir);
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, "r"); }));
  const int first_pid = Find(supervisor, "r")->pid;

  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, "r", 1); }));
  ReplicaStatus s = *Find(supervisor, "r");
  EXPECT_EQ(s.restarts, 1);
  EXPECT_EQ(s.last_exit, "killed by signal 9");
  EXPECT_NE(s.pid, first_pid);
  EXPECT_TRUE(recorder.Saw(ReplicaState::kBackoff));
  EXPECT_FALSE(PidExists(first_pid));  // reaped
  supervisor.Shutdown();
}

TEST(SupervisorTest, CrashingReplicaBacksOffExponentially) {
  TempDir dir;
  Recorder recorder;
  Supervisor::Options o = FastOptions();
  o.backoff_initial = milliseconds(50);
  o.on_change = recorder.Callback();
  Supervisor supervisor(o);
  ReplicaSpec spec;
  spec.id = "crash";
  spec.argv = {"sh", "-c", "echo crashing; exit 1"};  // found through PATH
  spec.log_path = dir.Path("crash.log");
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(WaitFor([&] { return Find(supervisor, "crash")->restarts >= 3; }));
  ReplicaStatus s = *Find(supervisor, "crash");
  EXPECT_EQ(s.last_exit, "exited with status 1");

  std::vector<Clock::time_point> starts;
  for (const auto& [status, at] : recorder.calls()) {
    if (status.state == ReplicaState::kStarting) starts.push_back(at);
  }
  ASSERT_GE(starts.size(), 4u);
  // Backoffs of 50, 100, 200 ms (plus polling): the third gap is clearly longer.
  auto gap = [&](int i) { return starts[i + 1] - starts[i]; };
  EXPECT_GE(gap(0), milliseconds(50));
  EXPECT_GE(gap(2), milliseconds(200));
  EXPECT_GT(gap(2), gap(0) + milliseconds(80));

  // Each run appended to the same log.
  std::string log = ReadFile(spec.log_path);
  size_t runs = 0;
  for (size_t pos = log.find("crashing"); pos != std::string::npos;
       pos = log.find("crashing", pos + 1)) {
    ++runs;
  }
  EXPECT_GE(runs, 3u);
  supervisor.Shutdown();
}

TEST(SupervisorTest, NeverReadyIsRestartedAfterStartupTimeout) {
  TempDir dir;
  Supervisor::Options o = FastOptions();
  o.startup_timeout = milliseconds(300);
  Supervisor supervisor(o);
  ReplicaSpec spec;
  spec.id = "slow";
  spec.argv = {"sleep", "30"};
  spec.health_path = "/ready";
  ASSERT_TRUE(supervisor.Start(spec).ok());
  const int first_pid = Find(supervisor, "slow")->pid;
  ASSERT_TRUE(WaitFor([&] {
    std::optional<ReplicaStatus> s = Find(supervisor, "slow");
    return s && s->restarts >= 1;
  }));
  EXPECT_EQ(Find(supervisor, "slow")->last_exit, "not ready after 300ms");
  EXPECT_TRUE(WaitFor([&] { return !PidExists(first_pid); }));  // killed and reaped
  supervisor.Shutdown();
}

TEST(SupervisorTest, FailingHealthProbesRestartReadyReplica) {
  TempDir dir;
  Supervisor::Options o = FastOptions();
  o.failure_threshold = 3;
  Supervisor supervisor(o);
  ReplicaSpec spec = ServerSpec("sick", dir);
  const std::string fail_file = dir.Path("fail");
  spec.env = {{"FAIL_FILE", fail_file}};
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, "sick"); }));
  std::ofstream(fail_file) << "x";
  ASSERT_TRUE(WaitFor([&] { return Find(supervisor, "sick")->restarts >= 1; }));
  EXPECT_EQ(Find(supervisor, "sick")->last_exit, "failed 3 health probes");
  std::filesystem::remove(fail_file);
  EXPECT_TRUE(WaitFor([&] { return IsReady(supervisor, "sick", 1); }));
  supervisor.Shutdown();
}

TEST(SupervisorTest, StopSendsSigtermAndForgets) {
  TempDir dir;
  Recorder recorder;
  Supervisor::Options o = FastOptions();
  o.on_change = recorder.Callback();
  Supervisor supervisor(o);
  ReplicaSpec spec = ServerSpec("s", dir);
  const std::string marker = dir.Path("term");
  spec.env = {{"TERM_MARKER", marker}};
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, "s"); }));
  const int pid = Find(supervisor, "s")->pid;

  supervisor.Stop("s");
  ASSERT_TRUE(WaitFor([&] { return supervisor.Snapshot().empty(); }));
  EXPECT_EQ(ReadFile(marker), "SIGTERM");
  EXPECT_FALSE(PidExists(pid));
  ASSERT_TRUE(WaitFor([&] {
    auto calls = recorder.calls();
    return !calls.empty() && calls.back().first.removed;
  }));
  EXPECT_TRUE(recorder.Saw(ReplicaState::kStopping));
  supervisor.Stop("s");  // unknown: nothing
}

TEST(SupervisorTest, StopEscalatesToSigkill) {
  TempDir dir;
  Supervisor::Options o = FastOptions();
  o.stop_grace = milliseconds(300);
  Supervisor supervisor(o);
  ReplicaSpec spec;
  spec.id = "stubborn";
  spec.argv = {kPython, "-c",
               "import signal, time\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('ignoring SIGTERM', flush=True)\n"
               "time.sleep(30)\n"};
  spec.log_path = dir.Path("stubborn.log");
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(
      WaitFor([&] { return ReadFile(spec.log_path).find("ignoring") != std::string::npos; }));
  const Clock::time_point t0 = Clock::now();
  supervisor.Stop("stubborn");
  ASSERT_TRUE(WaitFor([&] { return supervisor.Snapshot().empty(); }, milliseconds(5000)));
  EXPECT_GE(Clock::now() - t0, milliseconds(300));
}

TEST(SupervisorTest, StopInBackoffRemovesAtOnce) {
  Supervisor::Options o = FastOptions();
  o.backoff_initial = milliseconds(60000);
  o.backoff_max = milliseconds(60000);
  Supervisor supervisor(o);
  ReplicaSpec spec;
  spec.id = "b";
  spec.argv = {"false"};
  ASSERT_TRUE(supervisor.Start(spec).ok());
  ASSERT_TRUE(WaitFor([&] { return Find(supervisor, "b")->state == ReplicaState::kBackoff; }));
  EXPECT_EQ(Find(supervisor, "b")->pid, 0);
  supervisor.Stop("b");
  EXPECT_TRUE(supervisor.Snapshot().empty());
}

TEST(SupervisorTest, AdoptsExternalProcessAndRestartsItWhenGone) {
  TempDir dir;
  absl::StatusOr<uint16_t> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  const int pid = SpawnExternalServer(*port);
  ASSERT_GT(pid, 0);

  Supervisor supervisor(FastOptions());
  ReplicaSpec spec = ServerSpec("adopted", dir);
  ASSERT_TRUE(supervisor.Adopt(spec, pid, *port, 0, milliseconds(10000)));
  ReplicaStatus s = *Find(supervisor, "adopted");
  EXPECT_EQ(s.state, ReplicaState::kReady);
  EXPECT_TRUE(s.adopted);
  EXPECT_EQ(s.pid, pid);
  EXPECT_EQ(s.port, *port);
  EXPECT_FALSE(supervisor.Adopt(spec, pid, *port));  // id taken

  // Gone: restarted as our own child on a new port.
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, "adopted", 1); }));
  s = *Find(supervisor, "adopted");
  EXPECT_FALSE(s.adopted);
  EXPECT_NE(s.pid, pid);
  EXPECT_EQ(s.last_exit, "exited (status unknown: adopted process)");
  supervisor.Shutdown();
  EXPECT_TRUE(supervisor.Snapshot().empty());
}

TEST(SupervisorTest, AdoptRefusesDeadOrSilentProcess) {
  Supervisor supervisor(FastOptions());
  ReplicaSpec spec;
  spec.id = "x";
  spec.argv = {"sleep", "30"};
  spec.health_path = "/ready";

  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  EXPECT_FALSE(supervisor.Adopt(spec, dead, 8080));

  absl::StatusOr<uint16_t> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  pid_t silent = ::fork();
  if (silent == 0) {
    ::execlp("sleep", "sleep", "30", nullptr);
    ::_exit(127);
  }
  EXPECT_FALSE(supervisor.Adopt(spec, silent, *port, 0, milliseconds(300)));
  EXPECT_TRUE(supervisor.Snapshot().empty());
  ::kill(silent, SIGKILL);
  ::waitpid(silent, nullptr, 0);
}

TEST(SupervisorTest, DestructorLeavesReplicasForReadoption) {
  TempDir dir;
  ReplicaSpec spec = ServerSpec("keep", dir);
  int pid = 0;
  uint16_t port = 0;
  {
    Supervisor first(FastOptions());
    ASSERT_TRUE(first.Start(spec).ok());
    ASSERT_TRUE(WaitFor([&] { return IsReady(first, "keep"); }));
    pid = Find(first, "keep")->pid;
    port = Find(first, "keep")->port;
  }
  EXPECT_EQ(::kill(pid, 0), 0);
  Supervisor second(FastOptions());
  ASSERT_TRUE(second.Adopt(spec, pid, port));
  second.Shutdown();
  EXPECT_TRUE(second.Snapshot().empty());
  ::waitpid(pid, nullptr, 0);  // still this test process's child
}

TEST(SupervisorTest, ShutdownStopsEverything) {
  TempDir dir;
  Supervisor::Options o = FastOptions();
  o.backoff_initial = milliseconds(60000);
  o.backoff_max = milliseconds(60000);
  Supervisor supervisor(o);
  ASSERT_TRUE(supervisor.Start(ServerSpec("a", dir)).ok());
  ASSERT_TRUE(supervisor.Start(ServerSpec("b", dir)).ok());
  ReplicaSpec crash;
  crash.id = "c";
  crash.argv = {"false"};
  ASSERT_TRUE(supervisor.Start(crash).ok());
  ASSERT_TRUE(WaitFor([&] { return IsReady(supervisor, "a") && IsReady(supervisor, "b"); }));
  std::vector<int> pids = {Find(supervisor, "a")->pid, Find(supervisor, "b")->pid};
  supervisor.Shutdown();
  EXPECT_TRUE(supervisor.Snapshot().empty());
  for (int pid : pids) EXPECT_FALSE(PidExists(pid));
}

}  // namespace
}  // namespace osprey::controlplane
