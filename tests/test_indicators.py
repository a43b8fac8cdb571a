"""Indicators vs an independent per-series reference (plain loops over one symbol's valid bars) and vs TA-Lib.

The panel mixes the awkward cases: a full random walk, one with mid-series gaps (halts), a flat price, short
histories, a split-adjusted series, a late listing, a delisting and an all-NaN column. Valid-bar semantics: each
symbol's indicators equal the reference computed on its bars with the missing days removed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from technic_v4.domain.indicators import (
    ATR, CATALOGUE, EMA, MACD, RSI, SMA, AverageVolume, Bars, PctFromHigh, RealizedVolatility, Returns,
    compute_latest, required_history,
)
from technic_v4.domain.panel import Panel

T = 300


def random_bars(rng, n=T, start=50.0, vol=0.02, drift=0.0005):
    close = start * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = close * np.exp(rng.normal(0, vol / 3, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, vol, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, vol, n))
    volume = rng.lognormal(13, 0.5, n).round()
    return [open_, high, low, close, volume]


def build_cases(seed=7) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    nan = np.full(T, np.nan)
    cases = {"WALK": random_bars(rng), "TREND": random_bars(rng, drift=0.004, vol=0.01)}
    gaps = random_bars(rng)
    for f in gaps:
        f[[40, 41, 42, 150, 290, 297]] = np.nan  # halts, one near the end
    cases["GAPS"] = gaps
    cases["FLAT"] = [np.full(T, 20.0) for _ in range(4)] + [np.full(T, 1e5)]
    for n in (1, 10, 15, 27, 34, 60):  # below / at the minimum history of several indicators
        short = random_bars(rng, n)
        cases[f"SHORT{n}"] = [np.concatenate([np.full(T - n, np.nan), f]) for f in short]
    # A 4:1 split on bar 200: raw prices drop to a quarter there; the store back-adjusts the earlier bars.
    raw = random_bars(rng, start=400.0)
    cases["PRESPLIT"] = [f.copy() for f in raw]  # the same company as if it never split (same returns)
    for f in raw[:4]:
        f[200:] /= 4.0
    raw[4][200:] *= 4.0
    for f in raw[:4]:
        f[:200] /= 4.0
    raw[4][:200] *= 4.0
    cases["SPLIT"] = raw
    late = random_bars(rng)
    cases["LATE"] = [np.concatenate([np.full(100, np.nan), f[:200]]) for f in late]
    dead = random_bars(rng)
    cases["DELISTED"] = [np.concatenate([f[:250], np.full(50, np.nan)]) for f in dead]
    volume_gap = random_bars(rng)
    volume_gap[4][-5] = np.nan  # a valid price bar without volume
    cases["NOVOL"] = volume_gap
    cases["EMPTY"] = [nan.copy() for _ in range(5)]
    return cases


CASES = build_cases()
SYMBOLS = list(CASES)


def make_panel(cases=CASES) -> Panel:
    fields = {f: np.column_stack([cases[s][i] for s in cases]) for i, f in enumerate(("open", "high", "low", "close",
                                                                                           "volume"))}
    dates = np.datetime64("2023-01-02") + np.arange(T)
    return Panel(dates=dates, symbols=np.array(list(cases), dtype=object), **fields)


def valid_series(symbol):
    """The symbol's bars with missing days removed — what the reference functions see."""
    o, h, lo, c, v = CASES[symbol]
    ok = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
    return o[ok], h[ok], lo[ok], c[ok], v[ok]


# ---- independent references: textbook definitions, one series, plain loops -----------------------------------------


def ref_sma(x, n):
    return math.nan if len(x) < n else sum(x[-n:]) / n


def ref_ema(x, n):
    if len(x) < n:
        return math.nan
    k, value = 2 / (n + 1), sum(x[:n]) / n
    for price in x[n:]:
        value = price * k + value * (1 - k)
    return value


