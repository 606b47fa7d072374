"""One `osprey` process under test (operator or gateway): started with its
arguments, its output in a log file under the test's directory, its HTTP
port asked for /healthz, /readyz and /metrics."""

import os
import signal
import socket
import subprocess
from pathlib import Path

import requests

from kubeenv import REPO_ROOT, wait_until

OSPREY = Path(os.environ.get("OSPREY_BIN")
              or REPO_ROOT / "build" / "dev" / "apps" / "osprey" / "osprey").resolve()


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class OspreyProcess:
    def __init__(self, command, dir, port, args, *, ready_path="/healthz", timeout=20):
        self.command = command
        self.port = port
        self.log_path = Path(dir) / f"{command}-{port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(OSPREY), command, *map(str, args)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.get(ready_path) == 200 or self.proc.poll() is not None, timeout,
                   f"osprey {command}'s {ready_path}")
        assert self.proc.poll() is None, self.tail()

    def get(self, path):
        """The HTTP status of GET path, or None when nothing answers."""
        try:
            return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code
        except requests.RequestException:
            return None

    def metrics(self):
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def tail(self, lines=40):
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
