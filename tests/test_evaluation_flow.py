"""The `evaluate` flow on the simulated market: point-in-time equality with run_scan(as_of=d), forward returns against
an independent per-symbol computation from the stored day files, NaN forward returns counted, Ray == threads.

The window 2025-08-01..2025-09-30 of the default simulated market (seed 7, 1,500 symbols) holds a 1:10 split of BOUC
executed 2025-09-02 (kept before and after it) and the delisting of UCSM in late September (kept until then; its
21-session forward return is NaN for its last month).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_v4.api import run_scan
from technic_v4.calendar import trading_days
from technic_v4.config import load_settings
from technic_v4.domain.indicators.patterns import FLAG_COLUMNS
from technic_v4.domain.scoring.columns import TREND_TEMPLATE_COLUMNS
from technic_v4.evaluation import EvalConfig, run_evaluation
from technic_v4.pipeline.evaluation.listing import with_delisted
from technic_v4.store.bar_store import BarStore

pytestmark = pytest.mark.slow  # one cold backfill of ~340 simulated sessions plus three scans: ~45 s

START, END = dt.date(2025, 8, 1), dt.date(2025, 9, 30)
SPLIT_SYMBOL, SPLIT_DAY = "BOUC", dt.date(2025, 9, 2)
DELISTED_SYMBOL, BEFORE_DELISTING = "UCSM", dt.date(2025, 9, 5)
CONFIG = dict(start=START, end=END, max_symbols=1000, horizons=(1, 5, 21))


@pytest.fixture(scope="module")
def evaluated(prefect_api, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("evaluation") / "technic_data"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"TECHNIC_DATA_DIR": str(data_dir), "TECHNIC_DATA_SOURCE": "simulated",
                     "TECHNIC_SIM_SYMBOLS": "1500", "TECHNIC_TASK_RUNNER": "thread"}.items():
            mp.setenv(k, v)
        scores, summary = run_evaluation(EvalConfig(**CONFIG))
        yield scores, summary, data_dir, mp


def _store(data_dir) -> BarStore:
    return BarStore(data_dir)


def test_rows_are_what_run_scan_as_of_that_day_gives(evaluated):
    scores, summary, data_dir, _ = evaluated
    store = _store(data_dir)
    # The scan's cached listing holds today's names only; give it the delisted names too, as the evaluation has them,
    # so a past day's scan keeps what traded then (otherwise run_scan itself has survivorship bias).
    from technic_v4.data.factory import make_source

    reference, _ = store.read_reference()
    merged, note = with_delisted(reference, make_source(load_settings(), "simulated"))
    assert "delisted names added" in note
    store.write_reference(merged)
    for day in (START, SPLIT_DAY, BEFORE_DELISTING):
        scan, _ = run_scan(as_of=day, max_symbols=CONFIG["max_symbols"], reuse_scores=False)
        mine = scores[scores["Date"] == pd.Timestamp(day)].set_index(scores["Symbol"].astype(str)
                                                                     [scores["Date"] == pd.Timestamp(day)])
        scan = scan.set_index("Symbol")
        assert set(mine.index) == set(scan.index), day
        joined = scan.join(mine, rsuffix="_eval")
        assert (joined["Signal"] == joined["Signal_eval"].astype(str)).all(), day
        np.testing.assert_allclose(joined["TechRating_eval"], joined["TechRating"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(joined["Close_eval"], joined["Close"], rtol=1e-12)
        np.testing.assert_allclose(joined["Stop_eval"], joined["Stop"], rtol=1e-9)
        # the new columns, point in time: flags exactly, relative strength across the same day's universe
        for col in (*FLAG_COLUMNS, *TREND_TEMPLATE_COLUMNS, "PlanOK"):
            assert (joined[col] == joined[f"{col}_eval"]).all(), (day, col)
        for col in ("RS_rating", "sector_rank", "rank_in_sector", "rs_vs_market_63d", "RSI14_w", "RewardRisk"):
            np.testing.assert_allclose(joined[f"{col}_eval"], joined[col], rtol=1e-9, equal_nan=True, err_msg=col)
        np.testing.assert_allclose(joined["SMA10w_eval"], joined["SMA10w"], rtol=1e-9, equal_nan=True)
    kept_on = lambda sym, day: ((scores["Symbol"] == sym) & (scores["Date"] == pd.Timestamp(day))).any()  # noqa: E731
    assert kept_on(SPLIT_SYMBOL, SPLIT_DAY) and kept_on(DELISTED_SYMBOL, BEFORE_DELISTING)


def _adjusted_closes(store: BarStore, symbol: str, days: list[dt.date], splits: pd.DataFrame) -> pd.Series:
    """The symbol's closes read day file by day file, adjusted by hand for its splits executed by the last day."""
    closes = {}
    for d in days:
        day = store.read_day(d)
        hit = day.loc[day["symbol"] == symbol, "close"]
        closes[d] = float(hit.iloc[0]) if len(hit) else np.nan
    own = splits[(splits["symbol"] == symbol) & (splits["execution_date"] <= pd.Timestamp(days[-1]))]
    for s in own.itertuples(index=False):
        for d in days:
            if pd.Timestamp(d) < s.execution_date:
                closes[d] *= s.split_from / s.split_to
    return pd.Series(closes)