def ref_wilder(values, n):
    """Wilder smoothing: seed = mean of the first n values, then (prev·(n-1) + x) / n. Returns every value."""
    if len(values) < n:
        return []
    out = [sum(values[:n]) / n]
    for x in values[n:]:
        out.append((out[-1] * (n - 1) + x) / n)
    return out


def ref_rsi(c, n=14):
    changes = [c[i] - c[i - 1] for i in range(1, len(c))]
    gains = ref_wilder([max(d, 0.0) for d in changes], n)
    losses = ref_wilder([max(-d, 0.0) for d in changes], n)
    if not gains:
        return math.nan
    g, lo = gains[-1], losses[-1]
    return 0.0 if g + lo == 0 else 100 * g / (g + lo)


def ref_atr(h, lo, c, n=14):
    tr = [max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(c))]
    values = ref_wilder(tr, n)
    return values[-1] if values else math.nan


def ref_macd(c, fast=12, slow=26, signal=9):
    """Textbook MACD with TA-Lib's alignment: both EMAs start on bar slow-1, the fast one seeded with its last
    `fast` bars there; the signal line is an EMA of the MACD line seeded with the mean of its first `signal` values."""
    if len(c) < slow + signal - 1:
        return math.nan, math.nan, math.nan
    kf, ks = 2 / (fast + 1), 2 / (slow + 1)
    ef, es = sum(c[slow - fast:slow]) / fast, sum(c[:slow]) / slow
    line = [ef - es]
    for price in c[slow:]:
        ef, es = price * kf + ef * (1 - kf), price * ks + es * (1 - ks)
        line.append(ef - es)
    sig = ref_ema(line, signal)
    return line[-1], sig, line[-1] - sig


def ref_return(c, k):
    return math.nan if len(c) < k + 1 else c[-1] / c[-1 - k] - 1


def ref_realized_vol(c, n=20):
    if len(c) < n + 1:
        return math.nan
    r = [math.log(c[i] / c[i - 1]) for i in range(len(c) - n, len(c))]
    mean = sum(r) / n
    return math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1)) * math.sqrt(252)


def ref_latest(symbol) -> dict[str, float]:
    o, h, lo, c, v = valid_series(symbol)
    o, h, lo, c, v = (list(a) for a in (o, h, lo, c, v))
    n = len(c)
    spike = math.nan if n < 21 else v[-1] / (sum(v[-21:-1]) / 20)
    macd, sig, hist = ref_macd(c)
    atr = ref_atr(h, lo, c)
    return {
        "Close": c[-1] if n else math.nan,
        "Volume": v[-1] if n else math.nan,
        "AvgVolume20": ref_sma(v, 20),
        "DollarVolume20": ref_sma([a * b for a, b in zip(c, v)], 20),
        **{f"ret_{k}d": ref_return(c, k) for k in (1, 5, 21, 63)},
        "RSI14": ref_rsi(c) if n > 14 else math.nan,
        "ATR14": atr,
        "ATR14_pct": atr / c[-1] if n else math.nan,
        "SMA20": ref_sma(c, 20), "SMA50": ref_sma(c, 50), "SMA200": ref_sma(c, 200), "EMA20": ref_ema(c, 20),
        "MACD": macd, "MACD_signal": sig, "MACD_hist": hist,
        "pct_from_high20": math.nan if n < 20 else c[-1] / max(h[-20:]) - 1,
        "pct_from_52w_high": math.nan if n < 252 else c[-1] / max(h[-252:]) - 1,
        "vol_realized_20": ref_realized_vol(c),
        "vol_spike_ratio": spike,
        "gap_mean_10": math.nan if n < 11 else sum((o[i] - c[i - 1]) / c[i - 1] for i in range(n - 10, n)) / 10,
    }


@pytest.fixture(scope="module")
def latest():
    return compute_latest(make_panel())


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_latest_values_match_the_per_series_reference(latest, symbol):
    j = SYMBOLS.index(symbol)
    expected = ref_latest(symbol)
    for column, want in expected.items():
        got = latest[column][j]
        if math.isnan(want):
            assert math.isnan(got), f"{symbol} {column}: expected NaN (history too short), got {got}"
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"{symbol} {column}"


