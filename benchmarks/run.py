"""Run every benchmark and regenerate docs/performance.{md,json}, the plots and README's performance block.

    python -m benchmarks.run [--quick] [--out-dir DIR] [--no-readme]      (also `make bench`, `technic bench`)

Modules: bench_fetch (async vs sync, grouped-daily vs per-symbol backfill), bench_scoring (panel kernel vs
per-symbol baselines), bench_columns (what the pattern flags, RS and weekly columns add), bench_scan (full-universe
scans on a real Prefect server, thread vs Ray, worker sweep), bench_user_wait (wall time of whole fresh `technic scan` /
`run_scan` processes), bench_deployment (a deployment run on the local stack, created -> COMPLETED) and
bench_evaluate (walk-forward evaluation, 6,000 symbols x 500 sessions, thread vs Ray).
Each exposes `run(quick) -> dict` and `markdown(result) -> str`. A module that is missing or raises is skipped with
its error recorded in the json and shown in the markdown; the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from benchmarks.doc_blocks import (  # noqa: E402
    CACHE_MARKERS,
    README_MARKERS,
    cache_block,
    performance_md,
    readme_block,
    update_block,
)
from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.plots import PLOTS  # noqa: E402
from benchmarks.util import REPO  # noqa: E402

MODULES = [  # (name in the report, module with run(quick) -> dict and markdown(result) -> str), in run order
    ("fetch", "benchmarks.bench_fetch"),
    ("scoring", "benchmarks.bench_scoring"),
    ("columns", "benchmarks.bench_columns"),  # what the flags, RS and weekly columns add to the score stage
    ("scan", "benchmarks.bench_scan"),
    ("user_wait", "benchmarks.bench_user_wait"),  # process wall of technic scan / run_scan, fresh processes
    ("evaluate", "benchmarks.bench_evaluate"),
    ("screens", "benchmarks.bench_screens"),  # a where over 6,000 rows; five screens vs one published
    ("deployment", "benchmarks.bench_deployment"),  # a deployment run on make server's stack, created -> COMPLETED
]
DOCS = REPO / "docs"
README = REPO / "README.md"


def _run_module(name: str, module: str, quick: bool) -> tuple[dict, str]:
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a missing/broken module is reported, not fatal
        err = f"{type(exc).__name__}: {exc}"
        return {"error": err, "skipped": True, "seconds": 0.0}, f"## {name}\n\n_Skipped: `{module}` could not be imported ({err})._\n"
    try:
        result = mod.run(quick=quick)
    except Exception as exc:  # noqa: BLE001
        err = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc(limit=8)
        print(f"[bench] {module} failed: {err}\n{tb}", file=sys.stderr, flush=True)
        return ({"error": err, "traceback": tb, "skipped": True, "seconds": round(time.perf_counter() - t0, 1)},
                f"## {name}\n\n_Skipped: `{module}.run()` raised {err}._\n")
    result = dict(result) if isinstance(result, dict) else {"value": result}
    result.setdefault("seconds", round(time.perf_counter() - t0, 1))
    try:
        md = mod.markdown(result)
    except Exception as exc:  # noqa: BLE001
        md = f"## {name}\n\n_markdown() failed: {type(exc).__name__}: {exc}_\n"
        result["markdown_error"] = f"{type(exc).__name__}: {exc}"
    return result, md


# ---- run and render -----------------------------------------------------------------------------------------------


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except Exception:  # noqa: BLE001
        pass
    return str(o)


def main(quick: bool = False, out_dir: str | Path | None = None, update_readme_block: bool | None = None,
         modules: list[str] | None = None) -> dict:
    """Run the benchmarks, write performance.json / performance.md / two PNGs into `out_dir` (default docs/).

    README.md's perf block is rewritten only when writing to the default docs/ (unless told otherwise).
    """
    out = Path(out_dir) if out_dir is not None else DOCS
    out.mkdir(parents=True, exist_ok=True)
    if update_readme_block is None:
        update_readme_block = out.resolve() == DOCS.resolve()
    started = time.perf_counter()
    report: dict = {"machine": machine_info(), "quick": quick, "modules": {}, "plots": []}
    if modules:  # --only: the other modules keep their last measured results instead of vanishing from the docs
        report["modules"] = {n: r for n, r in _previous_modules(out).items() if n not in modules}
        report["rerun_only"] = sorted(modules)
    for name, module in MODULES:
        if modules and name not in modules:
            continue
        print(f"[bench] {module} (quick={quick}) ...", flush=True)
        t0 = time.perf_counter()
        result, _md = _run_module(name, module, quick)
        print(f"[bench] {module} done in {time.perf_counter() - t0:.1f} s", flush=True)
        report["modules"][name] = {**result, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    report["modules"] = {n: report["modules"][n] for n, _ in MODULES if n in report["modules"]}
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return render(report, out, update_readme_block)


def _previous_modules(out: Path) -> dict:
    try:
        return json.loads((out / "performance.json").read_text()).get("modules", {})
    except (OSError, ValueError):
        return {}


def _module_markdown(name: str, result: dict) -> str:
    if result.get("error"):
        return f"## {name}\n\n_Skipped: {result['error']}._\n"
    mod = importlib.import_module(dict(MODULES)[name])
    return mod.markdown(result)


def _write_plots(report: dict, out: Path) -> None:
    """The scan benchmark's two figures; a plot that fails is recorded in `plot_errors`, not raised."""
    report["plots"] = []
    scan = report["modules"].get("scan", {})
    for fn, fname in PLOTS:
        try:
            p = fn(scan, out / fname) if not scan.get("error") else None
        except Exception as exc:  # noqa: BLE001
            report.setdefault("plot_errors", []).append(f"{fname}: {type(exc).__name__}: {exc}")
            p = None
        if p is not None:
            report["plots"].append(str(p))


