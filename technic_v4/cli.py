"""`technic` command line: scan, top, bench, config, blacklist, evaluate (typer + rich).

Imports are lazy: `technic scan` starts (or finds) the Prefect API before pandas, the flow and Prefect are imported,
so the server comes up while this process imports (technic_v4/startup.py, flows/prefect_api.py).
"""

from __future__ import annotations

import datetime as dt
import errno
import sys
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from technic_v4.errors import TechnicError

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="technic_v4: full-universe US stock scanner")


def make_console() -> Console:
    # piped output (make scan | tee, CI logs) gets a wide fixed width instead of 80 columns, so the table stays readable
    return Console() if sys.stdout.isatty() else Console(width=200)


console = make_console()

def results_table(df: pd.DataFrame, title: str, top: int, columns: list[str] | None = None) -> Table:
    """The trader's table: pipeline/report.top_table's columns (or a screen's) and rounding (the Prefect `scan-top`
    artifact's)."""
    from rich.table import Table

    from technic_v4.domain.scoring.score import LONG, SHORT, STRONG_LONG, STRONG_SHORT
    from technic_v4.pipeline.report import TOP_COLUMNS, top_table

    rows = top_table(df, top, columns)
    columns = list(rows[0]) if rows else [c for c in (columns or TOP_COLUMNS) if c in df]
    cells = [["" if v is None else (f"{v:.1f}" if k.endswith(" %") else f"{v:,.2f}") if isinstance(v, float)
              else str(v) for k, v in row.items()] for row in rows]
    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    for c, col in enumerate(columns):
        text = not rows or isinstance(rows[0][col], str)
        # one line per row; on a narrow terminal names are cut, never numbers
        width = None if text else max(len(col), *(len(r[c]) for r in cells))
        table.add_column(col, justify="left" if text else "right", no_wrap=True, min_width=width)
    style = {STRONG_LONG: "bold green", LONG: "green", SHORT: "red", STRONG_SHORT: "bold red"}
    for i, (row, line) in enumerate(zip(rows, cells), 1):
        table.add_row(str(i), *line, style=style.get(row.get("Signal"), ""))
    return table


