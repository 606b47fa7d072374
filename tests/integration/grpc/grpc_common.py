"""Helpers shared by the gRPC client families.

Only grpcio, numpy and harness are imported here, never a protobuf module of
package `inference` (each family brings its own; see
tests/integration/conftest.py).
"""

import socket
import threading
from pathlib import Path

import grpc
import numpy as np

from harness import HOST, LIVE_DEADLINE_S, connection_refused  # noqa: F401 (re-exported)

RPC_TIMEOUT_S = 30.0

SOFTMAX = "xgb-iris-softmax"
SOFTPROB = "xgb-iris-softprob"

# KServe's e2e case answers class 1 for both rows; KServe's own gRPC test
# compares fp32_contents with exactly this list.
KSERVE_E2E_ANSWER = [1.0, 1.0]

# Large messages both ways, as kserve's InferenceGRPCClient sets by default.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]

# Datatypes with a typed InferTensorContents field, and those that travel raw only.
TYPED_DATATYPES = (
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "FP32",
    "FP64",
)
INTEGER_DATATYPES = {
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}


def wait_grpc_ready(server, deadline=LIVE_DEADLINE_S):
    """Waits until the server's gRPC port completes an HTTP/2 handshake."""
    with grpc.insecure_channel(server.grpc_target) as ch:
        try:
            grpc.channel_ready_future(ch).result(timeout=deadline)
        except grpc.FutureTimeoutError:
            raise AssertionError(
                f"{server.label}: gRPC port {server.grpc_port} not ready within {deadline:.0f}s\n"
                f"--- stderr tail ---\n{server.log_tail()}"
            ) from None


def datatype_rows(fixtures, model, datatype):
    """Rows for `model` in `datatype`, and the float32 features the server must
    see after converting them (what the xgboost oracle is given).

    Floats use the fixture rows. Integers use the fixture rows rounded (less
    one for signed types, so negatives occur) plus a row of the type's extreme
    values, which catches sign and width mix-ups. BOOL uses a 0/1 pattern.
    """
    X = fixtures.inputs(model)
    if datatype in ("FP16", "FP32", "FP64"):
        dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[datatype]
        # FP64 rows get digits float32 cannot hold, so the server must round.
        typed = X.astype(np.float64) + (1e-9 if datatype == "FP64" else 0.0)
        typed = typed.astype(dtype)
        return typed, typed.astype(np.float32)
    if datatype == "BOOL":
        typed = X > np.median(X, axis=0)
        return typed, typed.astype(np.float32)
    dtype = INTEGER_DATATYPES[datatype]
    info = np.iinfo(dtype)
    base = np.round(X).astype(np.int64) - (1 if info.min < 0 else 0)
    extremes = np.array([[info.min, info.max][i % 2] for i in range(X.shape[1])], dtype=dtype)
    typed = np.concatenate([base.astype(dtype), extremes[None, :]])
    return typed, typed.astype(np.float32)


FRAME_DATA, FRAME_HEADERS, FRAME_WINDOW_UPDATE = 0x0, 0x1, 0x8
FLAG_END_STREAM = 0x1


class _FrameHeaders:
    """Reads the server's side of an HTTP/2 connection frame header by frame
    header, as the bytes pass (a frame's payload need not have arrived)."""

    def __init__(self):
        self.header = b""
        self.skip = 0  # payload bytes of the current frame still to pass

    def feed(self, data):
        """Yields (type, flags, stream id, length) of each frame header in data."""
        i = 0
        while i < len(data):
            if self.skip:
                n = min(self.skip, len(data) - i)
                self.skip -= n
                i += n
                continue
            take = data[i : i + 9 - len(self.header)]
            self.header += take
            i += len(take)
            if len(self.header) == 9:
                h, self.header = self.header, b""
                length = int.from_bytes(h[:3], "big")
                self.skip = length
                yield h[3], h[4], int.from_bytes(h[5:9], "big") & 0x7FFFFFFF, length