def _update_cache_doc(report: dict, out: Path) -> str:
    cache_doc = out / "cache-strategy.md"
    if out.resolve() != DOCS.resolve() and (DOCS / "cache-strategy.md").exists() and not cache_doc.exists():
        cache_doc.write_text((DOCS / "cache-strategy.md").read_text())  # a copy, so a test run leaves docs/ alone
    return update_block(cache_doc, *CACHE_MARKERS, cache_block(report))


def render(report: dict, out: Path, update_readme_block: bool, sections: list[str] | None = None) -> dict:
    """Write plots, performance.md/json, README's block and cache-strategy's figures from a measured `report`.

    `python -m benchmarks.run --render-only` re-renders from docs/performance.json without measuring anything.
    """
    if sections is None:
        sections = [_module_markdown(n, r) for n, r in report["modules"].items()]
    _write_plots(report, out)
    report["readme"] = (update_block(README, *README_MARKERS, readme_block(report)) if update_readme_block
                        else "not touched (output outside docs/)")
    report["cache_doc"] = _update_cache_doc(report, out)
    (out / "performance.md").write_text(performance_md(report, sections))
    (out / "performance.json").write_text(json.dumps(report, indent=1, default=_json_default))
    print(f"[bench] wrote {out / 'performance.md'}, {out / 'performance.json'} ({report['total_seconds']:.0f} s); "
          f"README: {report['readme']}", flush=True)
    return report


def _cli(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes: a ~3 minute smoke run")
    p.add_argument("--out-dir", default=None, help="where to write (default: docs/)")
    p.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    p.add_argument("--only", action="append", choices=[n for n, _ in MODULES], help="run only this module (repeatable)")
    p.add_argument("--render-only", action="store_true", help="re-render the docs from OUT_DIR/performance.json")
    a = p.parse_args(argv)
    if a.render_only:
        out = Path(a.out_dir) if a.out_dir else DOCS
        report = json.loads((out / "performance.json").read_text())
        render(report, out, not a.no_readme and out.resolve() == DOCS.resolve())
        return
    main(quick=a.quick, out_dir=a.out_dir, update_readme_block=False if a.no_readme else None, modules=a.only)


if __name__ == "__main__":
    _cli()
