"""Charts of a scan's top rows: ~6 months of daily candles with volume, SMA20/50/200, the trade plan's Entry/Stop/
Target lines, the pattern flags that fired on the last bar and the RS line against the market.

matplotlib's object API (a Figure per thread, the Agg canvas, no pyplot state), drawn side by side in forked
processes (render_charts); measured against mplfinance on this box (see README "Seeing and being told"): the same
chart drawn with collections costs a fraction of mplfinance's per-chart time, which matters for the 3 s budget of 12
charts.
Each PNG carries its title in its metadata ("Title"), so a reader (or a test) can tell which row it shows.
"""

from __future__ import annotations

import base64
import io
import math
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from technic_v4.domain.indicators.base import Bars
from technic_v4.domain.indicators.patterns import FLAG_COLUMNS
from technic_v4.domain.indicators.trend import SMA
from technic_v4.domain.market_proxy import MarketProxy
from technic_v4.domain.panel import Panel
from technic_v4.store.atomic import atomic_write

CHART_SESSIONS = 126  # ~6 months of daily bars
SMA_PERIODS = (20, 50, 200)
CHART_DPI = 80
CHART_SIZE_IN = (11.0, 6.6)  # 880 x 528 px at CHART_DPI: readable in the report, small enough to inline
# The pattern flags drawn when they fired (their one home: domain/indicators/patterns.py); absent columns are skipped.
PATTERN_FLAGS = ("trend_template", *FLAG_COLUMNS)
UP, DOWN = "#2e7d32", "#c62828"
PLAN_STYLE = {"Entry": ("#1565c0", "-"), "Stop": ("#c62828", "--"), "Target": ("#2e7d32", "--")}
SMA_COLORS = {20: "#f9a825", 50: "#6a1b9a", 200: "#37474f"}
CHART_WORKERS = min(4, os.cpu_count() or 1)  # forked processes that draw a scan's charts
CHART_DEADLINE_S = 60.0  # 12 charts take ~1 s; a process silent this long is stuck, and its charts are reported


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's valid bars for a chart (oldest first) with its SMAs and RS line over the same sessions."""

    symbol: str
    dates: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    sma: dict[int, np.ndarray]
    rs: np.ndarray  # close / market close, 100 at the first charted session; NaN without a market reading
    market_source: str


@dataclass
class ChartResult:
    symbol: str
    title: str
    path: Path | None = None
    error: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this chart's thread CPU time: what it costs when the box is not shared
    thumbnail: str | None = None  # a small PNG data URI for the Prefect artifact (thumbnail_data_uri)
    tables: list[str] = field(default_factory=list)  # the published tables whose top rows include this symbol


@dataclass
class ChartsReport:
    charts: list[ChartResult]
    seconds: float = 0.0
    workers: int = 1
    folder: Path | None = None

    @property
    def failures(self) -> list[ChartResult]:
        return [c for c in self.charts if c.error]

    def for_table(self, name: str) -> list[ChartResult]:
        return [c for c in self.charts if name in c.tables and c.path is not None]

    def as_dict(self) -> dict:
        return {"charts": len(self.charts) - len(self.failures), "failed": {c.symbol: c.error for c in self.failures},
                "seconds": round(self.seconds, 3), "cpu_seconds": round(sum(c.cpu_seconds for c in self.charts), 3),
                "workers": self.workers,
                "folder": str(self.folder) if self.folder else None}


