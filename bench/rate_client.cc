// A constant-rate (open-loop) HTTP/1.1 load client: requests are scheduled at
// fixed times and latency is measured from the scheduled time, so a slow
// answer shows in the numbers instead of slowing the client down (no
// coordinated omission). wrk, by contrast, is closed-loop.
//
// usage: osprey_rate_client PORT PATH BODY_FILE HOST_HEADER RATE SECONDS CONNECTIONS
// prints: {"sent": N, "errors": E, "p50_ms": ..., "p90_ms": ..., "p99_ms": ...}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Reads one response (headers + Content-Length body); returns the status, or -1.
int ReadResponse(int fd, std::string& buf) {
  buf.clear();
  size_t header_end = std::string::npos;
  size_t need = 0;
  char chunk[16384];
  while (true) {
    if (header_end == std::string::npos) {
      header_end = buf.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        size_t cl = buf.find("Content-Length: ");
        if (cl == std::string::npos || cl > header_end) cl = buf.find("content-length: ");
        size_t length = cl != std::string::npos && cl < header_end
                            ? std::strtoul(buf.c_str() + cl + 16, nullptr, 10)
                            : 0;
        need = header_end + 4 + length;
      }
    }
    if (header_end != std::string::npos && buf.size() >= need) break;
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) return -1;
    buf.append(chunk, static_cast<size_t>(n));
  }
  return std::atoi(buf.c_str() + 9);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s PORT PATH BODY_FILE HOST_HEADER RATE SECONDS CONNECTIONS\n",
                 argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::string path = argv[2];
  std::ifstream in(argv[3], std::ios::binary);
  const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string host = argv[4];
  const double rate = std::atof(argv[5]);
  const double seconds = std::atof(argv[6]);
  const int connections = std::max(1, std::atoi(argv[7]));
  const std::string request =
      "POST " + path + " HTTP/1.1\r\nHost: " + host +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;

  std::mutex mu;
  std::vector<double> latencies;
  long errors = 0;
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const double interval = connections / rate;  // seconds between one connection's requests
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> mine;
      long my_errors = 0;
      int fd = Connect(port);
      std::string buf;
      const auto offset = std::chrono::duration<double>(interval * c / connections);
      for (long k = 0;; ++k) {
        auto due = start + std::chrono::duration_cast<Clock::duration>(
                               offset + std::chrono::duration<double>(interval * k));
        if (due > start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(seconds)))
          break;
        std::this_thread::sleep_until(due);
        if (fd < 0) fd = Connect(port);
        bool ok = fd >= 0 &&
                  write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size());
        int status = ok ? ReadResponse(fd, buf) : -1;
        if (status != 200) {
          ++my_errors;
          if (fd >= 0) close(fd);
          fd = -1;
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - due).count());
      }
      if (fd >= 0) close(fd);
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      errors += my_errors;
    });
  }
  for (auto& t : threads) t.join();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    if (latencies.empty()) return 0.0;
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))];
  };
  std::printf(
      "{\"sent\": %zu, \"errors\": %ld, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
      "\"p99_ms\": %.4f}\n",
      latencies.size() + errors, errors, pct(0.5), pct(0.9), pct(0.99));
  return 0;
}