@app.command()
def scan(
    max_symbols: int = typer.Option(6000, help="Most liquid N symbols considered"),
    source: Optional[str] = typer.Option(None, help="auto|polygon|flatfiles|csv|simulated"),
    csv_dir: Optional[str] = typer.Option(None, help="Folder of SYMBOL.csv[.gz] files (TECHNIC_CSV_DIR) for --source csv"),
    as_of: Optional[str] = typer.Option(None, help="YYYY-MM-DD (default: last completed session; csv: the files' last)"),
    intraday: bool = typer.Option(False, help="Add today's unfinished session (one snapshot call)"),
    runner: Optional[str] = typer.Option(None, help="auto|ray|thread (default TECHNIC_TASK_RUNNER, auto)"),
    workers: Optional[int] = typer.Option(None, help="Scoring chunks (default TECHNIC_MAX_WORKERS)"),
    watchlist: str = typer.Option("", help="Comma-separated symbols, always scored first"),
    signals: Optional[str] = typer.Option(None, help="Comma-separated signals to keep, e.g. 'Strong Long,Long'"),
    top: int = typer.Option(25, help="Rows to print"),
    where: Optional[str] = typer.Option(None, help="Screen expression, e.g. 'RSI14 < 30 and Close > SMA200'"),
    screen: Optional[list[str]] = typer.Option(None, help="Saved screen(s) to publish (repeat or comma-separate; "
                                                          "`technic screens` lists them)"),
    rating: Optional[str] = typer.Option(None, help="tech|learned (default tech; learned falls back to TechRating "
                                                     "without a model)"),
    plan_rule: Optional[str] = typer.Option(None, help="Trade plans: atr|structure (default: ScanConfig's)"),
    min_rr: Optional[float] = typer.Option(None, help="PlanOK needs RewardRisk >= this (default: ScanConfig's)"),
) -> None:
    """Run the Prefect flow `scan` and print the ranked table (or each screen's) and measured metrics."""
    import os

    # The terminal shows the progress bar, the table and the summary; Prefect's per-task INFO lines still reach the
    # API (the UI's run logs). An explicit setting wins.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    if where:  # a typo exits before any Prefect server starts (the parser imports neither numpy nor pandas)
        from technic_v4.pipeline.screens.model import valid_where

        _exit_on_bad_input(valid_where, where)
    api = _prepare_prefect_api()  # first: a server it has to start comes up while the rest imports
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )

    from technic_v4 import progress as progress_hooks
    from technic_v4.api import ScanConfig, run_scan_output

    def build():
        config = ScanConfig.build(
            max_symbols=max_symbols, data_source=source, as_of=dt.date.fromisoformat(as_of) if as_of else None,
            csv_dir=csv_dir,
            intraday=intraday, task_runner=runner, max_workers=workers, watchlist=watchlist,
            signals=[s.strip() for s in signals.split(",")] if signals else None, where=where, screens=screen,
            **({"rating": rating} if rating else {}),
            **_plan_options(plan_rule, min_rr),
        )
        _check_screens(config)
        return config

    config = _exit_on_bad_input(build)

    # ETA: on the free tier (5 requests/min) a cold backfill of 300 days takes about an hour
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("fetching trading days", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        progress_hooks.add_listener(on_progress)
        try:
            output = run_scan_output(config)
            df, msg = output.results, output.message
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            console.print(f"[red]scan failed:[/red] {cause}", markup=True, highlight=False)
            raise typer.Exit(1) from None
        finally:
            progress_hooks.remove_listener(on_progress)
    from technic_v4.pipeline.report import ranked_by

    label = " — SIMULATED DATA" if "SIMULATED" in msg else ""
    if not config.screens:
        title = f"Top {min(top, len(df))} of {len(df)} by {ranked_by(df)}" + (f" where {config.where}" if config.where else "")
        console.print(results_table(df, title + label, top))
    for name, info in output.summary.get("screens", {}).items():
        if config.screens:
            rows = output.screens[name]
            console.print(results_table(rows, f"Screen {name}: top {min(top, len(rows))} of {len(rows)} — "
                                              f"{info['where']}{label}", top, list(rows.columns)))
    console.print(msg, markup=False)  # the message is plain text: "[simulated source: …]" is not a style tag
    if api is not None:
        console.print(f"Prefect API: {api.how}" + (f" ({api.url})" if api.url else ""), style="dim")


def _check_screens(config) -> None:
    """Unknown saved screens fail here, before the scan starts."""
    from technic_v4.config import load_settings
    from technic_v4.pipeline.screens.model import resolve

    if config.screens:
        resolve(config.screens, config.data_dir or load_settings().data_dir)


@app.command()
def screens() -> None:
    """List the saved screens: the bundled presets and yours ($TECHNIC_DATA_DIR/screens.toml)."""
    from rich.table import Table

    from technic_v4.config import load_settings
    from technic_v4.pipeline.screens.model import catalogue, user_file

    data_dir = load_settings().data_dir
    table = Table(title="Saved screens (technic scan --screen NAME)", header_style="bold", show_lines=True)
    for col in ("name", "where", "sort", "description", "from"):
        table.add_column(col)
    for s in catalogue(data_dir).values():
        table.add_row(s.name, s.where, s.sort, s.description, s.source)
    console.print(table)
    console.print(f"your own screens: {user_file(data_dir)}" + ("" if user_file(data_dir).exists() else " (none yet)"),
                  style="dim", markup=False)


@app.command("top")
def top_cmd(n: int = typer.Option(25, help="Rows"), signal: Optional[str] = typer.Option(None),
            open_report: bool = typer.Option(False, "--open", help="Open the latest scan's report.html in a browser"),
            ) -> None:
    """Print the last published scan (its latest.csv, found through results/manifest.json) without scanning."""
    import json

    import pandas as pd

    from technic_v4.config import load_settings
    from technic_v4.pipeline.publish import CSV, SUMMARY, published_file, results_dir

    settings = load_settings()
    path = published_file(settings.data_dir, CSV)  # the manifest's run, checksum verified: never two scans mixed
    if path is None:
        console.print(f"no scan published yet under {results_dir(settings.data_dir)}; run `technic scan` first")
        raise typer.Exit(1)
    df = pd.read_csv(path)
    if signal:
        df = df[df["Signal"] == signal]
    meta = json.loads(published_file(settings.data_dir, SUMMARY).read_text())
    label = " — SIMULATED DATA" if meta.get("simulated") else ""
    console.print(results_table(df, f"Scan as of {meta.get('as_of')}{label}", n))
    from technic_v4.pipeline.report_html import run_folder

    report = run_folder(settings.data_dir, str(meta.get("flow_run_id"))) / "report.html"
    if report.exists():
        console.print(f"report: {report}", style="dim")
    if open_report:
        _open_in_browser(str(report))


def _open_in_browser(path: str | None) -> None:
    import webbrowser
    from pathlib import Path

    if not path or not Path(path).exists():
        console.print("the latest scan has no report.html (charts and report come with this version's scans)")
        raise typer.Exit(1)
    if not webbrowser.open(Path(path).as_uri()):
        console.print(f"no browser found here; open {Path(path).as_uri()}")


@app.command()
def chart(
    symbol: str = typer.Argument(..., help="Ticker, e.g. AAPL"),
    as_of: Optional[str] = typer.Option(None, help="YYYY-MM-DD session (default: the last stored)"),
    out: Optional[str] = typer.Option(None, help="PNG path (default: DATA_DIR/results/charts/SYMBOL-DATE.png)"),
    open_chart: bool = typer.Option(False, "--open", help="Open the PNG"),
) -> None:
    """Chart SYMBOL from the bar store: ~6 months of candles, SMA20/50/200, RS vs the market, and the trade plan of
    the scan published for that session when the symbol was in it."""
    from pathlib import Path

    from technic_v4.config import load_settings
    from technic_v4.pipeline.chart_symbol import chart_symbol
    from technic_v4.pipeline.publish import results_dir

    s = load_settings()
    day = dt.date.fromisoformat(as_of) if as_of else None
    sym = symbol.strip().upper()
    path = Path(out) if out else results_dir(s.data_dir) / "charts" / f"{sym}-{as_of or 'latest'}.png"
    try:
        result = chart_symbol(s.data_dir, sym, path, as_of=day, lock_timeout=s.lock_timeout)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{result.title}\n{result.path}", markup=False)
    if open_chart:
        _open_in_browser(str(result.path))


@app.command()
def bench(quick: bool = typer.Option(False, help="Smaller sizes, for a smoke run")) -> None:
    """Run the side-by-side benchmarks and regenerate docs/performance.md (the benchmarks/ package of this checkout)."""
    import subprocess

    # A separate process: the library never imports the benchmarks that measure it.
    raise typer.Exit(subprocess.call([sys.executable, "-m", "benchmarks.run", *(["--quick"] if quick else [])]))


@app.command()
def config() -> None:
    """Show the effective configuration (the API key is never shown)."""
    from rich.table import Table

    from technic_v4.config import Settings, load_settings

    s = load_settings()
    table = Table(title="technic_v4 settings", header_style="bold")
    for col in ("variable", "value", "meaning"):
        table.add_column(col)
    for name, field in Settings.model_fields.items():
        value = getattr(s, name)
        shown = ("set" if value else "not set") if name == "polygon_api_key" else str(value)
        if name == "alert_urls":
            shown = f"{len(s.alert_url_list())} URL(s) set" if value else "not set"
        table.add_row(field.validation_alias, shown, field.description or "")
    console.print(table)
    console.print(f"resolved data source: {s.resolved_source}")


@app.command()
def blacklist(clear: bool = typer.Option(False, help="Forget every low-volume streak")) -> None:
    """Show or clear the persisted low-volume blacklist, per scan configuration."""
    from technic_v4.config import load_settings
    from technic_v4.pipeline.state import ScanState
    from technic_v4.store.bar_store import BarStore

    s = load_settings()
    store = BarStore(s.data_dir, lock_timeout=s.lock_timeout)
    states = ScanState.load_all(store)
    if clear:
        for state in states:
            state.blacklist = {}
            state.save(store)
        console.print(f"cleared the low-volume streaks of {len(states)} scan configuration(s)")
        return
    if not states:
        console.print("no scan has run yet: no blacklist")
    for state in states:
        after = int(state.config.get("blacklist_after", 5))
        listed = state.blacklisted(after)
        shown = ", ".join(listed[:100]) + (f" … and {len(listed) - 100} more" if len(listed) > 100 else "")
        console.print(f"configuration {state.key} (max_symbols {state.config.get('max_symbols', '?')}): "
                      f"{len(listed)} symbols at or past {after} low-volume scans in a row: {shown}")


@app.command()
def evaluate(
    start: Optional[str] = typer.Option(None, help="First session YYYY-MM-DD (default: --sessions before end)"),
    end: Optional[str] = typer.Option(None, help="Last session YYYY-MM-DD (default: last completed session; csv: the "
                                      "files' last)"),
    sessions: int = typer.Option(250, help="Sessions evaluated when --start is not given"),
    max_symbols: int = typer.Option(6000, help="Most liquid N symbols per day, as the scan's"),
    horizons: Optional[str] = typer.Option(None, help="Forward-return horizons in sessions, e.g. 1,5,21,63 "
                                           "(default: EvalConfig's)"),
    source: Optional[str] = typer.Option(None, help="auto|polygon|flatfiles|csv|simulated"),
    csv_dir: Optional[str] = typer.Option(None, help="Folder of SYMBOL.csv[.gz] files (TECHNIC_CSV_DIR) for --source csv"),
    runner: Optional[str] = typer.Option(None, help="ray|thread (default TECHNIC_TASK_RUNNER)"),
    screen: Optional[list[str]] = typer.Option(None, help="Saved screen(s) to score (repeat or comma-separate)"),
    where: Optional[str] = typer.Option(None, help="An expression to score like a screen"),
    rating: Optional[str] = typer.Option(None, help="tech|learned: learned also fits the learned rating walk-forward "
                                                     "(monthly refits, saved under the data dir) and reports it"),
    plan_rule: Optional[str] = typer.Option(None, help="Trade-plan rule whose outcomes are measured: atr|structure"),
    min_rr: Optional[float] = typer.Option(None, help="PlanOK needs RewardRisk >= this"),
) -> None:
    """Walk-forward evaluation: did TechRating and the signals predict forward returns? (Prefect flow `evaluate`)
    With --screen: a scorecard per screen (members each day vs the universe and a random same-size basket)."""
    from technic_v4.evaluation import EvalConfig, run_evaluation

    def build():
        config = EvalConfig.build(
            start=dt.date.fromisoformat(start) if start else None, end=dt.date.fromisoformat(end) if end else None,
            sessions=sessions, max_symbols=max_symbols, data_source=source, task_runner=runner, csv_dir=csv_dir, screens=screen, where=where,
            **({"horizons": horizons} if horizons else {}), **_plan_options(plan_rule, min_rr),
            **({"rating": rating} if rating else {}),
        )
        _check_screens(config)
        return config

    config = _exit_on_bad_input(build)
    _, summary = run_evaluation(config)
    console.print(summary["message"], markup=False)


def user_error(exc: BaseException) -> str | None:
    """The message a user should read last for a failed command: the project's own error, or an OS error (a full
    disk: path, space needed and free) — also when it surfaces only as the cause or context of another one (a
    Prefect server that cannot record the failure on a full disk answers 500). None for anything else."""
    from technic_v4.store.atomic import write_error

    seen, chain, todo = set(), [], [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        todo += [e.__context__, e.__cause__]
    for e in chain:  # the project's errors first: they name the file or the setting
        if isinstance(e, TechnicError):
            return str(e)
    for e in chain:  # file-system errors only: one naming a file, or a full / read-only disk (not a refused socket)
        disk = isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
                                           or "No space left on device" in str(e))
        if isinstance(e, OSError) and (e.filename or disk):
            from technic_v4.config import load_settings

            where = e.filename or load_settings().data_dir
            return str(write_error(where, e, verb="use"))
    return None


def _plan_options(plan_rule: str | None, min_rr: float | None) -> dict:
    """The plan options given on the command line (absent ones keep the config's defaults)."""
    return {k: v for k, v in (("plan_rule", plan_rule), ("min_reward_risk", min_rr)) if v is not None}


def _exit_on_bad_input(check, *args):
    """check(*args), or the error printed and exit code 2 (bad input, nothing run)."""
    try:
        return check(*args)
    except (TechnicError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", markup=False)
        raise typer.Exit(2) from None


def _prepare_prefect_api():
    """The API found, or a temporary server starting while the rest imports (technic_v4/startup.py)."""
    from technic_v4.startup import prepare_prefect_api

    return prepare_prefect_api()


def main() -> None:
    from technic_v4.heap import tune_process

    tune_process()  # before Prefect's imports (technic_v4/heap.py)
    try:
        app()
    except (TechnicError, OSError) as exc:
        cause = user_error(exc)
        if cause is None:
            raise
        console.print(f"[red]error:[/red] {cause}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
