import numpy as np
import pandas as pd
import pytest

from technic_v4.pipeline.prescreen import (
    REASONS, PrescreenRules, avg_volume, details_candidates, last_valid, most_liquid, prescreen,
)
from technic_v4.domain.panel import Panel


def make_panel(closes: dict[str, float], volumes: dict[str, float], T: int = 30, holes: dict | None = None) -> Panel:
    syms = np.array(sorted(closes), dtype=object)
    close = np.tile([closes[s] for s in syms], (T, 1)).astype(float)
    vol = np.tile([volumes[s] for s in syms], (T, 1)).astype(float)
    for sym, rows in (holes or {}).items():
        j = list(syms).index(sym)
        close[rows, j] = np.nan
        vol[rows, j] = np.nan
    dates = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-01-01") + T)
    return Panel(dates=dates, symbols=syms, open=close, high=close, low=close, close=close, volume=vol)


def reference(rows: dict[str, tuple[float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"symbol": s, "name": s + " Inc", "sector": sec, "shares_outstanding": sh} for s, (sh, sec) in rows.items()]
    )


def test_each_rule_counts_exactly_one_reason_and_counts_add_up():
    closes = {"OK": 50, "CHEAP": 2, "SMALL": 10, "THIN": 100, "NOREF": 50, "YOUNG": 50, "HALT": 50, "TECH": 50}
    vols = {s: 5e6 for s in closes} | {"THIN": 1e5}
    ref = reference({
        "OK": (1e8, "Energy"), "CHEAP": (1e9, "Energy"), "SMALL": (1e7, "Energy"), "THIN": (1e8, "Energy"),
        "YOUNG": (1e8, "Energy"), "HALT": (1e8, "Energy"), "TECH": (1e8, "Information Technology"),
    })
    panel = make_panel(closes, vols, holes={"YOUNG": slice(0, 20), "HALT": slice(24, 30)})
    rules = PrescreenRules(min_market_cap=500e6, min_avg_volume=1e6, min_price=5.0, sectors=("Energy",))
    res = prescreen(panel, ref, rules)
    assert res.kept == ["OK"]
    assert res.counts == {
        "not_in_reference": 1, "short_history": 1, "stale": 1, "blacklisted": 0,
        "price_floor": 1, "market_cap_unknown": 0, "market_cap": 1, "avg_volume": 1, "sector": 1,
    }
    assert len(res.kept) + sum(res.counts.values()) == res.universe == len(closes)
    assert tuple(res.counts) == REASONS


def test_thresholds_are_inclusive():
    # market cap exactly 500M, avg volume exactly 1M, price exactly 5: all kept
    panel = make_panel({"EDGE": 5.0}, {"EDGE": 1e6})
    res = prescreen(panel, reference({"EDGE": (1e8, "Energy")}), PrescreenRules())
    assert res.kept == ["EDGE"]
    panel = make_panel({"EDGE": 4.99}, {"EDGE": 1e6})
    assert prescreen(panel, reference({"EDGE": (1e9, "Energy")}), PrescreenRules()).counts["price_floor"] == 1


def test_watchlist_and_index_etfs_skip_size_and_liquidity_rules():
    panel = make_panel({"SPY": 3.0, "TINY": 3.0, "OTHER": 3.0}, {"SPY": 10, "TINY": 10, "OTHER": 10})
    ref = reference({"SPY": (1, "ETF"), "TINY": (1, "Energy"), "OTHER": (1, "Energy")})
    res = prescreen(panel, ref, PrescreenRules(), always_keep=("TINY",))
    assert res.kept == ["SPY", "TINY"]
    assert res.counts["price_floor"] == 1


