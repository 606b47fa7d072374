// A load client for InferenceGraph benchmarks: each operation is one or more
// HTTP/1.1 POSTs sent one after another on the same keep-alive connection
// (a graph request, or the calls a client would make itself instead), and
// its latency runs to the last answer.
//
//   open loop (RATE > 0): operations scheduled at a constant rate, latency
//     from the scheduled time (no coordinated omission);
//   closed loop (RATE 0): each connection sends its next operation as soon
//     as the previous one is answered (throughput at saturation).
//
// usage: osprey_graph_client BODY_FILE RATE SECONDS CONNECTIONS PORT HOST PATH [PORT HOST PATH ...]
// (each step on its own port's keep-alive connection of the calling thread)
// prints: {"ops": N, "errors": E, "ops_per_s": ..., "p50_ms": ..., "p90_ms": ..., "p99_ms": ...}
// Any answer other than 200 counts as an error.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

// Reads one answer (head + Content-Length body); its status, or -1.
int ReadResponse(int fd, std::string& buf) {
  buf.clear();
  size_t header_end = std::string::npos;
  size_t need = 0;
  char chunk[16384];
  while (true) {
    if (header_end == std::string::npos) {
      header_end = buf.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        size_t length = 0;
        for (const char* name : {"Content-Length: ", "content-length: "}) {
          size_t cl = buf.find(name);
          if (cl != std::string::npos && cl < header_end)
            length = std::strtoul(buf.c_str() + cl + 16, nullptr, 10);
        }
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
  if (argc < 8 || (argc - 5) % 3 != 0) {
    std::fprintf(
        stderr,
        "usage: %s BODY_FILE RATE SECONDS CONNECTIONS PORT HOST PATH [PORT HOST PATH ...]\n",
        argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const double rate = std::atof(argv[2]);
  const double seconds = std::atof(argv[3]);
  const int connections = std::max(1, std::atoi(argv[4]));
  std::vector<std::string> requests;
  std::vector<int> ports;
  for (int i = 5; i + 2 < argc; i += 3) {
    ports.push_back(std::atoi(argv[i]));
    requests.push_back(std::string("POST ") + argv[i + 2] + " HTTP/1.1\r\nHost: " + argv[i + 1] +
                       "\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  std::mutex mu;
  std::vector<double> latencies;
  long errors = 0;
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const double interval = rate > 0 ? connections / rate : 0;
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> mine;
      long my_errors = 0;
      std::vector<int> fds(requests.size(), -1);  // one connection per step
      std::string buf;
      const auto offset = std::chrono::duration<double>(interval * c / connections);
      std::this_thread::sleep_until(start);
      for (long k = 0;; ++k) {
        Clock::time_point due;
        if (rate > 0) {
          due = start + std::chrono::duration_cast<Clock::duration>(
                            offset + std::chrono::duration<double>(interval * k));
          if (due > end) break;
          std::this_thread::sleep_until(due);
        } else {
          due = Clock::now();
          if (due > end) break;
        }
        bool ok = true;
        for (size_t i = 0; i < requests.size() && ok; ++i) {
          int& fd = fds[i];
          if (fd < 0) fd = Connect(ports[i]);
          ok = fd >= 0 &&
               write(fd, requests[i].data(), requests[i].size()) ==
                   static_cast<ssize_t>(requests[i].size()) &&
               ReadResponse(fd, buf) == 200;
          if (!ok) {
            if (fd >= 0) close(fd);
            fd = -1;
          }
        }
        if (!ok) {
          ++my_errors;
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - due).count());
      }
      for (int fd : fds)
        if (fd >= 0) close(fd);
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      errors += my_errors;
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(end - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    if (latencies.empty()) return 0.0;
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(p * latencies.size()))];
  };
  std::printf(
      "{\"ops\": %zu, \"errors\": %ld, \"ops_per_s\": %.1f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
      "\"p99_ms\": %.4f}\n",
      latencies.size(), errors, latencies.size() / elapsed, pct(0.5), pct(0.9), pct(0.99));
  return 0;
}
