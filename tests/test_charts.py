"""Charts of the top rows: one PNG per symbol, its title (kept in the PNG's metadata) names its row, a failure is
reported and never raised; `technic chart SYMBOL` draws any stored symbol with the published plan."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from technic_v4.domain.market_proxy import market_proxy
from technic_v4.domain.panel import Panel
from technic_v4.pipeline.charts import CHART_SESSIONS, chart_title, render_charts, symbol_bars


def make_panel(n_symbols=24, sessions=300, seed=3) -> Panel:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2025-01-02", periods=sessions).values.astype("datetime64[D]")
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (sessions, n_symbols)), axis=0))
    opens = close * (1 + rng.normal(0, 0.006, close.shape))
    close[100:104, 1] = np.nan  # a halt: the chart skips the missing sessions
    opens[100:104, 1] = np.nan
    return Panel(dates=dates, symbols=np.array([f"S{i:02d}" for i in range(n_symbols)], dtype=object), open=opens,
                 high=np.fmax(opens, close) * 1.01, low=np.fmin(opens, close) * 0.99, close=close,
                 volume=rng.uniform(1e6, 4e6, close.shape))


def table(panel: Panel, symbols, signal: str, rating0: float) -> pd.DataFrame:
    last = {s: panel.close[-1, panel.column(s)] for s in symbols}
    return pd.DataFrame({"Symbol": symbols, "Signal": signal, "TechRating": rating0 - np.arange(len(symbols)),
                         "RewardRisk": 1.5, "Entry": [last[s] for s in symbols],
                         "Stop": [last[s] * 0.93 for s in symbols], "Target": [last[s] * 1.1 for s in symbols],
                         "AsOf": pd.Timestamp(panel.dates[-1]), "breakout": [i % 2 == 0 for i in range(len(symbols))]})


def test_top_rows_of_each_table_are_charted_once_with_their_titles(tmp_path):
    panel = make_panel()
    longs = table(panel, ["S00", "S01", "S02", "S03", "S04"], "Long", 20.0)
    shorts = table(panel, ["S03", "S09", "S10"], "Short", -18.0)  # S03 in both tables
    shorts = pd.concat([shorts, shorts.tail(1).assign(Symbol="NOPE")], ignore_index=True)  # NOPE has no bars
    report = render_charts(panel, market_proxy(panel), [("longs", longs), ("shorts", shorts)], tmp_path,
                           top_n=4, simulated=True, workers=2)
    drawn = {c.symbol: c for c in report.charts if c.path}
    assert sorted(drawn) == ["S00", "S01", "S02", "S03", "S09", "S10"]  # top 4 of each, S03 drawn once
    assert drawn["S03"].tables == ["longs", "shorts"]
    assert [c.symbol for c in report.failures] == ["NOPE"] and "NOPE" in report.failures[0].error
    rows = {r["Symbol"]: r for t in (longs, shorts) for r in t.to_dict("records")}  # the first row wins for S03
    rows["S03"] = longs.set_index("Symbol").loc["S03"].to_dict() | {"Symbol": "S03"}
    for sym, chart in drawn.items():
        assert chart.path.stat().st_size > 20_000
        with Image.open(chart.path) as img:
            assert img.size == (880, 528)
            title = img.text["Title"]
        assert title == chart.title == chart_title(rows[sym], simulated=True)
        assert title.startswith(f"{sym} · {rows[sym]['Signal']} · TechRating {rows[sym]['TechRating']:.1f} · R/R 1.50")
        assert title.endswith("SIMULATED")
    assert [c.symbol for c in report.for_table("shorts")] == ["S03", "S09", "S10"]


def test_chart_series_skip_missing_sessions_and_average_valid_bars():
    panel = make_panel()
    bars = symbol_bars(panel, "S01", market_proxy(panel))
    valid = np.isfinite(panel.close[:, 1])
    closes = pd.Series(panel.close[valid, 1])
    assert len(bars.close) == CHART_SESSIONS and np.isfinite(bars.close).all()
    for period in (20, 50, 200):
        expected = closes.rolling(period).mean().to_numpy()[-CHART_SESSIONS:]
        np.testing.assert_allclose(bars.sma[period], expected, rtol=1e-12)
    market = market_proxy(panel).close[valid][-CHART_SESSIONS:]
    rs = bars.close / market
    np.testing.assert_allclose(bars.rs, rs / rs[0] * 100)
    assert bars.rs[0] == pytest.approx(100.0)


def test_title_leaves_out_what_the_row_lacks():
    assert chart_title({"Symbol": "AAPL"}, simulated=False) == "AAPL"
    assert chart_title({"Symbol": "X", "Signal": "Long", "TechRating": float("nan")}, simulated=True) == \
        "X · Long · SIMULATED"
