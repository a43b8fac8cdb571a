"""What the user waits: wall time of a whole fresh process, from spawn to exit, not the flow's own stage timer.

Rows: `technic scan` cold (empty data dir) and warm (bars cached, same day); `run_scan(...)` in a fresh Python
process; each with nothing running (a temporary Prefect server starts), with this PREFECT_HOME's temporary server kept
by the previous scan (the default, TECHNIC_PREFECT_SERVER_LINGER), and with a local Prefect server up (as `make server`
runs one); every symbol rescored on threads, a local Ray and the default runner (auto); 6,000 scanned symbols of an
8,000-symbol market and of a 60,000-symbol market (TECHNIC_SIM_SYMBOLS); peak RSS of the largest process; and
`load_panel` cached vs day files. Flow times come from the scan's typed summary (ScanOutput.summary, latest.json).

    python -m benchmarks.bench_user_wait [--quick] [--before DIR] [--markets 8000,60000]

`--before DIR` (or TECHNIC_BENCH_BEFORE) also runs every row with the code checked out in DIR (e.g. `git worktree
add DIR <commit>`) on its own data dirs, side by side in the same run, so the before/after ratios share the box's load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.prefect_stack import PrefectServer
from flows.prefect_api import free_port, stop_kept_server

REPO = Path(__file__).resolve().parents[1]

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
# run_scan in a fresh process; the typed summary's metrics after a marker line
RUN_SCAN = ("import json, sys\nfrom technic_v4.api import ScanConfig, run_scan_output\n"
            "out = run_scan_output(ScanConfig.build(**json.loads(sys.argv[1])))\n"
            "print('@@summary ' + json.dumps(out.summary['metrics'], default=str))\n")
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
    # the stack is found where `make server` serves it; without one, an unused port for the discovery probe
    env["PREFECT_PORT"] = str(int(stack_url.rsplit(":", 1)[1].split("/")[0]) if stack_url else free_port())
    return env


def _measure(argv: list[str], env: dict[str, str], timeout: float = 1800) -> dict:
    # cwd = the code's checkout: `python -m` / `-c` put the working directory ahead of PYTHONPATH
    out = subprocess.run([sys.executable, "-c", WRAPPER, *argv], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=env["PYTHONPATH"])
    text = out.stdout
    row = json.loads(text.rsplit("@@", 1)[1]) if "@@{" in text else {"wall_s": None, "peak_rss_mb": None, "rc": -1}
    if "@@summary " in text:  # run_scan: the summary it returned
        metrics = json.loads(text.split("@@summary ", 1)[1].splitlines()[0])
    else:  # technic scan: the summary it published
        metrics = _published_metrics(Path(env["TECHNIC_DATA_DIR"]))
    if row["rc"] == 0 and metrics:
        row.update(flow_s=metrics["wall_seconds"], stages=metrics["stages"], runner=metrics["task_runner"])
        # a scan a before checkout's warm scanner served ran in its forked child, not under this wrapper
        row["peak_rss_mb"] = max(row["peak_rss_mb"] or 0, round(metrics.get("peak_rss_mb_flow") or 0))
    if row["rc"] != 0:
        row["error"] = (text + out.stderr)[-1500:]
    return row


def _published_metrics(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "results" / "latest.json").read_text())["metrics"]
    except (OSError, ValueError, KeyError):
        return None


def _cli(config: dict) -> list[str]:
    args = ["-m", "technic_v4.cli", "scan", "--top", "3", "--max-symbols", str(config.get("max_symbols", 6000))]
    if config.get("task_runner"):
        args += ["--runner", config["task_runner"]]
    return [sys.executable, *args]


def _run_scan(config: dict) -> list[str]:
    return [sys.executable, "-c", RUN_SCAN, json.dumps(config)]


def _stop_kept(home: Path) -> None:
    """Stop the server a row kept, and wait until it is gone: a server still shutting down competes with the next
    row for the 2 cores. A checkout from before flows/prefect_api.stop_kept_server kept it under its own state file."""
    if stop_kept_server(home):
        return
    old_state = home / "technic-temporary-server.json"
    try:
        os.kill(json.loads(old_state.read_text())["pid"], 15)
    except (OSError, ValueError, KeyError):
        return
    deadline = time.monotonic() + 15
    while old_state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _row_specs(quick: bool, listed: int, runners: bool) -> list[dict]:
    """The rows, in order: label, command, stack up, keep its kept server for the next row, extra environment,
    and whether only a checkout with the warm scanner runs it (what that scanner's removal costs)."""
    scan6k = _run_scan({"max_symbols": 6000})
    specs = [
        {"label": "technic scan, warm", "argv": _cli({})},
        {"label": "technic scan, warm, previous scan's server started", "argv": _cli({}), "keep": True, "prime": True},
        {"label": "technic scan, warm, previous scan's server kept (default)", "argv": _cli({})},
        {"label": "technic scan, warm", "argv": _cli({}), "stack": True},
        {"label": "technic scan, warm, warm scanner off", "argv": _cli({}), "stack": True, "old_only": True,
         "extra": {"TECHNIC_WARM_SCANNER": "0"}},
        {"label": "run_scan, fresh process, warm", "argv": scan6k},
        {"label": "run_scan, fresh process, warm", "argv": scan6k, "stack": True},
        {"label": "run_scan, fresh process, warm, warm scanner off", "argv": scan6k, "stack": True, "old_only": True,
         "extra": {"TECHNIC_WARM_SCANNER": "0"}},
    ]
    if runners:
        for runner in ("thread", "ray", None) if listed <= 10_000 or not quick else ("thread", None):
            config = {"max_symbols": 6000, "reuse_scores": False, **({"task_runner": runner} if runner else {})}
            specs.append({"label": f"run_scan, every symbol rescored, runner {runner or 'default'}",
                          "argv": _run_scan(config)})
    return specs


def _rows(codes: dict[str, Path], work: Path, listed: int, stack_url: str, quick: bool, runners: bool) -> list[dict]:
    """Every row for every code version at one market size; each row runs for each version back to back, so the
    versions share the box's load row by row (other work on the box comes and goes)."""
    rows = []

    def add(version: str, code: Path, spec: dict) -> None:
        data_dir = work / f"{version}-{listed}"
        # One Prefect home per version, its database created once (as a user's ~/.prefect is): a fresh home would
        # add its database migrations to every row. The server a row kept is stopped right after it, unless the
        # next row is to find it: "nothing running" rows find none.
        home = work / f"{version}-{listed}-prefect_home"
        extra = spec.get("extra", {})
        env = _env(code, data_dir, listed, stack_url if spec.get("stack") else None, PREFECT_HOME=str(home), **extra)
        # a checkout from before the warm scanner's removal: its `make server` ran the scanner too
        old = (code / "flows" / "warm_scanner.py").exists()
        served = spec.get("stack") and old and "TECHNIC_WARM_SCANNER" not in extra
        scanner = _start_warm_scanner(env) if served else None
        try:
            row = {"code": version, "listed": listed, "label": spec["label"] + (" (warm scanner)" if scanner else ""),
                   "stack": bool(spec.get("stack")), **_measure(spec["argv"], env)}
        finally:
            if scanner is not None:
                scanner.terminate()
                scanner.wait(timeout=30)
        if not spec.get("keep"):
            _stop_kept(home)
        if not spec.get("prime"):  # a priming row only starts the server the next row finds
            rows.append(row)
        print(f"[user_wait] {version} {listed:,} {row['label']} stack={row['stack']}: {row.get('wall_s')} s wall, "
              f"flow {row.get('flow_s')} s, {row.get('peak_rss_mb')} MB {row.get('error', '')[:200]}", flush=True)

    for version, code in codes.items():  # the cold scan fills each version's bar store first
        if not any((work / f"{version}-{listed}").glob("bars/date=*")):
            add(version, code, {"label": "technic scan, cold", "argv": _cli({})})
    for spec in _row_specs(quick, listed, runners):
        for version, code in codes.items():
            if not spec.get("old_only") or (code / "flows" / "warm_scanner.py").exists():
                add(version, code, spec)
    return rows


def _start_warm_scanner(env: dict[str, str]) -> subprocess.Popen:
    """A before checkout's warm scanner as its `make server` started it; returns once it listens."""
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


def run(quick: bool = False, before: str | None = None, workdir: str | None = None,
        markets: tuple[int, ...] = (8000, 60_000), runners: bool = True) -> dict:
    """Every row for the current code (and `before`, when given), 8,000- and 60,000-symbol markets."""
    before = before or os.environ.get("TECHNIC_BENCH_BEFORE")
    work = Path(workdir or os.environ.get("TECHNIC_BENCH_WORKDIR") or tempfile.mkdtemp(prefix="bench_user_wait-"))
    codes = {"after": REPO, **({"before": Path(before).resolve()} if before else {})}
    result: dict = {"quick": quick, "codes": {k: str(v) for k, v in codes.items()},
                    "commits": {k: _commit(v) for k, v in codes.items()}, "rows": [], "load_panel": []}
    with PrefectServer() as stack:
        for listed in markets:
            result["rows"] += _rows(codes, work, listed, stack.api_url, quick, runners)
            result["load_panel"].append({"listed": listed, **_load_panel_row(REPO, work / f"after-{listed}", listed)})
    if not workdir and not os.environ.get("TECHNIC_BENCH_WORKDIR"):
        shutil.rmtree(work, ignore_errors=True)
    return result


def _commit(code: Path) -> str:
    """The short commit of a checkout, "+ changes" when its work tree differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=code, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + (" + changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def markdown(result: dict) -> str:
    lines = ["## What the user waits (process wall, fresh process)", "",
             "Wall = spawn to exit of a fresh process (imports, Prefect server, Ray start, flow, exit); flow = the "
             "flow's own stage timer (the scan's summary); peak RSS = largest process. 6,000 symbols scanned of the "
             "listed market. Stack = a local Prefect server already running (`make server`); without it a temporary "
             "one starts, or the one the previous scan kept is reused. Charts s = the flow's charts/report/alerts "
             "stage, after the table is published (run_scan's flow time includes it; `technic scan`'s flow time is "
             "read from latest.json, written before it).", ""]
    if result.get("commits"):
        lines += ["Code: " + ", ".join(f"{k} = {v}" for k, v in result["commits"].items()) + ", side by side in "
                  "one run.", ""]
    lines += ["| code | listed | path | stack | runner | wall s | flow s | load_panel s | charts s | peak RSS MB |",
              "|---|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        stages = r.get("stages", {})
        lines.append(f"| {r['code']} | {r['listed']:,} | {r['label']} | {'up' if r['stack'] else 'none'} | "
                     f"{r.get('runner', '?')} | {_num(r.get('wall_s'))} | {_num(r.get('flow_s'))} | "
                     f"{_num(stages.get('load_panel'))} | {_num(stages.get('charts_report_alerts'))} | "
                     f"{_num(r.get('peak_rss_mb'), 0)} |"
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
    parser.add_argument("--markets", default="8000,60000", help="listed symbols of the simulated markets")
    parser.add_argument("--no-runners", action="store_true", help="skip the rescore-per-runner rows")
    a = parser.parse_args()
    res = run(a.quick, a.before, a.workdir, tuple(int(m) for m in a.markets.split(",")), not a.no_runners)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    print(markdown(res))
