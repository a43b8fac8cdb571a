"""The panel indicators vs TA-Lib on real prices: every symbol of the S&P 500 fixture (tests/fixtures/sp500), 852
sessions with late listings, a spin-off, missing fields and bars that break the bar rules (TA-Lib sees the same valid
bars; a bar without a price is skipped by both, as a missing day)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib

from technic_v4.data.csvdir import bars_in_memory
from technic_v4.domain.indicators import ATR, EMA, MACD, RSI, SMA, Bars, Returns
from technic_v4.domain.panel import FIELDS, Panel

FIXTURE = Path(__file__).parent / "fixtures" / "sp500"


@pytest.fixture(scope="module")
def real():
    csv_bars, _ = bars_in_memory(FIXTURE)
    table = csv_bars.table()
    dates = np.sort(table["date"].unique()).astype("datetime64[D]")
    symbols = np.array(sorted(table["symbol"].unique()), dtype=object)
    t = np.searchsorted(dates, table["date"].to_numpy().astype("datetime64[D]"))
    n = np.searchsorted(symbols.astype(str), table["symbol"].to_numpy().astype(str))
    arrays = {}
    for f in FIELDS:
        a = np.full((len(dates), len(symbols)), np.nan)
        a[t, n] = table[f].to_numpy()
        arrays[f] = a
    panel = Panel(dates=dates, symbols=symbols, **arrays)
    return panel, Bars.from_panel(panel)


def talib_series(panel: Panel, j: int, fn, *fields, **kw):
    """TA-Lib on symbol j's valid bars (all four prices present), right-aligned to the panel's rows like Bars."""
    cols = {f: getattr(panel, f)[:, j] for f in FIELDS}
    ok = np.logical_and.reduce([np.isfinite(cols[f]) for f in ("open", "high", "low", "close")])
    out = fn(*(cols[f][ok] for f in fields), **kw)
    pad = np.full(len(ok) - ok.sum(), np.nan)
    return tuple(np.concatenate([pad, o]) for o in (out if isinstance(out, tuple) else (out,)))


def test_the_fixture_is_real_and_awkward(real):
    panel, _ = real
    assert panel.shape == (852, 40)
    listed = np.isfinite(panel.close).sum(axis=0)
    assert listed.min() == 32 and (listed < 852).sum() >= 6  # late starters
    assert np.isnan(panel.open[np.isfinite(panel.close)]).sum() == 3  # closes without an open (NFLX, WFM, WRK)


def test_every_indicator_matches_talib_on_every_real_series(real):
    panel, bars = real
    ours = {
        "SMA20": SMA(20).compute(bars), "SMA200": SMA(200).compute(bars), "EMA20": EMA(20).compute(bars),
        "RSI14": RSI(14).compute(bars)[0], "ATR14": ATR(14).compute(bars), "ROCR5": Returns(5).compute(bars) + 1,
    }
    macd = MACD(12, 26, 9).compute(bars)
    compared = 0
    for j, symbol in enumerate(panel.symbols):
        theirs = {
            "SMA20": talib_series(panel, j, talib.SMA, "close", timeperiod=20)[0],
            "SMA200": talib_series(panel, j, talib.SMA, "close", timeperiod=200)[0],
            "EMA20": talib_series(panel, j, talib.EMA, "close", timeperiod=20)[0],
            "RSI14": talib_series(panel, j, talib.RSI, "close", timeperiod=14)[0],
            "ATR14": talib_series(panel, j, talib.ATR, "high", "low", "close", timeperiod=14)[0],
            "ROCR5": talib_series(panel, j, talib.ROCR, "close", timeperiod=5)[0],
        }
        for name, expected in theirs.items():
            np.testing.assert_allclose(ours[name][:, j], expected, rtol=1e-9, atol=1e-9, equal_nan=True,
                                       err_msg=f"{symbol} {name}")
            compared += int(np.isfinite(expected).sum())
        for mine, expected in zip(macd, talib_series(panel, j, talib.MACD, "close", fastperiod=12, slowperiod=26,
                                                     signalperiod=9)):
            np.testing.assert_allclose(mine[:, j], expected, rtol=1e-9, atol=1e-9, equal_nan=True,
                                       err_msg=f"{symbol} MACD")
    assert compared > 150_000  # real values compared, not NaN against NaN
