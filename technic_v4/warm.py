"""Client side of the warm scanner: hand a `technic scan` or a `run_scan` to a process that already imported everything.

A fresh process spends ~1.9 s importing Prefect, pandas and the flow before the first bar is read; the scan itself takes
~1.2 s. With the local stack up (`make server`), flows/warm_scanner.py keeps one process with all of that imported and
forks a child per request, so the command waits for the scan only: the CLI passes its argv, environment, working
directory and its stdin/stdout/stderr (SCM_RIGHTS), so the child prints the table and progress bar straight to the
same terminal; `run_scan` gets the pickled result back. Ctrl-C is forwarded to the child.

Used only when the socket exists, belongs to this user and the server accepts the request (same Prefect settings, same
project code); otherwise the caller runs the scan itself as before. TECHNIC_WARM_SCANNER=0 turns it off.
This module imports nothing heavy: it runs before every import a cold path needs.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import struct
import sys
from pathlib import Path

SWITCH = "TECHNIC_WARM_SCANNER"
SOCKET_NAME = "warm-scanner.sock"
# set in the child that serves a request: the CLI says who ran the scan
SERVED_BY: str | None = None


def socket_path() -> Path:
    """$TECHNIC_DATA_DIR/run/warm-scanner.sock, next to the local stack's stack.json."""
    data_dir = os.environ.get("TECHNIC_DATA_DIR") or str(Path.home() / ".technic_v4")
    return Path(data_dir).expanduser() / "run" / SOCKET_NAME


def unix_address(path: Path) -> tuple[str, int | None]:
    """An AF_UNIX address for `path` (limit 107 bytes): a long path is reached through /proc/self/fd/<dir fd>."""
    if len(os.fsencode(str(path))) < 100:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def send_frame(sock: socket.socket, kind: bytes, payload: bytes, fds: list[int] | None = None) -> None:
    """One message: kind (b"J" JSON, b"P" pickle), 4-byte length, payload; file descriptors ride on the first byte."""
    data = kind + struct.pack(">I", len(payload)) + payload
    if fds:
        sent = socket.send_fds(sock, [data[:1]], fds)
        data = data[sent:]
    sock.sendall(data)


def recv_frame(sock: socket.socket, maxfds: int = 0) -> tuple[bytes, bytes, list[int]]:
    """(kind, payload, received fds); raises ConnectionError when the peer closed before a whole frame."""
    fds: list[int] = []
    if maxfds:
        first, fds, _flags, _addr = socket.recv_fds(sock, 1, maxfds)
    else:
        first = sock.recv(1)
    if not first:
        raise ConnectionError("closed")
    header = first + _recv_exact(sock, 4)
    kind, size = header[:1], struct.unpack(">I", header[1:])[0]
    return kind, _recv_exact(sock, size), fds


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def enabled() -> bool:
    """TECHNIC_WARM_SCANNER is not 0/false/no/off (the CLI's and `make server`'s switch)."""
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _connect() -> socket.socket | None:
    """A connection to this user's warm scanner, or None (switched off, not running, someone else's socket)."""
    if SERVED_BY is not None or not enabled():
        return None  # switched off, or this process is already the warm child
    path = socket_path()
    try:
        if path.stat().st_uid != os.getuid():  # never talk to (or unpickle from) another user's socket
            return None
    except OSError:
        return None
    address, dir_fd = unix_address(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        return sock
    except OSError:
        sock.close()
        return None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def _serve(request: dict) -> tuple[bytes, bytes] | None:
    """Hand `request` (with this process's environment, working directory and stdio) to a warm child and wait for
    its answer, forwarding Ctrl-C: (answer kind, payload); None when not served (the caller runs locally);
    ConnectionError when the child ended without answering; the child's own exception, raised here, when it failed."""
    sock = _connect()
    if sock is None:
        return None
    with sock:
        try:
            send_frame(sock, b"J", json.dumps({**request, "env": dict(os.environ), "cwd": os.getcwd()}).encode(),
                       [0, 1, 2])
            answer = json.loads(recv_frame(sock)[1])
        except (OSError, ConnectionError, ValueError):
            return None
        if not answer.get("accepted"):
            return None
        pid = answer["pid"]
        previous = signal.signal(signal.SIGINT, lambda *_: _forward(pid, signal.SIGINT))
        try:
            kind, payload, _ = recv_frame(sock)
        except ConnectionError:
            raise ConnectionError(f"the warm scanner's child {pid} ended without an answer") from None
        finally:
            signal.signal(signal.SIGINT, previous)
    if kind == b"E":
        raise pickle.loads(payload)  # our own user's socket (checked in _connect), our own child
    return kind, payload


def delegate_cli(argv: list[str]) -> int | None:
    """Run `technic <argv>` in a warm child on this terminal; its exit code, or None if not served here."""
    try:
        served = _serve({"kind": "cli", "argv": argv})
    except ConnectionError as exc:
        print(exc, file=sys.stderr)
        return 1
    return None if served is None else int(json.loads(served[1])["exit"])


def delegate_scan(config) -> object | None:
    """run_scan's ScanOutput computed by a warm child (pickled back), or None if not served here. The child writes
    Prefect's console logs to this process's stdout/stderr."""
    try:
        served = _serve({"kind": "scan", "config": config.model_dump(mode="json")})
    except ConnectionError as exc:
        raise RuntimeError(str(exc)) from None
    return None if served is None else pickle.loads(served[1])


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
