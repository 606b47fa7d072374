#pragma once

// The commands' way with signals: SIGTERM and SIGINT are taken synchronously
// by the main thread (every thread started after BlockStopSignals inherits
// the blocked mask), SIGPIPE is ignored.

#include <signal.h>

namespace osprey {

inline sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

// Waits for SIGTERM or SIGINT; returns which, and its name.
inline int WaitForStopSignal(const sigset_t& signals, const char** name = nullptr) {
  int sig = 0;
  sigwait(&signals, &sig);
  if (name != nullptr) *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  return sig;
}

}  // namespace osprey
