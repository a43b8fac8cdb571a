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


FORKED_CHARTS = """
import json, os, sys
from pathlib import Path
from tests.test_charts import make_panel, table
from technic_v4.domain.market_proxy import market_proxy
from technic_v4.pipeline import charts

panel = make_panel()
rows = table(panel, [f"S{i:02d}" for i in range(8)], "Long", 20.0)
out = Path(sys.argv[1])
ok = charts.render_charts(panel, market_proxy(panel), [("longs", rows)], out / "ok", top_n=8, simulated=False,
                          workers=2)
parent = os.getpid()
real_draw = charts.draw

def dies_in_a_child(*job):
    if os.getpid() != parent:
        os._exit(3)  # a chart process that crashes: its charts never arrive
    return real_draw(*job)

charts.draw, charts.CHART_DEADLINE_S = dies_in_a_child, 3.0
dead = charts.render_charts(panel, market_proxy(panel), [("longs", rows)], out / "dead", top_n=8, simulated=False,
                            workers=2)
print(json.dumps({name: {"workers": r.workers, "seconds": r.seconds,
                         "charts": {c.symbol: [c.title, c.path is not None, c.error] for c in r.charts}}
                  for name, r in (("ok", ok), ("dead", dead))}))
"""


def test_charts_are_drawn_in_a_forked_process_and_a_dead_one_is_reported(tmp_path):
    """In a fresh process (no Ray imported, so fork is allowed): the charts come from two forked processes with the
    titles and files this process would draw; processes that die leave their charts as errors within the deadline,
    and nothing is raised."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", FORKED_CHARTS, str(tmp_path)], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    panel = make_panel()
    rows = table(panel, [f"S{i:02d}" for i in range(8)], "Long", 20.0).to_dict("records")
    assert got["ok"]["workers"] == 2
    for row in rows:
        title, drawn, error = got["ok"]["charts"][row["Symbol"]]
        assert (title, drawn, error) == (chart_title(row, simulated=False), True, None)
        with Image.open(tmp_path / "ok" / f"{row['Symbol']}.png") as img:
            assert img.text["Title"] == title and img.size == (880, 528)
        title, drawn, error = got["dead"]["charts"][row["Symbol"]]
        assert not drawn and error.startswith("TimeoutError") and "3 s" in error
    assert 3 <= got["dead"]["seconds"] < 20


def test_no_chart_process_is_forked_beside_ray_and_the_charts_are_drawn_here(monkeypatch, tmp_path):
    import sys

    from technic_v4.pipeline import charts

    monkeypatch.setitem(sys.modules, "grpc", object())  # Ray's gRPC threads make fork unsafe
    assert charts.start_chart_pool(2) is None
    panel = make_panel()
    rows = table(panel, ["S00", "S01", "S02"], "Long", 20.0)
    report = charts.render_charts(panel, market_proxy(panel), [("longs", rows)], tmp_path, top_n=3, simulated=True)
    assert report.workers == 1 and [c.symbol for c in report.charts if c.path] == ["S00", "S01", "S02"]
    assert all(c.cpu_seconds > 0 for c in report.charts)  # drawn in this process's thread
