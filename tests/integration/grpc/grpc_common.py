"""Helpers shared by the gRPC client families.

Only grpcio, numpy and harness are imported here, never a protobuf module of
package `inference` (each family brings its own; see
tests/integration/conftest.py).
"""

import socket
import threading

import grpc
import numpy as np

from harness import HOST, LIVE_DEADLINE_S

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


def connection_refused(host, port) -> bool:
    try:
        s = socket.create_connection((host, port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


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


class _Connection:
    def __init__(self, client, upstream):
        self.client = client
        self.upstream = upstream
        self.sent = 0  # client-to-server bytes forwarded so far
        self.hold_at = None  # stop forwarding client bytes at this count
        self.held = threading.Event()
        self.stream_window_updates = set()  # stream ids the server granted credit to
        self.lock = threading.Lock()


class HoldingProxy:
    """A TCP proxy in front of a gRPC port that can hold back client bytes.

    Each accepted connection gets its own upstream connection. Client-to-server
    bytes are forwarded until the connection's `hold_at` count, then held until
    release(). The server's HTTP/2 frames are parsed on the way back, and the
    stream ids of its stream-level WINDOW_UPDATE frames recorded: such a frame
    proves that the server has opened that stream and is reading its message,
    i.e. that the call is in flight on the server.
    """

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
            upstream = socket.create_connection(self.upstream, timeout=None)
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
        pending = b""
        try:
            while True:
                data = conn.upstream.recv(1 << 16)
                if not data:
                    break
                pending += data
                # HTTP/2 frame header: length (24 bits), type, flags, stream id (31 bits).
                while len(pending) >= 9:
                    length = int.from_bytes(pending[:3], "big")
                    if len(pending) < 9 + length:
                        break
                    ftype = pending[3]
                    stream = int.from_bytes(pending[5:9], "big") & 0x7FFFFFFF
                    if ftype == 0x8 and stream != 0:
                        with conn.lock:
                            conn.stream_window_updates.add(stream)
                    pending = pending[9 + length :]
                conn.client.sendall(data)
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
                try:
                    s.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
