#include "backends/python/worker_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/strings.h"

extern char** environ;

namespace osprey {
namespace {

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* data, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, data, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Spawn(
    const std::vector<std::string>& argv) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return absl::InternalError(StrCat("pipe: ", strerror(errno)));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return absl::InternalError(StrCat("pipe: ", strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The server blocks SIGTERM/SIGINT in every thread and ignores SIGPIPE; the
  // worker starts with the defaults instead.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    return absl::FailedPreconditionError(StrCat("cannot start ", argv[0], ": ", strerror(rc)));
  }
  std::unique_ptr<WorkerProcess> w(new WorkerProcess());
  w->pid_ = pid;
  w->to_child_ = in[1];
  w->from_child_ = out[0];
  return w;
}

WorkerProcess::~WorkerProcess() {
  if (to_child_ >= 0) close(to_child_);
  if (from_child_ >= 0) close(from_child_);
  if (pid_ > 0 && !reaped_) {
    // Closing stdin asks it to stop; one that does not is killed.
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, &wait_status_, WNOHANG) == pid_) return;
      usleep(2000);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &wait_status_, 0);
  }
}

std::string WorkerProcess::ExitDescription() {
  if (!reaped_ && pid_ > 0) {
    // The pipe broke, so the process is ending; give it a moment to finish.
    for (int i = 0; i < 100 && !reaped_; ++i) {
      if (waitpid(pid_, &wait_status_, WNOHANG) == pid_)
        reaped_ = true;
      else
        usleep(1000);
    }
  }
  if (!reaped_) return "stopped answering";
  if (WIFSIGNALED(wait_status_)) return StrCat("was killed by signal ", WTERMSIG(wait_status_));
  return StrCat("exited with status ", WEXITSTATUS(wait_status_));
}

absl::Status WorkerProcess::Gone(std::string_view what) {
  return absl::UnavailableError(
      StrCat("Python worker (pid ", pid_, ") ", ExitDescription(), " ", what));
}

absl::Status WorkerProcess::Write(std::string_view json, std::string_view payload) {
  char head[12];
  uint32_t jl = static_cast<uint32_t>(json.size());
  uint64_t pl = payload.size();
  std::memcpy(head, &jl, 4);
  std::memcpy(head + 4, &pl, 8);
  if (!WriteAll(to_child_, head, sizeof(head)) || !WriteAll(to_child_, json.data(), json.size()) ||
      !WriteAll(to_child_, payload.data(), payload.size()))
    return Gone("while receiving a request");
  return absl::OkStatus();
}

absl::StatusOr<WorkerProcess::Frame> WorkerProcess::Read() {
  char head[12];
  if (!ReadAll(from_child_, head, sizeof(head))) return Gone("while running a request");
  uint32_t jl;
  uint64_t pl;
  std::memcpy(&jl, head, 4);
  std::memcpy(&pl, head + 4, 8);
  if (jl > (64u << 20) || pl > (uint64_t{8} << 30))
    return absl::InternalError("Python worker sent a malformed frame");
  Frame f;
  f.json.resize(jl);
  f.payload.resize(pl);
  if (!ReadAll(from_child_, f.json.data(), jl) || !ReadAll(from_child_, f.payload.data(), pl))
    return Gone("while answering");
  return f;
}

}  // namespace osprey