class _Connection:
    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.lock = threading.Lock()
        # Client to server.
        self.sent = 0  # bytes forwarded so far
        self.hold_at = None  # stop forwarding client bytes at this count
        self.held = threading.Event()
        # Server to client.
        self.hold_responses = False  # stop reading from the server at the next DATA frame
        self.response_held = threading.Event()
        self.stream_window_updates = set()  # stream ids the server granted credit to
        self.forwarded = 0  # server bytes forwarded to the client so far
        self.data_streams = set()  # stream ids the server sent DATA frames on
        self.ended_streams = set()  # stream ids the server ended (END_STREAM seen)

    def unread_bound(self):
        """The most bytes the server can have written that the proxy has not read:
        its socket send buffer (at most twice the kernel's limit) plus the
        proxy's fixed receive buffer."""
        limits = [
            int(Path("/proc/sys/net/core/wmem_max").read_text()),
            int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2]),
        ]
        return 2 * max(limits) + self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class HoldingProxy:
    """A TCP proxy in front of a gRPC port that can hold either direction.

    Each accepted connection gets its own upstream connection. The server's
    side is parsed into HTTP/2 frame headers on the way through.

    Client to server: bytes are forwarded until the connection's `hold_at`
    count, then held until release(). A stream-level WINDOW_UPDATE from the
    server proves that it has opened that stream and is reading its message.

    Server to client: with `hold_responses` set, the proxy stops reading from
    the server after the first DATA frame header, until release(). The upstream
    socket has a small fixed receive buffer, so the server can then have
    written at most `unread_bound()` more bytes: an answer larger than that
    cannot have left the server yet.
    """

    UPSTREAM_RCVBUF = 64 << 10

    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        self.connections = []
        self._released = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def target(self):
        return f"{HOST}:{self.port}"

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Set before connecting: a fixed buffer, no autotuning.
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.UPSTREAM_RCVBUF)
            upstream.connect(self.upstream)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(client, upstream)
            self.connections.append(conn)
            threading.Thread(target=self._client_to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(conn,), daemon=True).start()

    def _client_to_server(self, conn):
        try:
            while True:
                hold_at = conn.hold_at
                if hold_at is not None and conn.sent >= hold_at and not self._released.is_set():
                    conn.held.set()
                    self._released.wait()
                    continue
                n = 1 << 16
                if hold_at is not None and not self._released.is_set():
                    n = max(1, min(n, hold_at - conn.sent))
                data = conn.client.recv(n)
                if not data:
                    break
                conn.upstream.sendall(data)
                conn.sent += len(data)
        except OSError:
            pass
        _shutdown(conn.upstream)

    def _server_to_client(self, conn):
        frames = _FrameHeaders()
        try:
            while True:
                data = conn.upstream.recv(1 << 16)
                if not data:
                    break
                # Read before forwarding: a flag set after the client saw this
                # chunk (e.g. right after a warm-up call) does not hold it.
                hold = conn.hold_responses
                saw_data = False
                with conn.lock:
                    for ftype, flags, stream, _ in frames.feed(data):
                        if ftype == FRAME_WINDOW_UPDATE and stream != 0:
                            conn.stream_window_updates.add(stream)
                        elif ftype == FRAME_DATA and stream != 0:
                            saw_data = True
                            conn.data_streams.add(stream)
                        if ftype in (FRAME_DATA, FRAME_HEADERS) and flags & FLAG_END_STREAM:
                            conn.ended_streams.add(stream)
                    conn.forwarded += len(data)
                conn.client.sendall(data)
                if saw_data and hold and not self._released.is_set():
                    conn.response_held.set()
                    self._released.wait()
        except OSError:
            pass
        _shutdown(conn.client)

    def release(self):
        self._released.set()

    def close(self):
        self._closed = True
        self._released.set()
        self._sock.close()
        for conn in self.connections:
            for s in (conn.client, conn.upstream):
                # shutdown() first: close() alone neither wakes a thread blocked
                # in recv() on the socket nor ends the connection.
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