def symbol_bars(panel: Panel, symbol: str, market: MarketProxy, sessions: int = CHART_SESSIONS) -> SymbolBars:
    """The last `sessions` valid bars of `symbol`; SMAs computed on all its valid bars first (as the scan's are)."""
    col = panel.column(symbol)
    o, h, low, c, v = (getattr(panel, f)[:, col] for f in ("open", "high", "low", "close", "volume"))
    valid = np.isfinite(o) & np.isfinite(h) & np.isfinite(low) & np.isfinite(c)
    if not valid.any():
        raise ValueError(f"{symbol} has no bars in the loaded window")
    bars = Bars.from_arrays(*(a[valid, None] for a in (o, h, low, c, v)))
    sma = {p: SMA(p).series(bars)[:, 0] for p in SMA_PERIODS}
    keep = slice(-sessions, None)
    mkt = np.asarray(market.close, dtype=float)[valid][keep]
    closes = c[valid][keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = closes / mkt
    first = np.flatnonzero(np.isfinite(ratio))
    rs = ratio / ratio[first[0]] * 100.0 if first.size else np.full(len(ratio), np.nan)
    return SymbolBars(symbol=symbol, dates=panel.dates[valid][keep], open=o[valid][keep], high=h[valid][keep],
                      low=low[valid][keep], close=closes, volume=v[valid][keep],
                      sma={p: s[keep] for p, s in sma.items()}, rs=rs, market_source=market.source)


def _num(row: Mapping, key: str) -> float:
    v = row.get(key)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def chart_title(row: Mapping, simulated: bool) -> str:
    """"TWDS · Strong Long · TechRating 31.4 · R/R 1.50 · 2026-12-02 · SIMULATED" (parts the row lacks are left out)."""
    parts = [str(row.get("Symbol", "?"))]
    if row.get("Signal"):
        parts.append(str(row["Signal"]))
    if math.isfinite(rating := _num(row, "TechRating")):
        parts.append(f"TechRating {rating:.1f}")
    if math.isfinite(rr := _num(row, "RewardRisk")):
        parts.append(f"R/R {rr:.2f}")
    as_of = row.get("AsOf")
    if as_of is not None and not pd.isna(as_of):
        parts.append(str(pd.Timestamp(as_of).date()))
    if simulated:
        parts.append("SIMULATED")
    return " · ".join(parts)


def fired_flags(row: Mapping) -> list[str]:
    return [f for f in PATTERN_FLAGS if f in row and row[f] is not None and not pd.isna(row[f]) and bool(row[f])]


def _boxes(x: np.ndarray, bottom: np.ndarray, top: np.ndarray, width: float) -> np.ndarray:
    """(n, 4, 2) rectangle vertices for a PolyCollection: one collection draws every candle body / volume bar."""
    left, right = x - width / 2, x + width / 2
    return np.stack([np.column_stack([left, bottom]), np.column_stack([left, top]),
                     np.column_stack([right, top]), np.column_stack([right, bottom])], axis=1)


def render_chart(bars: SymbolBars, row: Mapping, path: Path, simulated: bool) -> str:
    """Draw one chart into `path` (PNG, written atomically); returns its title."""
    from matplotlib.collections import LineCollection, PolyCollection

    title = chart_title(row, simulated)
    fig, ax, vol_ax, rs_ax = _blank_figure()
    n = len(bars.close)
    x = np.arange(n, dtype=float)
    up = bars.close >= bars.open
    colors = np.where(up, UP, DOWN)
    ax.add_collection(LineCollection(np.stack([np.column_stack([x, bars.low]), np.column_stack([x, bars.high])],
                                              axis=1), colors=colors, linewidths=0.8))
    body_lo, body_hi = np.minimum(bars.open, bars.close), np.maximum(bars.open, bars.close)
    body_hi = np.maximum(body_hi, body_lo + (bars.high.max() - bars.low.min()) * 1e-3)  # doji: a visible sliver
    ax.add_collection(PolyCollection(_boxes(x, body_lo, body_hi, 0.6), facecolors=colors, edgecolors=colors,
                                     linewidths=0.5))
    for i, (p, s) in enumerate(bars.sma.items()):
        if np.isfinite(s).any():
            ax.plot(x, s, color=SMA_COLORS[p], linewidth=1.1)
            # a text per line instead of a legend box: the legend cost a tenth of a chart (profiled)
            ax.text(0.01 + 0.07 * i, 0.02, f"SMA{p}", transform=ax.transAxes, fontsize=7, color=SMA_COLORS[p])
    lo, hi = float(np.nanmin(bars.low)), float(np.nanmax(bars.high))
    for name, (color, style) in PLAN_STYLE.items():
        level = _num(row, name)
        if math.isfinite(level) and level > 0:
            ax.axhline(level, color=color, linestyle=style, linewidth=1.0)
            ax.annotate(f"{name} {level:,.2f}", xy=(1.0, level), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=8, color=color)
            lo, hi = min(lo, level), max(hi, level)
    pad = (hi - lo) * 0.04 or hi * 0.01 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-1, n + 0.5)
    if flags := fired_flags(row):
        ax.plot([x[-1]], [bars.high[-1] + pad * 0.6], marker="v", color="#ef6c00", markersize=7)
        ax.text(0.01, 0.97, "patterns: " + ", ".join(flags), transform=ax.transAxes, va="top", fontsize=8,
                color="#ef6c00", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_title(title, fontsize=11, loc="left", y=1.0)
    if name := row.get("Name"):
        ax.set_title(str(name)[:40], fontsize=8, loc="right", color="#555555", y=1.0)
    vol = np.nan_to_num(bars.volume)
    vol_ax.add_collection(PolyCollection(_boxes(x, np.zeros(n), vol, 0.6), facecolors=colors, alpha=0.6,
                                         linewidths=0))
    vol_ax.set_ylim(0, max(vol.max(), 1.0) * 1.1)
    rs_ax.plot(x, bars.rs, color="#0277bd", linewidth=1.0)
    rs_ax.axhline(100, color="#999999", linewidth=0.6)
    market = "SPY" if bars.market_source == "SPY" else "market"
    rs_ax.set_ylabel(f"RS vs {market}", fontsize=7)
    if bars.market_source not in ("SPY", "none"):
        rs_ax.text(0.01, 0.9, f"market = {bars.market_source}", transform=rs_ax.transAxes, fontsize=6, va="top")
    rs_ax.relim()
    rs_ax.autoscale_view(scalex=False)
    ticks = _month_ticks(bars.dates)
    rs_ax.set_xticks(ticks, [str(bars.dates[i])[:7] for i in ticks])
    # zlib level 3: a third of level 6's encoding time for files ~10 % larger (encoding releases the GIL)
    atomic_write(path, lambda p: fig.savefig(p, format="png", metadata={"Title": title},
                                             pil_kwargs={"compress_level": 3}))
    return title


_THREAD = threading.local()


def _blank_figure():
    """This thread's figure with its three axes, emptied of the last chart's artists. Building a figure, its axes
    and their tick objects was the largest cost of a chart (profiled), so each thread builds one and reuses it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    made = getattr(_THREAD, "figure", None)
    if made is None:
        fig = Figure(figsize=CHART_SIZE_IN, dpi=CHART_DPI)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(3, 1, height_ratios=(5, 1.3, 1.3), hspace=0.06, left=0.06, right=0.9, top=0.93,
                                bottom=0.07)
        ax = fig.add_subplot(grid[0])
        vol_ax = fig.add_subplot(grid[1], sharex=ax)
        rs_ax = fig.add_subplot(grid[2], sharex=ax)
        for a, count in ((ax, 6), (vol_ax, 2), (rs_ax, 2)):  # few ticks: tick objects are costly
            a.yaxis.set_major_locator(MaxNLocator(count))
            a.tick_params(labelsize=7)
        for a in (ax, vol_ax):
            a.tick_params(labelbottom=False)
        for a in (vol_ax, rs_ax):
            a.yaxis.tick_right()
        ax.grid(alpha=0.25, axis="y")
        vol_ax.yaxis.set_major_formatter(FuncFormatter(_short_number))
        vol_ax.set_ylabel("volume", fontsize=7)
        # Fixed title and axis-label places: matplotlib otherwise measures every tick label's box on each draw to
        # move them clear of the ticks (a fifth of a chart's time, profiled); nothing here sits in their way.
        for a in (ax, vol_ax, rs_ax):
            a.xaxis.set_label_coords(0.5, -0.1)
            a.yaxis.set_label_coords(-0.012, 0.5)
        made = _THREAD.figure = (fig, ax, vol_ax, rs_ax)
    for a in made[1:]:
        for artist in [*a.lines, *a.collections, *a.texts, *a.patches]:
            artist.remove()
        for loc in ("left", "right"):
            a.set_title("", loc=loc, y=1.0)
    return made


def prepare() -> None:
    """Import matplotlib and draw one tiny figure (fonts loaded): ~1.5 s on a busy box that a scan can spend in a
    background thread while it fetches, instead of inside the chart stage."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PolyCollection  # noqa: F401 - imported for later
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=CHART_DPI)
    canvas = FigureCanvasAgg(fig)
    fig.add_subplot().set_title("warm", fontsize=8)
    canvas.draw()


