#include "net/http_types.h"

#include <algorithm>

namespace osprey {

std::string_view FindHeader(const HeaderSource& headers, std::string_view name) {
  std::string_view found;
  if (headers.visit == nullptr) return found;
  headers.visit(headers.context, [&](std::string_view n, std::string_view v) {
    if (found.empty() && n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
          auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
          return lower(a) == lower(b);
        }))
      found = v;
  });
  return found;
}

}  // namespace osprey

namespace osprey {

bool HttpStream::Write(std::string_view data) {
  std::function<void()> wake;
  bool dropped = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    if (pending_.size() + data.size() > kMaxPendingBytes) {
      // The client does not read: it is dropped rather than buffered for.
      closed_ = true;
      dropped = true;
      pending_.clear();
    } else {
      pending_.append(data);
    }
    wake = std::move(wake_);
    wake_ = nullptr;
  }
  if (wake) wake();
  return !dropped;
}

void HttpStream::Close() {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    wake = std::move(wake_);
    wake_ = nullptr;
  }
  if (wake) wake();
}

size_t HttpStream::pending_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

bool HttpStream::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !closed_;
}

std::string HttpStream::Take(bool* ended, std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.swap(pending_);
  *ended = closed_ && out.empty();
  if (out.empty() && !closed_) wake_ = std::move(wake);
  return out;
}

void HttpStream::End() {
  std::function<void()> wake;  // dropped, not called: the server side is what ends
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    pending_.clear();
    wake = std::move(wake_);
    wake_ = nullptr;
  }
}

}  // namespace osprey
