"""What the user waits: wall time of a whole fresh process, from spawn to exit, not the flow's own stage timer.

Rows: `technic scan` cold (empty data dir) and warm (bars cached, same day); `run_scan(...)` in a fresh Python
process; each with nothing running (a temporary Prefect server starts) and with a local Prefect server and the warm
scanner up (as `make server` runs them; also with the warm scanner switched off), plus
`technic scan` finding the temporary server its previous run kept (its default, TECHNIC_PREFECT_SERVER_LINGER); every symbol
rescored on threads, a local Ray and the default runner (auto); 6,000 scanned symbols of an 8,000-symbol market and of
a 60,000-symbol market (TECHNIC_SIM_SYMBOLS); peak RSS of the largest process; and `load_panel` cached vs day files.

    python -m benchmarks.bench_user_wait [--quick] [--before DIR]

`--before DIR` (or TECHNIC_BENCH_BEFORE) also runs every row with the code checked out in DIR (e.g. `git worktree
add DIR <commit>`) on its own data dirs, side by side in the same run, so the before/after ratios share the box's load.
Self-contained: it imports nothing from the other benchmark modules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCAN_TIME = re.compile(r"^time ([\d.]+) s \((.*)\)", re.M)
RUNNER = re.compile(r"runner ([a-z]+)")
FLOW_RSS = re.compile(r"peak RSS flow ([\d.]+) (GB|MB)")

# Runs the command given as argv, prints {"wall_s", "peak_rss_mb", "rc"}: timed from spawn to exit of the child only.
# Output goes to a file, not a pipe: a server orphaned by a crashed child would hold a pipe open and hang the read.
WRAPPER = (
    "import json, resource, subprocess, sys, tempfile, time\n"
    "with tempfile.TemporaryFile('w+') as out:\n"
    "    t = time.perf_counter()\n"
    "    try:\n"
    "        rc = subprocess.run(sys.argv[1:], stdout=out, stderr=subprocess.STDOUT, timeout=1200).returncode\n"
    "    except subprocess.TimeoutExpired:\n"
    "        rc = 'timeout'\n"
    "    wall = time.perf_counter() - t\n"
    "    out.seek(0)\n"
    "    sys.stdout.write(out.read())\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "print('@@' + json.dumps({'wall_s': round(wall, 2), 'peak_rss_mb': round(rss), 'rc': rc}))\n"
)
RUN_SCAN = "import json, sys\nfrom technic_v4.api import run_scan\nprint(run_scan(**json.loads(sys.argv[1]))[1])\n"
LOAD_PANEL = """
import json, sys, time
from technic_v4.store.bar_store import BarStore
from technic_v4.domain.panel_load import load_panel
store = BarStore(sys.argv[1]); days = store.stored_days()[-300:]; splits = store.read_splits(); out = {}
for name, cache in (("day_files", False), ("cache_first", True), ("cache_warm", True)):
    t = time.perf_counter(); p = load_panel(store, days, splits=splits, cache=cache); out[name] = round(time.perf_counter() - t, 3)