def _short_number(v, _pos=None) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.0f}{unit}"
    return f"{v:.0f}"


def _month_ticks(dates: np.ndarray) -> list[int]:
    months = pd.DatetimeIndex(dates).to_period("M")
    return [i for i in range(len(months)) if i == 0 or months[i] != months[i - 1]][1:] or [0]


def chart_file(folder: Path, symbol: str) -> Path:
    """One file per symbol: a symbol in two screens' top rows is drawn once."""
    safe = "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in symbol)
    return Path(folder) / f"{safe}.png"


def top_rows(tables: Sequence[tuple[str, pd.DataFrame]], n: int) -> dict[str, tuple[dict, list[str]]]:
    """symbol -> (its row, the tables it is in the top `n` of), in the order the tables list them."""
    rows: dict[str, tuple[dict, list[str]]] = {}
    for name, table in tables:
        for row in table.head(n).to_dict("records"):
            sym = str(row["Symbol"])
            rows.setdefault(sym, (row, []))[1].append(name)
    return rows


def render_charts(panel: Panel, market: MarketProxy, tables: Sequence[tuple[str, pd.DataFrame]], folder: Path, *,
                  top_n: int, simulated: bool, workers: int = CHART_WORKERS, pool=None) -> ChartsReport:
    """Charts for the top `top_n` rows of each (name, table), drawn by `pool` (start_chart_pool; a scan starts it
    early) or by a pool of `workers` processes forked now, or in this thread when no process may be forked. The pool
    is used up: closed here. A chart that fails, or that a process does not deliver within CHART_DEADLINE_S, is
    reported in its ChartResult.error and never raises."""
    started = time.perf_counter()
    wanted = top_rows(tables, top_n) if top_n > 0 else {}
    if pool is None and wanted:
        pool = start_chart_pool(min(workers, len(wanted)))
    charts, jobs, stuck = [], [], False
    try:
        for sym, (row, names) in wanted.items():
            result = ChartResult(symbol=sym, title=chart_title(row, simulated), tables=names)
            charts.append(result)
            try:
                job = (symbol_bars(panel, sym, market), row, chart_file(folder, sym), simulated)
            except Exception as exc:  # noqa: BLE001 - a chart is never worth a failed scan; reported instead
                result.error = f"{type(exc).__name__}: {exc}"
                continue
            jobs.append((result, job, pool.submit(job) if pool is not None else None))
        deadline = time.monotonic() + CHART_DEADLINE_S
        for result, job, answer in jobs:
            stuck |= _deliver(result, job, answer, deadline)
    finally:
        if pool is not None:
            pool.close(terminate=stuck)  # a process that did not answer in time is not waited for
    return ChartsReport(charts=charts, seconds=time.perf_counter() - started,
                        workers=pool.processes if pool is not None else 1, folder=Path(folder))


