"""The per-screen scorecard against figures computed directly with pandas on a hand-built evaluation frame."""

import numpy as np
import pandas as pd
import pytest

from technic_v4.errors import ConfigError
from technic_v4.pipeline.evaluation.config import EvalConfig
from technic_v4.pipeline.evaluation.scorecard import screen_scorecard, with_reference_columns
from technic_v4.pipeline.evaluation.stats import newey_west_t
from technic_v4.pipeline.screens.model import Screen, with_screens


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(3)
    days, names = pd.bdate_range("2024-01-01", periods=60), [f"S{i:03d}" for i in range(120)]
    frame = pd.DataFrame([(d, s) for d in days for s in names], columns=["Date", "Symbol"])
    n = len(frame)
    frame["RSI14"] = rng.uniform(0, 100, n)
    frame["Signal"] = pd.Categorical(rng.choice(["Long", "Avoid", "Short"], n))
    # low RSI gets a small forward edge, so the screen has something to find
    for h in (1, 5):
        frame[f"fwd_ret_{h}d"] = rng.normal(0, 0.02, n) + np.where(frame["RSI14"] < 30, 0.004, 0.0)
    frame.loc[frame.sample(frac=0.05, random_state=1).index, "fwd_ret_5d"] = np.nan
    return frame


def test_figures_match_a_direct_computation(scores):
    card = screen_scorecard(scores, Screen(name="low", where="RSI14 < 30"), (1, 5), seed=4)
    member = scores["RSI14"] < 30
    per_day = member.groupby(scores["Date"]).sum()
    assert card["member_rows"] == member.sum() and card["days"] == 60
    assert card["members_per_day"]["mean"] == pytest.approx(per_day.mean())
    assert card["members_per_day"]["max"] == per_day.max()
    for h in (1, 5):
        r = scores[f"fwd_ret_{h}d"]
        ok = r.notna()
        universe = r[ok].groupby(scores["Date"][ok]).mean()
        mem = r[ok & member].groupby(scores["Date"][ok & member]).mean()
        excess = (mem - universe.loc[mem.index]).to_numpy()
        got = card["horizons"][h]
        assert got["member_rows"] == (ok & member).sum()
        assert got["excess"]["mean"] == pytest.approx(excess.mean())
        assert got["excess"]["t"] == pytest.approx(newey_west_t(excess, h - 1))
        assert got["hit_rate"] == pytest.approx((r[ok & member] > 0).mean())
        assert got["member_mean"] == pytest.approx(mem.mean())
    assert card["horizons"][1]["excess"]["t"] > 2  # the planted edge is found
    # turnover: share of each day's members that were not members the day before
    sets = [set(g["Symbol"]) for _, g in scores[member].groupby("Date")]
    expected = np.mean([len(b - a) / len(b) for a, b in zip(sets, sets[1:])])
    assert card["turnover"]["new_member_share"] == pytest.approx(expected)


def test_random_basket_is_the_same_size_and_no_skill(scores):
    # a screen selecting every row: the random basket of the same size is the whole universe, excess exactly 0
    card = screen_scorecard(scores, Screen(name="all", where="RSI14 >= 0"), (1,), seed=0)
    h = card["horizons"][1]
    assert h["excess"]["mean"] == pytest.approx(0, abs=1e-15)
    assert h["control_excess"]["mean"] == pytest.approx(0, abs=1e-15)
    # a no-edge screen (RSI14 > 60 has no planted edge) vs its control: neither distinguishable, both near 0
    card = screen_scorecard(scores, Screen(name="hi", where="RSI14 > 60"), (1,), seed=0)
    h = card["horizons"][1]
    assert abs(h["control_excess"]["t"]) < 3 and abs(h["control_excess"]["mean"]) < 0.003
    again = screen_scorecard(scores, Screen(name="hi", where="RSI14 > 60"), (1,), seed=0)
    assert again["horizons"][1]["control_excess"] == h["control_excess"]  # seeded