def test_forward_returns_match_an_independent_per_symbol_computation(evaluated):
    scores, _, data_dir, _ = evaluated
    store = _store(data_dir)
    splits = store.read_splits()
    days = trading_days(START, END + dt.timedelta(days=40))
    days = [d for d in days if store.has_day(d)]
    symbols = [SPLIT_SYMBOL, DELISTED_SYMBOL] + list(scores["Symbol"].astype(str).drop_duplicates().sample(6, random_state=2))
    checked = 0
    for sym in symbols:
        closes = _adjusted_closes(store, sym, days, splits)
        entry = closes.ffill()  # a kept symbol without a bar on d: its row's Close is its last close, as in the scan
        rows = scores[scores["Symbol"] == sym]
        for rec in rows.itertuples(index=False):
            i = days.index(rec.Date.date())
            for h in (1, 5, 21):
                expected = closes.iloc[i + h] / entry.iloc[i] - 1 if i + h < len(days) else np.nan
                assert getattr(rec, f"fwd_ret_{h}d") == pytest.approx(expected, rel=1e-9, nan_ok=True), (sym, rec.Date, h)
                checked += 1
    assert checked > 300
    before_split = scores[(scores["Symbol"] == SPLIT_SYMBOL) & (scores["Date"] < pd.Timestamp(SPLIT_DAY))]
    raw = store.read_day(before_split["Date"].iloc[-1].date()).set_index("symbol").loc[SPLIT_SYMBOL, "close"]
    assert before_split["Close"].iloc[-1] == pytest.approx(raw, rel=1e-12)  # the price shown that day, pre-split
    assert before_split["fwd_ret_5d"].abs().max() < 0.5  # the 1:10 split inside the window is adjusted out


def test_nan_forward_returns_are_counted(evaluated):
    scores, summary, _, _ = evaluated
    missing = summary["meta"]["missing"]
    for h in (1, 5, 21):
        nan = int(scores[f"fwd_ret_{h}d"].isna().sum())
        assert nan == missing[str(h)]["no_bar"] + missing[str(h)]["beyond_data"]
    assert missing["21"]["no_bar"] >= 20  # UCSM's last month of listing, at least
    delisted = scores[scores["Symbol"] == DELISTED_SYMBOL]
    assert delisted["fwd_ret_21d"].isna().sum() >= 15 and delisted["fwd_ret_1d"].notna().sum() >= 15
    assert summary["meta"]["delisted_in_universe"] >= 1
    assert "SIMULATED" in summary["report_md"] and "SIMULATED" in summary["message"]
    for h in (1, 5, 21):
        rated = scores["TechRating"].notna() & scores[f"fwd_ret_{h}d"].notna()  # short history: no rating, left out
        assert summary["horizons"][h]["rows"] == int(rated.sum())
    assert summary["meta"]["rows_without_rating"] == int(scores["TechRating"].isna().sum()) > 0


@pytest.mark.slow
def test_ray_gives_the_same_scores_as_threads(evaluated, ray_session):
    scores, _, _, mp = evaluated
    ray_scores, summary = run_evaluation(EvalConfig(**CONFIG, task_runner="ray"))
    assert summary["meta"]["metrics"]["task_runner"] == "ray"
    pd.testing.assert_frame_equal(ray_scores, scores)


def test_cli_evaluate_prints_the_verdicts(evaluated):
    from typer.testing import CliRunner

    from technic_v4.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--start", str(START), "--end", str(END), "--max-symbols", "1000",
                                      "--horizons", "1,5"])
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output and "5-session: rank IC" in result.output and "21-session" not in result.output