class ChartPool:
    """`processes` forked processes that draw charts, each importing matplotlib (prepare) as it starts.
    matplotlib holds the GIL while it draws (two threads measured slower than one), so parallel means processes; a
    scan forks them when it starts, so the imports run on another core while it fetches, and the scan's own process
    never imports matplotlib."""

    def __init__(self, processes: int):
        self.processes, self.closed = processes, False
        self._pool = mp.get_context("fork").Pool(processes, initializer=prepare)

    def submit(self, job: tuple):
        return self._pool.apply_async(draw, job)

    def close(self, terminate: bool = False) -> None:
        """Let the processes finish what they were given and exit (or stop them at once); waits for them. Once."""
        if not self.closed:
            self.closed = True
            self._pool.terminate() if terminate else self._pool.close()
            self._pool.join()


def start_chart_pool(workers: int = CHART_WORKERS) -> ChartPool | None:
    """A ChartPool, or None when no process may be forked: fork is POSIX-only and unsafe once Ray's gRPC threads
    live in the process; then the charts are drawn in the caller's thread."""
    if workers < 1 or "fork" not in mp.get_all_start_methods() or {"ray", "grpc"} & sys.modules.keys():
        return None
    return ChartPool(workers)


def draw(bars: SymbolBars, row: Mapping, path: Path, simulated: bool) -> tuple[str, str, float, float]:
    """One chart and its thumbnail: (title, thumbnail data URI, wall seconds, CPU seconds of the drawing thread)."""
    t0, cpu0 = time.perf_counter(), time.thread_time()
    title = render_chart(bars, row, path, simulated)
    return title, thumbnail_data_uri(path), time.perf_counter() - t0, time.thread_time() - cpu0


def thumbnail_data_uri(path: Path, width: int = 640, colors: int = 128) -> str:
    """A smaller copy for places that store every run's images (the Prefect artifact in the server's database):
    640 px wide with a 128-colour palette, a quarter of the chart file's bytes (20 vs 83 KB). The fast octree palette
    takes 13 ms a chart against 33 ms for the default median cut, and reads the same."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").resize((width, round(img.height * width / img.width)), Image.BILINEAR)
    buf = io.BytesIO()
    small.quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(buf, format="PNG", compress_level=3)
    return png_data_uri(buf.getvalue())


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:` URI: how the report and the Prefect artifact inline a chart (no file, no network)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _deliver(result: ChartResult, job: tuple, answer, deadline: float) -> bool:
    """Fill `result` from its process's `answer` (waiting until `deadline`), or draw it here when there is none.
    True when the process did not answer in time."""
    try:
        got = draw(*job) if answer is None else answer.get(max(0.0, deadline - time.monotonic()))
        result.title, result.thumbnail, result.seconds, result.cpu_seconds = got
        result.path = job[2]
    except mp.TimeoutError:
        result.error = f"TimeoutError: no chart from its process within {CHART_DEADLINE_S:.0f} s"
        return True
    except Exception as exc:  # noqa: BLE001 - a chart is never worth a failed scan; reported instead
        result.error = f"{type(exc).__name__}: {exc}"
    return False