def test_random_ranks_are_uniform_permutations_within_each_day():
    from technic_v4.pipeline.evaluation.scorecard import random_ranks

    day = np.repeat(np.arange(4), [5, 1, 3, 7])[np.random.default_rng(0).permutation(16)]
    draws = random_ranks(day, 400, np.random.default_rng(1))
    for ranks in draws[:5]:
        for d, n in enumerate([5, 1, 3, 7]):
            assert sorted(ranks[day == d]) == list(range(1, n + 1))
    first = np.array([r[day == 3] for r in draws])  # each of the 7 rows of day 3 is rank 1 about 1/7 of the time
    assert np.allclose((first == 1).mean(axis=0), 1 / 7, atol=0.06)


def test_signals_of_the_screen_apply(scores):
    card = screen_scorecard(scores, Screen(name="low", where="RSI14 < 30", signals=["Long"]), (1,))
    assert card["member_rows"] == ((scores["RSI14"] < 30) & (scores["Signal"] == "Long")).sum()


def test_columns_the_history_lacks_are_a_clear_error(scores):
    with pytest.raises(ConfigError, match=r"screen 'rs'.*\['RS_rating'\].*history"):
        screen_scorecard(scores, Screen(name="rs", where="RS_rating >= 90 and RSI14 > 50"), (1,))


def test_reference_columns_join_by_symbol(scores):
    ref = pd.DataFrame({"symbol": [f"S{i:03d}" for i in range(120)], "sector": ["Energy", "Technology"] * 60})
    joined = with_reference_columns(scores, ref, ["Sector", "RSI14"])
    assert (joined["Sector"].astype(str) == np.where(scores["Symbol"].str[1:].astype(int) % 2, "Technology",
                                                     "Energy")).all()
    card = screen_scorecard(joined, Screen(name="en", where="Sector == 'Energy'"), (1,))
    assert card["member_rows"] == len(scores) // 2


def test_evaluate_flow_parameter_merges_into_the_config():
    config = with_screens(EvalConfig(), "oversold-uptrend, rs-leaders")
    assert config.screens == ["oversold-uptrend", "rs-leaders"]
    assert with_screens(EvalConfig(screens=["breakouts"]), None) == EvalConfig(screens=["breakouts"])
    with pytest.raises(ConfigError, match="where"):
        EvalConfig.build(where="RSI14 <")


@pytest.mark.slow  # a cold backfill of ~340 simulated sessions, an evaluation and a scan: ~1 min
def test_evaluate_flow_scorecard_members_are_the_scans_members(prefect_api, tmp_path, monkeypatch):
    """Through the flow's `screen` parameter: the scorecard's members on a day are exactly what a scan as of that
    day selects with the same screen (point in time), and every preset is either scored or named as lacking columns."""
    import datetime as dt

    from technic_v4.aio import run_sync
    from technic_v4.api import run_scan_output
    from technic_v4.pipeline.scan_config import ScanConfig

    from flows.evaluate import evaluate

    for k, v in {"TECHNIC_DATA_DIR": str(tmp_path / "data"), "TECHNIC_DATA_SOURCE": "simulated",
                 "TECHNIC_SIM_SYMBOLS": "1500", "TECHNIC_TASK_RUNNER": "thread"}.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "screens.toml").write_text('[hot]\nwhere = "RSI14 > 60 and Close > SMA50"\n')
    config = EvalConfig.build(start=dt.date(2025, 8, 1), end=dt.date(2025, 8, 29), max_symbols=500)
    out = run_sync(lambda: evaluate(config=config, screen="hot"))
    card = out.summary["scorecards"]["hot"]
    scores = out.scores
    assert card["member_rows"] == ((scores["RSI14"] > 60) & (scores["Close"] > scores["SMA50"])).sum() > 50
    assert set(card["horizons"]) == set(config.horizons) and "screen hot" in out.message
    day = dt.date(2025, 8, 15)
    scan = run_scan_output(ScanConfig.build(as_of=day, max_symbols=500, reuse_scores=False, screens=["hot"]))
    scanned = set(scan.screens["hot"]["Symbol"])
    on_day = scores[scores["Date"] == np.datetime64(day)]
    evaluated = set(on_day.loc[(on_day["RSI14"] > 60) & (on_day["Close"] > on_day["SMA50"]), "Symbol"].astype(str))
    both = set(scan.results["Symbol"]) & set(on_day["Symbol"].astype(str))  # the same universe (delisted aside)
    assert len(both) > 300 and scanned & both == evaluated & both