def test_short_histories_are_nan_exactly_below_each_minimum(latest):
    col = {n: SYMBOLS.index(f"SHORT{n}") for n in (1, 10, 15, 27, 34, 60)}
    assert np.isnan(latest["ret_1d"][col[1]]) and np.isfinite(latest["ret_1d"][col[10]])
    assert np.isnan(latest["RSI14"][col[10]]) and np.isfinite(latest["RSI14"][col[15]])  # RSI14 needs 15 bars
    assert np.isnan(latest["ATR14"][col[10]]) and np.isfinite(latest["ATR14"][col[15]])
    assert np.isnan(latest["MACD"][col[27]]) and np.isfinite(latest["MACD"][col[34]])  # 26 + 9 - 1
    assert np.isnan(latest["SMA50"][col[34]]) and np.isfinite(latest["SMA50"][col[60]])
    assert np.isnan(latest["pct_from_52w_high"][col[60]])


def test_all_nan_column_is_nan_everywhere_and_has_no_last_bar(latest):
    j = SYMBOLS.index("EMPTY")
    for key, values in latest.items():
        if key not in ("bars", "last_row"):
            assert np.isnan(values[j]), key
    assert latest["bars"][j] == 0 and latest["last_row"][j] == -1


def test_flat_prices_give_zero_rsi_and_atr_and_no_movement(latest):
    j = SYMBOLS.index("FLAT")
    assert latest["RSI14"][j] == 0.0  # TA-Lib's convention for no movement
    assert latest["rsi14_avg_gain"][j] == 0.0 and latest["rsi14_avg_loss"][j] == 0.0
    assert latest["ATR14"][j] == 0.0 and latest["MACD"][j] == 0.0 and latest["vol_realized_20"][j] == 0.0
    assert latest["pct_from_high20"][j] == 0.0 and latest["vol_spike_ratio"][j] == 1.0


def test_split_adjusted_series_scales_prices_and_keeps_ratios(latest):
    split, base = SYMBOLS.index("SPLIT"), SYMBOLS.index("PRESPLIT")
    for column in ("Close", "SMA20", "SMA200", "EMA20", "ATR14", "MACD"):
        assert latest[column][split] == pytest.approx(latest[column][base] / 4, rel=1e-9), column
    for column in ("ret_63d", "RSI14", "ATR14_pct", "pct_from_52w_high", "vol_realized_20", "gap_mean_10",
                   "vol_spike_ratio", "DollarVolume20"):
        assert latest[column][split] == pytest.approx(latest[column][base], rel=1e-9), column
    assert latest["AvgVolume20"][split] == pytest.approx(4 * latest["AvgVolume20"][base])


def test_gaps_and_delisting_use_each_symbols_last_valid_bar(latest):
    gaps, dead = SYMBOLS.index("GAPS"), SYMBOLS.index("DELISTED")
    assert latest["last_row"][gaps] == T - 1 and latest["bars"][gaps] == T - 6
    assert latest["last_row"][dead] == 249 and np.isfinite(latest["SMA200"][dead])
    novol = SYMBOLS.index("NOVOL")
    assert np.isnan(latest["AvgVolume20"][novol]) and np.isfinite(latest["SMA20"][novol])


# ---- full series vs TA-Lib on the compacted bars -------------------------------------------------------------------

TALIB_CASES = ["WALK", "GAPS", "FLAT", "SPLIT", "LATE", "DELISTED", "SHORT15", "SHORT34", "EMPTY"]


@pytest.fixture(scope="module")
def bars():
    return Bars.from_panel(make_panel())


def talib_on_valid(symbol, fn, *fields, **kw):
    """TA-Lib on the symbol's valid bars, right-aligned to T rows like Bars (NaN above)."""
    series = valid_series(symbol)
    idx = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}
    n = len(series[3])
    if n == 0:
        return (np.full(T, np.nan),)
    out = fn(*(series[idx[f]] for f in fields), **kw)
    out = out if isinstance(out, tuple) else (out,)
    return tuple(np.concatenate([np.full(T - n, np.nan), o]) for o in out)


