"""The Prefect flow `scan` end to end on a small simulated market: incremental fetch, cache hits, splits, prescreen
counts, publishing and artifacts. One temporary Prefect server for the session (conftest.prefect_api)."""

import datetime as dt
import json

import pandas as pd
import pytest

from technic_v4.errors import ConfigError
from technic_v4.api import ScanConfig, run_scan, run_scan_output

DAY1, DAY2 = dt.date(2026, 10, 12), dt.date(2026, 10, 13)  # PMBB splits 1-for-3 on DAY2 in the seed-7 market
LOOKBACK = 260
OPEN_DOOR = {"min_market_cap": 0, "min_avg_volume": 0, "min_price": 0}


def scan(**kw):
    return run_scan_output(ScanConfig.build(lookback_days=LOOKBACK, **kw))


def grouped_calls(out) -> int:
    return out.summary["metrics"]["api_calls_by_endpoint"].get("grouped_daily", 0)


def test_cold_then_warm_same_day(prefect_api, sim_env):
    cold = scan(as_of=DAY1)
    assert grouped_calls(cold) == LOOKBACK
    assert cold.summary["metrics"]["cache_hit_rate"] == 0.0
    assert "SIMULATED" in cold.message and len(cold.results) > 100
    warm = scan(as_of=DAY1)
    m = warm.summary["metrics"]
    assert grouped_calls(warm) == 0 and m["api_calls"] <= 2
    assert m["cache_hit_rate"] == 1.0 and m["bars_fetched"] == 0 and m["months_cached"] >= 12
    assert m["symbols_scored"] == 0 and m["symbols_reused"] == len(warm.results)  # nothing changed: all reused
    pd.testing.assert_frame_equal(cold.results, warm.results)


@pytest.mark.slow  # not a main path; kept out of the 6-minute default suite
def test_next_trading_day_fetches_one_day_and_readjusts_split(prefect_api, sim_env):
    first = scan(as_of=DAY1, watchlist=["PMBB"], **OPEN_DOOR)
    before = first.results.set_index("Symbol").loc["PMBB"]
    nxt = scan(as_of=DAY2, watchlist=["PMBB"], **OPEN_DOOR)
    m = nxt.summary["metrics"]
    assert grouped_calls(nxt) == 1
    assert m["api_calls_by_endpoint"] == {"grouped_daily": 1, "splits": 1}  # reference is cached for a week
    assert m["cache_hit_rate"] >= 0.99
    assert nxt.summary["split_changed"] == ["PMBB"]
    after = nxt.results.set_index("Symbol").loc["PMBB"]
    # raw close dropped to a third; the cached history was re-adjusted so the averages follow it
    assert after["Close"] == pytest.approx(before["Close"] / 3, rel=0.15)
    assert after["SMA20"] == pytest.approx(before["SMA20"] / 3, rel=0.1)
    assert 0.5 < after["Close"] / after["SMA200"] < 2


def test_prescreen_counts_add_up_and_are_reported(prefect_api, sim_env):
    out = scan(as_of=DAY1, max_symbols=1200)
    pre = out.summary["prescreen"]
    assert pre["universe"] == 1200
    assert pre["kept"] + sum(pre["filtered"].values()) == pre["universe"]
    assert pre["filtered"]["market_cap"] > 0 and pre["filtered"]["avg_volume"] > 0
    assert len(out.results) == pre["kept"] - out.summary["metrics"]["invalid_rows"]
    assert f"kept {pre['kept']}" in out.message


def test_results_published_with_artifacts(prefect_api, sim_env):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    df, msg = run_scan(ScanConfig.build(as_of=DAY1, lookback_days=LOOKBACK, signals=["Strong Long", "Long"]))
    assert set(df["Signal"]) <= {"Strong Long", "Long"} and len(df) > 0
    assert df["TechRating"].is_monotonic_decreasing
    latest = pd.read_csv(sim_env / "results" / "latest.csv")
    assert len(latest) >= len(df) and "fingerprint" not in latest.columns
    meta = json.loads((sim_env / "results" / "latest.json").read_text())
    assert meta["simulated"] is True and meta["as_of"] == DAY1.isoformat()
    assert list((sim_env / "results" / "history").glob("as_of=*/scan-*.parquet"))
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[meta["flow_run_id"]]))
        )
    kinds = {a.key: a for a in arts}
    assert {"scan-top", "scan-report"} <= set(kinds)
    assert "SIMULATED" in kinds["scan-report"].data
    assert len(json.loads(kinds["scan-top"].data)) == min(50, len(df))  # the run's signals filter applies


@pytest.mark.slow  # ~35 s under load; a repair path, not a main one
def test_deleted_day_is_refetched_and_nothing_else(prefect_api, sim_env):
    scan(as_of=DAY1)
    victim = sorted((sim_env / "bars").glob("date=*"))[100]
    for f in victim.iterdir():
        f.unlink()
    again = scan(as_of=DAY1)
    assert grouped_calls(again) == 1
    assert (victim / "meta.json").exists()


@pytest.mark.slow  # ~31 s under load; tests/test_reliability_input.py covers unknown watchlist symbols by default
def test_watchlist_unknown_symbols_are_reported(prefect_api, sim_env):
    out = scan(as_of=DAY1, watchlist=["ZZZZ", "SPY"], max_symbols=300)
    assert out.summary["unknown_watchlist"] == ["ZZZZ"]
    assert "ZZZZ" in out.message and "SPY" in set(out.results["Symbol"])


@pytest.mark.parametrize(
    "values, field",
    [({"max_symbols": 0}, "max_symbols"), ({"max_symbols": -5}, "max_symbols"), ({"data_source": "yahoo"}, "data_source"),
     ({"lookback_days": 5}, "lookback_days"), ({"watchlist": ["AAPL", "not a ticker"]}, "watchlist"),
     ({"signals": ["Buy"]}, "signals"), ({"as_of": dt.date.today() + dt.timedelta(days=30)}, "as_of"),
     ({"max_workers": "many"}, "max_workers"), ({"colour": "red"}, "colour")],
)
def test_bad_scan_config_is_a_clear_error(values, field):
    with pytest.raises(ConfigError, match=field):
        ScanConfig.build(**values)


@pytest.mark.slow  # Ray is not the default runner (auto = threads here); test_deployment runs one Ray scan by default
def test_ray_runner_matches_thread_runner(prefect_api, ray_session, sim_env):
    import os

    thread = scan(as_of=DAY1, max_symbols=800, reuse_scores=False)
    ray_out = scan(as_of=DAY1, max_symbols=800, reuse_scores=False, task_runner="ray", max_workers=2)
    m = ray_out.summary["metrics"]
    assert m["task_runner"] == "ray" and m["worker_processes"] >= 1 and m["symbols_scored"] == len(ray_out.results)
    pd.testing.assert_frame_equal(thread.results, ray_out.results)
    assert m["peak_rss_mb_workers"] > 0 and os.getpid() not in m["worker_pids"]  # scored in Ray worker processes
    assert thread.summary["metrics"]["worker_pids"] == [os.getpid()]
