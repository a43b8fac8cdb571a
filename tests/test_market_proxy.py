import numpy as np

from technic_v4.domain.market_proxy import equal_weighted_index, market_proxy
from technic_v4.domain.panel import Panel


def _panel(close: np.ndarray, symbols) -> Panel:
    t = close.shape[0]
    dates = np.datetime64("2024-01-02") + np.arange(t)
    return Panel(dates=dates, symbols=np.array(symbols, dtype=object), open=close, high=close, low=close, close=close,
                 volume=np.ones_like(close))


def test_equal_weighted_index_chains_mean_returns_by_hand():
    # two symbols: +10 % and -10 % on day 1 (mean 0), then +20 % and NaN (only one traded -> mean +20 %)
    close = np.array([[10.0, 20.0], [11.0, 18.0], [13.2, np.nan]])
    level = equal_weighted_index(close, min_symbols=1)
    np.testing.assert_allclose(level, [100.0, 100.0, 120.0])


def test_too_few_symbols_on_a_session_is_nan_and_the_chain_goes_on():
    close = np.array([[10.0, 20.0], [11.0, np.nan], [12.1, 22.0], [13.31, 24.2]])
    level = equal_weighted_index(close, min_symbols=2)
    assert np.isnan(level[1]) and np.isnan(level[2])  # one symbol only on 0->1; 1->2 has the NaN on day 1
    np.testing.assert_allclose(level[3], 110.0)  # 2->3: both +10 %


def test_spy_is_used_when_present_else_the_index_says_what_it_is():
    rng = np.random.default_rng(0)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, (30, 25)), axis=0)
    names = [f"S{i}" for i in range(24)] + ["SPY"]
    with_spy = market_proxy(_panel(close, names))
    assert with_spy.is_spy and np.array_equal(with_spy.close, close[:, -1])
    without = market_proxy(_panel(close[:, :24], names[:24]))
    assert without.source == "equal-weighted index of 24 symbols" and not without.is_spy
    np.testing.assert_allclose(without.close[1], 100 * (1 + np.mean(close[1, :24] / close[0, :24] - 1)))
    assert market_proxy(_panel(close[:, :5], names[:5])).source == "none"
