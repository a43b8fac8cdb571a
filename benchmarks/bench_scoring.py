"""Scoring kernel benchmark: `score_panel` on a whole panel vs per-symbol loops of the same indicators.

    python -m benchmarks.bench_scoring [--quick]

Everything is measured in this run on this machine (time.perf_counter, best of several repeats; memory with
tracemalloc, which sees numpy's buffers). The per-symbol pandas loop is slow, so it is timed on a sample of symbols and
scaled linearly to the full universe — labelled "scaled" wherever it appears. The panel is synthetic (random walks with
late listings, halts and delistings), not the simulated market, so this module depends on nothing but the engine.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

from technic_v4.domain.regime import SIDEWAYS, Regime
from technic_v4.domain.scoring.score import score_panel
from technic_v4.domain.panel import FIELDS, Panel

BARS = 300
TARGET_S, SCALE_TARGET = 0.3, 12.0


def synthetic_panel(n_symbols: int, n_bars: int = BARS, seed: int = 0) -> Panel:
    """Random-walk OHLCV; 5 % listed late, 1 % delisted, 2 % with a 3-day halt — the compaction has real work."""
    rng = np.random.default_rng(seed)
    shape = (n_bars, n_symbols)
    close = rng.lognormal(3.5, 1.0, n_symbols) * np.exp(np.cumsum(rng.normal(0.0003, 0.02, shape), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.006, shape))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.015, shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.015, shape))
    volume = rng.lognormal(13, 1.0, shape)
    missing = np.zeros(shape, dtype=bool)
    rows = np.arange(n_bars)[:, None]
    late = rng.random(n_symbols) < 0.05
    missing |= late & (rows < rng.integers(1, n_bars, n_symbols))
    dead = rng.random(n_symbols) < 0.01
    missing |= dead & (rows > rng.integers(200, n_bars, n_symbols))
    halted = rng.random(n_symbols) < 0.02
    halt_at = rng.integers(0, n_bars - 3, n_symbols)
    missing |= halted & (rows >= halt_at) & (rows < halt_at + 3)
    arrays = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    for a in arrays.values():
        a[missing] = np.nan
    symbols = np.array([f"S{i:06d}" for i in range(n_symbols)], dtype=object)
    return Panel(dates=np.datetime64("2024-01-02") + np.arange(n_bars), symbols=symbols, **arrays)


def reference_for(panel: Panel) -> pd.DataFrame:
    n = len(panel.symbols)
    return pd.DataFrame({"symbol": panel.symbols, "name": "x", "sector": "s", "industry": "i",
                         "shares_outstanding": np.full(n, 1e8)})


def best_of(fn, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


# ---- baselines: the same indicators, one symbol at a time ------------------------------------------------------------


def pandas_one_symbol(df: pd.DataFrame) -> dict:
    """The textbook per-symbol pandas version (rolling/ewm on the symbol's valid bars)."""
    df = df.dropna(subset=["open", "high", "low", "close"])
    c, h, lo, o, v = df["close"], df["high"], df["low"], df["open"], df["volume"]
    prev = c.shift()
    change = c.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-change.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    macd = c.ewm(span=12, adjust=False).mean() - c.ewm(span=26, adjust=False).mean()
    signal = macd.ewm(span=9, adjust=False).mean()
    logret = np.log(c).diff()
    return {
        **{f"ret_{k}": c.pct_change(k).iloc[-1] for k in (1, 5, 21, 63)},
        "rsi": (100 * gain / (gain + loss)).iloc[-1],
        "atr": tr.ewm(alpha=1 / 14, adjust=False).mean().iloc[-1],
        **{f"sma{k}": c.rolling(k).mean().iloc[-1] for k in (20, 50, 200)},
        "ema20": c.ewm(span=20, adjust=False).mean().iloc[-1],
        "macd": macd.iloc[-1], "signal": signal.iloc[-1],
        "high20": (c / h.rolling(20).max() - 1).iloc[-1], "high252": (c / h.rolling(252).max() - 1).iloc[-1],
        "vol20": logret.rolling(20).std().iloc[-1] * np.sqrt(252),
        "avgvol": v.rolling(20).mean().iloc[-1], "dollar": (c * v).rolling(20).mean().iloc[-1],
        "spike": (v / v.shift().rolling(20).mean()).iloc[-1],
        "gap": ((o - prev) / prev).rolling(10).mean().iloc[-1],
    }


def talib_one_symbol(o, h, lo, c, v) -> dict:
    import talib

    ok = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
    o, h, lo, c, v = o[ok], h[ok], lo[ok], c[ok], v[ok]
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    return {
        **{f"ret_{k}": talib.ROCR(c, k)[-1] - 1 if len(c) else np.nan for k in (1, 5, 21, 63)},
        "rsi": talib.RSI(c, 14)[-1], "atr": talib.ATR(h, lo, c, 14)[-1],
        **{f"sma{k}": talib.SMA(c, k)[-1] for k in (20, 50, 200)},
        "ema20": talib.EMA(c, 20)[-1], "macd": macd[-1], "signal": signal[-1],
        "high20": c[-1] / talib.MAX(h, 20)[-1] - 1, "high252": c[-1] / talib.MAX(h, 252)[-1] - 1,
        "vol20": talib.STDDEV(np.diff(np.log(c)), 20)[-1] if len(c) > 20 else np.nan,
        "avgvol": talib.SMA(v, 20)[-1], "dollar": talib.SMA(c * v, 20)[-1],
    }


def time_pandas_loop(panel: Panel, sample: int) -> float:
    cols = np.linspace(0, len(panel.symbols) - 1, sample).astype(int)
    frames = [pd.DataFrame({f: getattr(panel, f)[:, j] for f in FIELDS}) for j in cols]  # not timed: data prep
    t0 = time.perf_counter()
    for df in frames:
        pandas_one_symbol(df)
    return time.perf_counter() - t0


def time_talib_loop(panel: Panel) -> float:
    cols = [tuple(np.ascontiguousarray(getattr(panel, f)[:, j]) for f in FIELDS) for j in range(len(panel.symbols))]
    t0 = time.perf_counter()
    for series in cols:
        talib_one_symbol(*series)
    return time.perf_counter() - t0


def peak_memory_mb(panel: Panel, reference: pd.DataFrame, regime: Regime) -> float:
    """Peak Python/numpy allocation during one score_panel call, above what existed before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    score_panel(panel, reference, regime)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - before) / 2**20


def time_large_panel(n_symbols: int, regime: Regime, repeat: int) -> tuple[float, list[float]]:
    """score_panel on a bigger synthetic panel (warmed up once, as the small one), best of `repeat`."""
    panel = synthetic_panel(n_symbols, seed=1)
    reference = reference_for(panel)
    score_panel(panel, reference, regime)
    return best_of(lambda: score_panel(panel, reference, regime), repeat)


def targets(n_small: int, small: float, n_large: int, scale: float) -> list[dict]:
    limit = SCALE_TARGET * n_large / 60_000
    return [
        {"target": f"score_panel {n_small:,} x {BARS} <= {TARGET_S} s", "value": small, "pass": small <= TARGET_S},
        {"target": f"{n_large:,} symbols <= {limit:g}x the {n_small:,} time", "value": scale, "pass": scale <= limit},
    ]


def run(quick: bool = False) -> dict:
    regime = Regime(trend=SIDEWAYS)
    repeat = 3 if quick else 7
    n_small, n_large = 6_000, (20_000 if quick else 60_000)
    sample = 100 if quick else 300

    panel = synthetic_panel(n_small)
    reference = reference_for(panel)
    t0 = time.perf_counter()
    frame = score_panel(panel, reference, regime)
    first_call = time.perf_counter() - t0
    small, small_runs = best_of(lambda: score_panel(panel, reference, regime), repeat)
    pandas_sample = time_pandas_loop(panel, sample)
    pandas_scaled = pandas_sample * n_small / sample
    talib_loop = time_talib_loop(panel)
    memory = peak_memory_mb(panel, reference, regime)
    counts = frame["Signal"].value_counts().to_dict()

    large, large_runs = time_large_panel(n_large, regime, max(2, repeat // 2))
    scale = large / small
    return {
        "bars": BARS,
        "symbols": n_small,
        "score_panel_s": small,
        "score_panel_runs_s": small_runs,
        "score_panel_first_call_s": first_call,
        "pandas_loop_sample_symbols": sample,
        "pandas_loop_sample_s": pandas_sample,
        "pandas_loop_scaled_s": pandas_scaled,
        "talib_loop_s": talib_loop,
        "speedup_vs_pandas_scaled": pandas_scaled / small,
        "speedup_vs_talib_loop": talib_loop / small,
        "large_symbols": n_large,
        "large_score_panel_s": large,
        "large_runs_s": large_runs,
        "large_over_small": scale,
        "large_size_ratio": n_large / n_small,
        "peak_memory_mb_6000": memory,
        "signals_6000": counts,
        "targets": targets(n_small, small, n_large, scale),
        "quick": quick,
    }


def markdown(result: dict) -> str:
    r = result
    lines = [
        "## Scoring kernel",
        "",
        f"`score_panel` (all indicators, sub-scores, signals, trade plans, result frame) on a synthetic panel of "
        f"{r['symbols']:,} symbols × {r['bars']} bars with late listings, halts and delistings; best of "
        f"{len(r['score_panel_runs_s'])} runs in one process"
        + (" (quick mode)" if r.get("quick") else "") + ".",
        "",
        "| what | seconds | vs score_panel |",
        "|---|---:|---:|",
        f"| score_panel, {r['symbols']:,} symbols (best) | {r['score_panel_s']:.3f} | 1x |",
        f"| score_panel, first call in the process (cold memory) | {r['score_panel_first_call_s']:.3f} | "
        f"{r['score_panel_first_call_s'] / r['score_panel_s']:.1f}x |",
        f"| per-symbol pandas loop, **scaled** from {r['pandas_loop_sample_symbols']} symbols "
        f"({r['pandas_loop_sample_s']:.2f} s measured) | {r['pandas_loop_scaled_s']:.2f} | "
        f"{r['speedup_vs_pandas_scaled']:.0f}x slower |",
        f"| per-symbol TA-Lib loop, all {r['symbols']:,} symbols | {r['talib_loop_s']:.2f} | "
        f"{r['speedup_vs_talib_loop']:.1f}x slower |",
        f"| score_panel, {r['large_symbols']:,} symbols (best) | {r['large_score_panel_s']:.3f} | "
        f"{r['large_over_small']:.1f}x ({r['large_size_ratio']:.0f}x the symbols) |",
        "",
        f"Peak memory allocated during one {r['symbols']:,}-symbol call (tracemalloc): "
        f"{r['peak_memory_mb_6000']:.0f} MB. Signals on the random panel: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["signals_6000"].items())) + ".",
        "",
        "The TA-Lib loop computes fewer outputs (no scores, no frame) and is the fastest per-symbol baseline.",
        "",
    ]
    for t in r["targets"]:
        lines.append(f"- {t['target']}: {t['value']:.3f} — {'pass' if t['pass'] else 'MISSED'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(run(quick="--quick" in sys.argv)))