@pytest.mark.parametrize("symbol", TALIB_CASES)
def test_recursive_and_window_series_match_talib(bars, symbol):
    j = SYMBOLS.index(symbol)
    checks = [
        (SMA(20).compute(bars), talib_on_valid(symbol, talib.SMA, "close", timeperiod=20)),
        (SMA(200).compute(bars), talib_on_valid(symbol, talib.SMA, "close", timeperiod=200)),
        (EMA(20).compute(bars), talib_on_valid(symbol, talib.EMA, "close", timeperiod=20)),
        (RSI(14).compute(bars)[0], talib_on_valid(symbol, talib.RSI, "close", timeperiod=14)),
        (ATR(14).compute(bars), talib_on_valid(symbol, talib.ATR, "high", "low", "close", timeperiod=14)),
        (Returns(5).compute(bars), talib_on_valid(symbol, talib.ROCR, "close", timeperiod=5)),
        (PctFromHigh(20).compute(bars), None),
    ]
    for ours, theirs in checks[:-2]:
        np.testing.assert_allclose(ours[:, j], theirs[0], rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=symbol)
    np.testing.assert_allclose(checks[-2][0][:, j] + 1, checks[-2][1][0], rtol=1e-9, equal_nan=True)
    macd = MACD(12, 26, 9).compute(bars)
    expected = talib_on_valid(symbol, talib.MACD, "close", fastperiod=12, slowperiod=26, signalperiod=9)
    for ours, theirs in zip(macd, expected if len(expected) == 3 else expected * 3):
        np.testing.assert_allclose(ours[:, j], theirs, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=symbol)


def test_latest_path_equals_last_row_of_the_series(bars):
    for ind in (EMA(20), RSI(14), ATR(14), MACD(), SMA(50), RealizedVolatility(20), AverageVolume(20)):
        series, last = ind.series(bars), ind.latest_values(bars)
        for s, value in zip(series if isinstance(series, tuple) else (series,), last if isinstance(last, tuple)
                            else (last,)):
            np.testing.assert_allclose(value, s[-1], rtol=1e-12, equal_nan=True, err_msg=repr(ind))


def test_compaction_is_independent_of_column_order_and_neighbours():
    panel = make_panel()
    whole = compute_latest(panel)
    order = np.arange(len(SYMBOLS))[::-1]
    part = compute_latest(panel.take_columns(order))
    for key in ("SMA200", "RSI14", "MACD", "ATR14"):
        np.testing.assert_allclose(part[key], whole[key][order], rtol=1e-12)  # summation order only


# ---- declaration and validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: SMA(1), ValueError, "period >= 2"),
        (lambda: EMA(0), ValueError, "period >= 2"),
        (lambda: RSI(14.0), TypeError, "must be an int"),
        (lambda: RSI(True), TypeError, "must be an int"),
        (lambda: MACD(26, 12), ValueError, "fast < slow"),
        (lambda: Returns(0), ValueError, "bars >= 1"),
        (lambda: SMA(20, input="adj_close"), ValueError, "not a panel field"),
        (lambda: RealizedVolatility(1), ValueError, "period >= 2"),
    ],
)
def test_parameters_are_validated_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_declarations_report_history_needs():
    assert SMA(200).lookback == 200 and RSI(14).min_bars == 15 and ATR(14).min_bars == 15
    assert MACD().min_bars == 34 and MACD().lookback > 34  # recursive: extra bars for the seed to fade
    assert EMA(20).lookback > EMA(20).min_bars == 20
    assert required_history() == max(260, *(ind.lookback for ind in CATALOGUE.values())) >= 253  # 52 weekly bars
    assert repr(MACD()) == "MACD(input=close, fast=12, slow=26, signal=9)" and MACD() == MACD(12, 26, 9)
