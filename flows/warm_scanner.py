"""The warm scanner: one process with Prefect, pandas and the scan flow imported, forking a child per scan request.

Started by the local stack (`make server`, deployments/local_stack.py) next to the API server and the worker;
technic_v4/warm.py is the client (`technic scan`, `run_scan`). Like Ruby's Spring or a Gradle daemon it trades one
idle process (~250 MB) for the ~1.9 s of imports every fresh process pays: the fork shares the imported heap
copy-on-write, and the child runs the same CLI or `run_scan_output` in the caller's environment and working directory.

A request is declined (the caller then scans by itself) when it cannot be served exactly as a fresh process would:
Prefect settings that differ from this process's (Prefect reads them at import), or project code changed since the
imports (this process then restarts itself with the new code).

    python -m flows.warm_scanner        # serve $TECHNIC_DATA_DIR/run/warm-scanner.sock until SIGTERM
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import signal
import socket
import sys
import time
from pathlib import Path

from flows.prefect_api import local_stack_url, preload_first_run
from technic_v4 import warm

REPO = Path(__file__).resolve().parents[1]
# set by the local stack for its own processes, or by the CLI before its imports: never a reason to decline
OWN_SETTINGS = {"PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_WORKER_QUERY_SECONDS",
                "PREFECT_WORKER_PREFETCH_SECONDS", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"}


def code_fingerprint() -> tuple[int, int, int]:
    """(files, newest mtime, total size) of the project's Python files: changes when the code does (a few ms)."""
    files = [p.stat() for pkg in ("technic_v4", "flows") for p in (REPO / pkg).rglob("*.py")]
    return len(files), max(s.st_mtime_ns for s in files), sum(s.st_size for s in files)


def prefect_settings(env) -> dict[str, str]:
    """The PREFECT_* variables that decide how Prefect behaves once imported (OWN_SETTINGS aside)."""
    return {k: v for k, v in env.items() if k.startswith("PREFECT_") and k not in OWN_SETTINGS}


def decline_reason(request: dict, baseline: dict[str, str], fingerprint) -> str | None:
    env = request.get("env", {})
    theirs = prefect_settings(env)
    if theirs != baseline:
        differ = sorted(k for k in set(theirs) | set(baseline) if theirs.get(k) != baseline.get(k))
        return f"Prefect settings differ from the warm scanner's: {', '.join(differ)}"
    if env.get("PREFECT_API_URL") not in (None, os.environ.get("PREFECT_API_URL")):
        return "another PREFECT_API_URL"
    if code_fingerprint() != fingerprint:
        return "project code changed"
    return None


def preload() -> None:
    """Import what a scan imports (the CLI, the flow, Prefect's engine) without starting a thread: fork-safe."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")  # as `technic scan` sets it
    from technic_v4.api import load_flow_factory, prepare_prefect_api

    prepare_prefect_api()  # decides the API (the stack's) before Prefect is imported, as the CLI does
    load_flow_factory("scan")
    import technic_v4.cli  # noqa: F401
    from technic_v4.heap import freeze_startup_heap

    preload_first_run()
    freeze_startup_heap()  # children inherit a frozen heap: the collector never walks the imports


def serve() -> None:
    baseline = prefect_settings(os.environ)
    preload()
    fingerprint = code_fingerprint()
    path = warm.socket_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, dir_fd = warm.unix_address(path)
    old_umask = os.umask(0o177)  # the socket is this user's only (0600)
    try:
        listener.bind(address)
    finally:
        os.umask(old_umask)
        if dir_fd is not None:
            os.close(dir_fd)
    listener.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"warm scanner pid {os.getpid()} serving {path}", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            try:
                handle(conn, listener, baseline, fingerprint)
            except (OSError, ConnectionError, ValueError) as exc:
                print(f"request failed: {type(exc).__name__}: {exc}", flush=True)
            finally:
                conn.close()
    finally:
        path.unlink(missing_ok=True)


def handle(conn: socket.socket, listener: socket.socket, baseline: dict, fingerprint) -> None:
    _kind, payload, fds = warm.recv_frame(conn, maxfds=3)
    request = json.loads(payload)
    reason = decline_reason(request, baseline, fingerprint)
    if reason is not None:
        for fd in fds:
            os.close(fd)
        warm.send_frame(conn, b"J", json.dumps({"accepted": False, "reason": reason}).encode())
        print(f"declined: {reason}", flush=True)
        if reason == "project code changed":  # serve the new code from now on: same pid, fresh imports
            listener.close()
            os.execv(sys.executable, [sys.executable, "-m", "flows.warm_scanner"])
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        run_child(conn, request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    print(f"{time.strftime('%H:%M:%S')} {request['kind']} -> child {pid}", flush=True)


def run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the caller's process (env, cwd, stdio), run, answer, exit."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=stream.isatty())
    api_url = os.environ.get("PREFECT_API_URL") or local_stack_url()  # what Prefect was imported with
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.setdefault("PREFECT_API_URL", api_url)
    os.chdir(request["cwd"])
    warm.SERVED_BY = f"warm scanner (pid {os.getppid()}, child {os.getpid()})"
    warm.send_frame(conn, b"J", json.dumps({"accepted": True, "pid": os.getpid()}).encode())
    code = 0
    try:
        if request["kind"] == "cli":
            code = _run_cli(request["argv"])
            answer = (b"J", json.dumps({"exit": code}).encode())
        else:
            answer = (b"P", pickle.dumps(_run_scan(request["config"])))
    except BaseException as exc:  # noqa: BLE001 - the caller re-raises it
        code = 1
        answer = (b"E", _pickled_error(exc))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        warm.send_frame(conn, *answer)
    finally:
        conn.close()
        # Prefect's log and event drains run as at any exit; os._exit then skips the server loop's own cleanup
        # (unlinking the socket), which belongs to the parent
        atexit._run_exitfuncs()
        os._exit(code)


def _run_cli(argv: list[str]) -> int:
    from technic_v4 import cli

    cli.console = cli.make_console()  # the caller's terminal, not this daemon's log file
    sys.argv = argv
    try:
        cli.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _run_scan(config: dict):
    from technic_v4.api import ScanConfig, run_scan_output

    return run_scan_output(ScanConfig.build(**config))


def _pickled_error(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - an exception that does not pickle still says what happened
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    serve()
