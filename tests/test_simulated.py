"""The simulated market: deterministic, stable when extended, realistic enough for prescreen and scoring."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_v4.data.columns import DAY_COLUMNS, INDEX_ETFS, REFERENCE_COLUMNS
from technic_v4.data.simulated import SimulatedMarket, SimulatedSource

END = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(seed=11, n_symbols=600, end=END)


def test_same_seed_same_bars_and_extension_keeps_history(market):
    day = market.sessions[-5]
    again = SimulatedMarket(seed=11, n_symbols=600, end=END).day(day)
    longer = SimulatedMarket(seed=11, n_symbols=600, end=END + dt.timedelta(days=30)).day(day)
    pd.testing.assert_frame_equal(market.day(day), again)
    pd.testing.assert_frame_equal(market.day(day), longer)
    other = SimulatedMarket(seed=12, n_symbols=600, end=END).day(day)
    assert not np.allclose(other["close"].to_numpy()[:50], market.day(day)["close"].to_numpy()[:50])


def test_sessions_follow_xnys_and_holidays_are_empty(market):
    assert dt.date(2025, 1, 1) not in market.sessions  # New Year's Day
    assert dt.date(2025, 1, 9) not in market.sessions  # national day of mourning (Carter), a real XNYS closure
    assert market.day(dt.date(2025, 1, 9)).empty
    assert market.day(dt.date(2025, 6, 28)).empty  # Saturday
    assert list(market.day(dt.date(2025, 6, 28)).columns) == list(DAY_COLUMNS)
    assert market.day(END + dt.timedelta(days=3)).empty  # after the market's last session


def test_default_universe_is_large_with_sectors_and_etfs():
    m = SimulatedMarket(end=END)  # the embedded default: seed 7, 8,000 stocks ever listed
    ref = m.reference()
    assert len(m.symbols) == 8000 + len(INDEX_ETFS)
    assert len(ref) >= 7000 and set(INDEX_ETFS) <= set(ref["symbol"])
    assert list(ref.columns[: len(REFERENCE_COLUMNS)]) == list(REFERENCE_COLUMNS)
    stocks = ref[ref["type"] != "ETF"]
    assert stocks["sector"].nunique() == 11 and stocks["industry"].nunique() > 40
    cap = stocks["shares_outstanding"] * m.day(END).set_index("symbol")["close"].reindex(stocks["symbol"]).to_numpy()
    share_big = float(np.mean(cap >= 500e6))
    assert 0.3 < share_big < 0.9, share_big  # prescreen has real work on both sides of the cap floor


def test_bars_are_consistent_ohlcv(market):
    df = pd.concat([market.day(d) for d in market.sessions[-40:]])
    assert (df[["open", "high", "low", "close"]] > 0).all().all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1) - 1e-9).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1) + 1e-9).all()
    assert (df["volume"] >= 0).all()
    assert all(market.day(d)["symbol"].is_unique for d in market.sessions[-3:])


def test_split_changes_raw_prices_and_shares_but_not_adjusted(market):
    splits = market.splits()
    assert len(splits) > 0
    s = splits.iloc[len(splits) // 2]
    day = s["execution_date"].date()
    t = market.sessions.index(day)
    before, after = market.sessions[t - 1], day
    raw = market.ticker_range(s["symbol"], before, after).set_index("date")["close"]
    adj = market.ticker_range(s["symbol"], before, after, adjusted=True).set_index("date")["close"]
    ratio = s["split_to"] / s["split_from"]
    assert raw.iloc[0] / raw.iloc[1] == pytest.approx(ratio * adj.iloc[0] / adj.iloc[1], rel=1e-3)
    assert 0.5 < adj.iloc[0] / adj.iloc[1] < 2  # adjusted series has no split-sized jump
    shares = market.reference(as_of=before).set_index("symbol").loc[s["symbol"], "shares_outstanding"]
    shares_after = market.reference(as_of=after).set_index("symbol").loc[s["symbol"], "shares_outstanding"]
    assert shares_after / shares == pytest.approx(ratio, rel=1e-6)


def test_ipos_delistings_and_missing_days_exist(market):
    first, last = market.day(market.sessions[0]), market.day(market.sessions[-1])
    assert len(set(last["symbol"]) - set(first["symbol"])) > 0  # IPOs
    assert len(set(first["symbol"]) - set(last["symbol"])) > 0  # delistings (and halts)
    delisted = market.reference(include_inactive=True)
    assert (~delisted["active"]).sum() > 0 and len(market.reference()) == delisted["active"].sum()
    gaps = market._has_bar[:, ~market.u.is_etf]
    listed = (np.arange(len(market.sessions))[:, None] >= market.u.ipo_idx[~market.u.is_etf])
    assert (listed & ~gaps).sum() > 0  # some listed symbol-days have no bar
    assert set(INDEX_ETFS) <= set(first["symbol"]) and set(INDEX_ETFS) <= set(last["symbol"])


def test_regimes_vary(market):
    states = SimulatedMarket(seed=7, n_symbols=50, end=END).regimes
    assert len(set(states.tolist())) >= 3


def test_ticker_details_has_polygon_fields(market):
    sym = market.reference()["symbol"].iloc[0]
    d = market.ticker_details(sym)
    assert d["ticker"] == sym and d["share_class_shares_outstanding"] > 0 and d["market"] == "stocks"
    assert market.ticker_details("NOPE_") is None


async def test_source_counts_one_request_per_call(market):
    src = SimulatedSource(market=market)
    assert src.simulated and src.name == "simulated"
    await src.grouped_daily(market.sessions[-1])
    await src.grouped_daily(market.sessions[-2])
    await src.splits()
    snap = src.counter.snapshot()
    assert snap["attempts"] == 3 and snap["by_endpoint"] == {"grouped_daily": 2, "splits": 1}


def test_snapshot_is_a_partial_day(market):
    day = market.sessions[-1]
    full, part = market.day(day), market.snapshot(day, 0.25)
    assert (part["volume"] <= full["volume"]).all()
    assert (part["high"] <= full["high"] + 1e-9).all() and (part["low"] >= full["low"] - 1e-9).all()


def test_prices_filled_a_session_at_a_time_equal_the_whole_matrix_form():
    """_economic_close is built row by row (one (T, N) array held, not four): the same additions as np.cumsum over
    every session's returns, bit for bit; split factors per session equal the product over executed splits."""
    m = SimulatedMarket(seed=11, n_symbols=400)
    returns = np.stack(list(m._return_rows()))
    np.testing.assert_array_equal(m._economic_close, m.u.price0 * np.exp(np.cumsum(returns, axis=0)))
    t = len(m.sessions) - 1
    expected = np.ones(len(m.symbols))
    for s in m.u.splits.itertuples(index=False):
        if s.exec_idx <= t:
            expected[s.col] *= s.split_from / s.split_to
    assert len(m.u.splits) > 0
    np.testing.assert_array_equal(m._split_factor(t), expected)
    np.testing.assert_array_equal(m._split_factor(-1), expected)