def test_blacklist_builds_up_blocks_and_resets():
    rules = PrescreenRules(blacklist_after=3)
    ref = reference({"THIN": (1e8, "Energy")})
    thin = make_panel({"THIN": 50}, {"THIN": 1e5})
    state: dict = {}
    for n in range(1, 4):
        res = prescreen(thin, ref, rules, blacklist=state)
        state = res.blacklist
        assert state == {"THIN": n}
    res = prescreen(thin, ref, rules, blacklist=state)
    assert res.counts["blacklisted"] == 1 and res.counts["avg_volume"] == 0
    liquid = make_panel({"THIN": 50}, {"THIN": 5e6})
    res = prescreen(liquid, ref, rules, blacklist=res.blacklist)
    assert res.counts["blacklisted"] == 1  # blacklisted today; the liquid day resets the streak for the next scan
    assert res.blacklist == {}
    assert prescreen(liquid, ref, rules, blacklist=res.blacklist).kept == ["THIN"]


def test_helpers_ignore_nan_holes():
    panel = make_panel({"A": 10.0}, {"A": 2e6}, holes={"A": slice(27, 30)})
    assert last_valid(panel.close)[0] == 10.0
    assert avg_volume(panel)[0] == pytest.approx(2e6)
    all_nan = np.full((5, 1), np.nan)
    assert np.isnan(last_valid(all_nan)[0])


def test_most_liquid_keeps_top_n_by_dollar_volume_plus_protected():
    closes = {"A": 10.0, "B": 20.0, "C": 30.0, "QQQ": 1.0, "W": 1.0}
    vols = {"A": 1e6, "B": 1e6, "C": 1e6, "QQQ": 1.0, "W": 1.0}
    panel = make_panel(closes, vols)
    keep = panel.symbols[most_liquid(panel, 2, protected=["W"])]
    assert sorted(keep) == ["B", "C", "QQQ", "W"]


def test_unknown_market_cap_is_kept_and_flagged_not_dropped_as_market_cap():
    closes = {"KNOWN": 50, "PENDING": 50, "PENDING_THIN": 50, "SMALL": 50}
    vols = {"KNOWN": 5e6, "PENDING": 5e6, "PENDING_THIN": 1e5, "SMALL": 5e6}
    ref = reference({"KNOWN": (1e8, "Energy"), "PENDING": (np.nan, "Energy"), "PENDING_THIN": (np.nan, "Energy"),
                     "SMALL": (1e6, "Energy")})
    res = prescreen(make_panel(closes, vols), ref, PrescreenRules())
    assert res.kept == ["KNOWN", "PENDING"]  # 5e6 x 50 = 250M for SMALL: too small; PENDING: unknown, kept
    assert res.counts["market_cap"] == 1 and res.counts["avg_volume"] == 1 and res.counts["market_cap_unknown"] == 0
    assert res.flagged == {"market_cap_unknown": 1}  # the thin one failed avg volume: not counted as flagged
    assert res.as_dict()["kept_flagged"] == {"market_cap_unknown": 1}
    assert len(res.kept) + sum(res.counts.values()) == res.universe

    dropped = prescreen(make_panel(closes, vols), ref, PrescreenRules(unknown_market_cap="drop"))
    assert dropped.kept == ["KNOWN"]
    assert dropped.counts["market_cap_unknown"] == 2 and dropped.counts["market_cap"] == 1
    assert dropped.flagged == {"market_cap_unknown": 0}


def test_details_candidates_are_the_liquid_symbols_bars_alone_keep_ranked_by_dollar_volume():
    closes = {"BIG": 100, "MID": 20, "CHEAP": 2, "THIN": 50, "YOUNG": 50, "SPY": 400}
    vols = {"BIG": 5e6, "MID": 8e6, "CHEAP": 9e8, "THIN": 1e5, "YOUNG": 5e6, "SPY": 10}
    panel = make_panel(closes, vols, holes={"YOUNG": slice(0, 20)})
    got = details_candidates(panel, PrescreenRules(), max_symbols=100)
    assert list(got.index) == ["BIG", "MID", "SPY"]  # CHEAP: price floor, THIN: volume, YOUNG: 10 bars; SPY protected
    assert got["BIG"] == pytest.approx(5e8) and got["MID"] == pytest.approx(1.6e8)
    assert list(details_candidates(panel, PrescreenRules(), max_symbols=1).index) == ["SPY"]  # CHEAP is most liquid