out["shape"] = list(p.shape)
print("@@" + json.dumps(out))
"""


def _env(code: Path, data_dir: Path, listed: int, stack_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TECHNIC_", "PREFECT_API", "PREFECT_PORT", "RAY_ADDRESS", "POLYGON_"))}
    env.update(TECHNIC_DATA_DIR=str(data_dir), TECHNIC_DATA_SOURCE="simulated", TECHNIC_SIM_SYMBOLS=str(listed),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(code), **extra)
    # no server anywhere unless this row is "with the local stack": an unused port for the discovery probe
    env["PREFECT_PORT"] = str(_port_of(stack_url) if stack_url else _free_port())
    if stack_url and code != REPO:  # code from before the discovery hook: the URL, as the README told users
        env["PREFECT_API_URL"] = stack_url
    return env


def _measure(argv: list[str], env: dict[str, str], timeout: float = 1800) -> dict:
    # cwd = the code's checkout: `python -m` / `-c` put the working directory ahead of PYTHONPATH
    out = subprocess.run([sys.executable, "-c", WRAPPER, *argv], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=env["PYTHONPATH"])
    text = out.stdout
    row = json.loads(text.rsplit("@@", 1)[1]) if "@@" in text else {"wall_s": None, "peak_rss_mb": None, "rc": -1}
    if m := SCAN_TIME.search(text):
        row["flow_s"] = float(m.group(1))
        row["stages"] = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)", m.group(2))}
    if m := RUNNER.search(text):
        row["runner"] = m.group(1)
    if (m := FLOW_RSS.search(text)) and row.get("peak_rss_mb") is not None:
        # a scan served by the warm scanner runs in its forked child, not in a child of this wrapper: its own report
        row["peak_rss_mb"] = max(row["peak_rss_mb"], round(float(m.group(1)) * (1024 if m.group(2) == "GB" else 1)))
    if row["rc"] != 0:
        row["error"] = (text + out.stderr)[-1500:]
    return row


def _cli(config: dict) -> list[str]:
    args = ["-m", "technic_v4.cli", "scan", "--top", "3", "--max-symbols", str(config.get("max_symbols", 6000))]
    if config.get("task_runner"):
        args += ["--runner", config["task_runner"]]
    return [sys.executable, *args]


def _run_scan(config: dict) -> list[str]:
    return [sys.executable, "-c", RUN_SCAN, json.dumps(config)]


def _rows_for(code: Path, data_dir: Path, listed: int, stack_url: str, quick: bool) -> list[dict]:
    """One code version at one market size: cold, warm (with and without the stack), runners."""
    rows = []

    def add(label: str, argv: list[str], stack: bool, **extra: str) -> None:
        # One Prefect home for the rows, its database created once (as a user's ~/.prefect is): a fresh home would
        # add its database migrations to every row. `technic scan` keeps its temporary server for the next scan by
        # default, so the server a row kept is stopped right after it: "nothing running" rows find none.
        home = extra.pop("PREFECT_HOME", None) or str(data_dir.parent / "rows_home")
        env = _env(code, data_dir, listed, stack_url if stack else None, PREFECT_HOME=home, **extra)
        # `make server` also runs the warm scanner (this code's, not a before checkout's): started outside the timing
        served = stack and code == REPO and extra.get("TECHNIC_WARM_SCANNER") != "0"
        scanner = _start_warm_scanner(env) if served else None
        try:
            row = {"label": label + (" (warm scanner)" if served else ""), "stack": stack, **_measure(argv, env)}
        finally:
            if scanner is not None:
                scanner.terminate()
                scanner.wait(timeout=30)
        if "linger_home" not in home:
            _stop_keeper(Path(home))
        rows.append(row)
        print(f"[user_wait] {code.name} {listed:,} {label} stack={stack}: {row.get('wall_s')} s wall, "
              f"flow {row.get('flow_s')} s, {row.get('peak_rss_mb')} MB {row.get('error', '')[:200]}", flush=True)

    fresh = not any(data_dir.glob("bars/date=*"))
    if fresh:
        add("technic scan, cold", _cli({}), stack=False)
    add("technic scan, warm", _cli({}), stack=False)
    add("technic scan, warm", _cli({}), stack=True)
    if code == REPO:
        add("technic scan, warm, warm scanner off", _cli({}), stack=True, TECHNIC_WARM_SCANNER="0")
    add("run_scan, fresh process, warm", _run_scan({"max_symbols": 6000}), stack=False)
    if code == REPO:  # technic scan's default: the previous scan's temporary server is still up; first run starts it
        kept = {"PREFECT_HOME": str(data_dir.parent / "linger_home")}
        _measure(_cli({}), _env(code, data_dir, listed, None, **kept))
        add("technic scan, warm, previous scan's server kept (default)", _cli({}), stack=False, **kept)
        _stop_keeper(data_dir.parent / "linger_home")
    add("run_scan, fresh process, warm", _run_scan({"max_symbols": 6000}), stack=True)
    if code == REPO:
        add("run_scan, fresh process, warm, warm scanner off", _run_scan({"max_symbols": 6000}), stack=True,
            TECHNIC_WARM_SCANNER="0")
    runners = ("thread", "ray", None) if listed <= 10_000 or not quick else ("thread", None)
    for runner in runners:
        config = {"max_symbols": 6000, "reuse_scores": False, **({"task_runner": runner} if runner else {})}
        add(f"run_scan, every symbol rescored, runner {runner or 'default'}", _run_scan(config), stack=False)
    return rows


def _start_warm_scanner(env: dict[str, str]) -> subprocess.Popen:
    """flows/warm_scanner.py as `make server` starts it, with the rows' environment; returns once it listens."""
    sock = Path(env["TECHNIC_DATA_DIR"]) / "run" / "warm-scanner.sock"
    proc = subprocess.Popen([sys.executable, "-m", "flows.warm_scanner"], env=env, cwd=env["PYTHONPATH"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc


def _load_panel_row(code: Path, data_dir: Path, listed: int) -> dict:
    env = _env(code, data_dir, listed, None)
    out = subprocess.run([sys.executable, "-c", LOAD_PANEL, str(data_dir)], env=env, capture_output=True, text=True,
                         timeout=900, cwd=code)
    if "@@" not in out.stdout:
        return {"error": (out.stdout + out.stderr)[-1500:]}
    return json.loads(out.stdout.rsplit("@@", 1)[1])


def _stop_keeper(prefect_home: Path) -> None:
    """Stop the server a row kept and wait until it is gone: a server still shutting down (and checkpointing its
    database) competes with the next row for the 2 cores."""
    state = prefect_home / "technic-temporary-server.json"
    try:
        pid = json.loads(state.read_text())["pid"]
        os.kill(pid, 15)  # the keeper stops its server and removes the file
    except (OSError, ValueError, KeyError):
        return
    deadline = time.monotonic() + 15
    while state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


class LocalStack:
    """A Prefect server of the benchmark's own (own PREFECT_HOME, free port), as `make server` runs one."""

    def __init__(self, home: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_UI_ENABLED": "0"}
        env.pop("PREFECT_API_URL", None)
        prefect = Path(sys.executable).with_name("prefect")
        self.process = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port",
                                         str(self.port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> LocalStack:
        import urllib.request

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the benchmark's Prefect server did not come up")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run(quick: bool = False, before: str | None = None, workdir: str | None = None) -> dict:
    """Every row for the current code (and `before`, when given), 8,000- and 60,000-symbol markets."""
    before = before or os.environ.get("TECHNIC_BENCH_BEFORE")
    work = Path(workdir or os.environ.get("TECHNIC_BENCH_WORKDIR") or tempfile.mkdtemp(prefix="bench_user_wait-"))
    codes = {"after": REPO, **({"before": Path(before).resolve()} if before else {})}
    markets = (8000, 60_000)
    result: dict = {"quick": quick, "codes": {k: str(v) for k, v in codes.items()}, "rows": [], "load_panel": []}
    with LocalStack(work / "prefect_home") as stack:
        for listed in markets:
            for version, code in codes.items():
                data_dir = work / f"{version}-{listed}"
                data_dir.mkdir(parents=True, exist_ok=True)
                for row in _rows_for(code, data_dir, listed, stack.url, quick):
                    result["rows"].append({"code": version, "listed": listed, **row})
                if version == "after":
                    result["load_panel"].append({"listed": listed, **_load_panel_row(code, data_dir, listed)})
    if not workdir and not os.environ.get("TECHNIC_BENCH_WORKDIR"):
        shutil.rmtree(work, ignore_errors=True)
    return result


def markdown(result: dict) -> str:
    lines = ["## What the user waits (process wall, fresh process)", "",
             "Wall = spawn to exit of a fresh process (imports, Prefect server, Ray start, flow, exit); flow = the "
             "flow's own stage timer; peak RSS = largest process (a scan the warm scanner serves: its child's own "
             "report). 6,000 symbols scanned of the listed market. "
             "Stack = a local Prefect server already running (`make server`), with its warm scanner unless the row says "
             "off; without it a temporary one starts.", "",
             "| code | listed | path | stack | runner | wall s | flow s | load_panel s | peak RSS MB |",
             "|---|---:|---|---|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        stages = r.get("stages", {})
        lines.append(f"| {r['code']} | {r['listed']:,} | {r['label']} | {'up' if r['stack'] else 'none'} | "
                     f"{r.get('runner', '?')} | {_num(r.get('wall_s'))} | {_num(r.get('flow_s'))} | "
                     f"{_num(stages.get('load_panel'))} | {_num(r.get('peak_rss_mb'), 0)} |"
                     + (" failed |" if r.get("error") else ""))
    lines += ["", "`load_panel` of the last 300 stored days in a fresh process: day files vs the panel cache "
              "(first call builds or reuses it, second is the warm path).", "",
              "| listed | panel (days x symbols) | day files s | cache, first s | cache, warm s |", "|---:|---|---:|---:|---:|"]
    for r in result["load_panel"]:
        lines.append(f"| {r['listed']:,} | {' x '.join(map(str, r.get('shape', [])))} | {_num(r.get('day_files'), 3)} | "
                     f"{_num(r.get('cache_first'), 3)} | {_num(r.get('cache_warm'), 3)} |")
    return "\n".join(lines) + "\n"


def _num(v, digits: int = 2) -> str:
    return "" if v is None else f"{v:,.{digits}f}"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", help="a checkout of the code to compare against")
    parser.add_argument("--workdir", help="keep data dirs here (reused: cold rows only run on an empty dir)")
    parser.add_argument("--json", help="write the result here")
    a = parser.parse_args()
    res = run(a.quick, a.before, a.workdir)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    print(markdown(res))
