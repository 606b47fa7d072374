#include "controlplane/local/http_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

namespace osprey::controlplane {
namespace {

using Clock = std::chrono::steady_clock;

// Closes the descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

absl::Status Errno(std::string_view what) {
  return absl::UnavailableError(StrCat(what, ": ", std::strerror(errno)));
}

// Milliseconds left until `deadline`, at least 0, for poll().
int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until `fd` is ready for `events`; kUnavailable on timeout.
absl::Status WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, MillisLeft(deadline));
    if (n > 0) return absl::OkStatus();
    if (n == 0) return absl::UnavailableError("probe timed out");
    if (errno != EINTR) return Errno("poll");
  }
}

// A non-blocking socket connected to 127.0.0.1:port, or an error.
absl::Status Connect(const Fd& fd, uint16_t port, Clock::time_point deadline) {
  if (fd.get() < 0) return Errno("socket");
  sockaddr_in addr = Loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return absl::OkStatus();
  }
  if (errno != EINPROGRESS && errno != EINTR) return Errno("connect");
  OSPREY_RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline));
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return Errno("getsockopt");
  if (err != 0) {
    errno = err;
    return Errno("connect");
  }
  return absl::OkStatus();
}

int NewSocket() { return ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

}  // namespace

absl::StatusOr<int> HttpProbe(uint16_t port, std::string_view path,
                              std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  Fd fd(NewSocket());
  OSPREY_RETURN_IF_ERROR(Connect(fd, port, deadline));

  std::string request = StrCat("GET ", path.empty() ? std::string_view("/") : path,
                               " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      OSPREY_RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline));
    } else if (errno != EINTR) {
      return Errno("send");
    }
  }

  // Read until the end of the status line: "HTTP/1.1 200 OK\r\n".
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 1024) {
    char buf[256];
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;  // closed; parse what came
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      OSPREY_RETURN_IF_ERROR(WaitFor(fd.get(), POLLIN, deadline));
    } else if (errno != EINTR) {
      return Errno("recv");
    }
  }
  // "HTTP/1.x NNN"
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0 || head[8] != ' ') {
    return absl::UnavailableError("probe: no HTTP status line in the response");
  }
  int code = 0;
  auto [end, ec] = std::from_chars(head.data() + 9, head.data() + 12, code);
  if (ec != std::errc() || end != head.data() + 12) {
    return absl::UnavailableError("probe: malformed HTTP status line");
  }
  return code;
}

absl::Status TcpProbe(uint16_t port, std::chrono::milliseconds timeout) {
  Fd fd(NewSocket());
  return Connect(fd, port, Clock::now() + timeout);
}

absl::StatusOr<uint16_t> PickFreePort() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::InternalError(StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr = Loopback(0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::InternalError(StrCat("bind 127.0.0.1:0: ", std::strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(StrCat("getsockname: ", std::strerror(errno)));
  }
  return ntohs(addr.sin_port);
}

}  // namespace osprey::controlplane
