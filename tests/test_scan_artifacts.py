"""What a trader reads in the Prefect UI, read back through the API, and history kept per scan configuration."""

import datetime as dt
import json
import re

import pytest

from technic_v4.api import ScanConfig, run_scan_output

DAY1, DAY2 = dt.date(2026, 10, 12), dt.date(2026, 10, 13)
LOOKBACK = 260
SIGNALS = ["Strong Long", "Long"]


def scan(**kw):
    return run_scan_output(ScanConfig.build(lookback_days=LOOKBACK, **kw))


def artifacts(flow_run_id: str) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in arts}


def test_artifacts_are_readable(prefect_api, sim_env):
    out = scan(as_of=DAY1, signals=SIGNALS, max_symbols=1500)
    arts = artifacts(out.summary["flow_run_id"])
    top = json.loads(arts["scan-top"].data)
    assert top and {r["Signal"] for r in top} <= set(SIGNALS)  # the run's filter applies
    assert len(top) == min(50, len(out.results))
    assert list(top[0])[:3] == ["Symbol", "Signal", "TechRating"] and len(top[0]) <= 15
    assert {"Close", "Entry", "Stop", "Target", "RewardRisk", "Sector"} <= set(top[0])
    numbers = {k: [v for r in top for kk, v in r.items() if kk == k] for k in ("TechRating", "Close", "RewardRisk")}
    for col, values in numbers.items():  # fixed decimals per column, as text, so they line up
        assert len({len(v.split(".")[1]) for v in values if v is not None}) == 1, (col, values[:5])
        assert all(re.fullmatch(r"-?[\d,]+\.\d{1,2}", v) for v in values if v is not None)
    assert not any(isinstance(v, str) and re.match(r"\d{4}-\d\d-\d\dT", v) for r in top for v in r.values())
    report = arts["scan-report"].data
    assert "{" not in report and "[" not in report  # no Python reprs
    diagnostics = arts["scan-diagnostics"].data  # engineering metrics apart from the trader's report
    assert re.search(r"\d+(\.\d+)? (MB|GB)", diagnostics) and re.search(r"\d+\.\d\d s", diagnostics)
    assert "peak RSS" not in report and "1,500 symbols" in report  # the configuration explained
    assert "TechRating" in arts["scan-top"].description and "longs-only" in arts["scan-top"].description
    assert arts["scan-fetch-progress"].data == 100.0  # a completed fetch ends at 100 %


def test_long_lists_are_cut_with_a_count():
    from technic_v4.pipeline.report import short_list

    assert short_list([f"S{i}" for i in range(30)], limit=25).endswith("S24 … and 5 more")
    assert short_list([]) == "none"


@pytest.mark.slow  # not a main path; kept out of the 6-minute default suite
def test_history_and_reuse_are_per_configuration(prefect_api, sim_env):
    small = scan(as_of=DAY1, max_symbols=400)
    assert small.summary["previous_as_of"] is None and "first scan of this configuration" in small.message
    big = scan(as_of=DAY1, max_symbols=1200)
    # another configuration: it neither compares with nor reuses the small run's rows
    assert big.summary["previous_as_of"] is None and big.summary["config_key"] != small.summary["config_key"]
    assert big.summary["metrics"]["symbols_reused"] == 0
    assert len(big.summary["changes"]["new"]) == sum(big.summary["signals"].get(s, 0)
                                                     for s in ("Strong Long", "Long", "Short", "Strong Short"))
    again = scan(as_of=DAY1, max_symbols=400, task_runner="thread", max_workers=1)  # how it runs is not config
    assert again.summary["config_key"] == small.summary["config_key"]
    assert again.summary["previous_as_of"] == DAY1.isoformat()
    assert again.summary["changes"] == {"new": [], "dropped": [], "changed": []}
    assert again.summary["metrics"]["symbols_reused"] == len(again.results)


@pytest.mark.parametrize("field, value", [("max_symbols", 10), ("min_price", 1.0), ("sectors", ["Energy"]),
                                          ("watchlist", ["SPY"])])
def test_config_key_changes_with_result_fields_only(field, value):
    from technic_v4.pipeline.state import config_key

    base = ScanConfig()
    assert config_key(base, "sim") != config_key(base.model_copy(update={field: value}), "sim")
    for same in ({"task_runner": "thread"}, {"max_workers": 7}, {"signals": ["Long"]}):
        assert config_key(base, "sim") == config_key(base.model_copy(update=same), "sim")
    assert config_key(base, "sim") != config_key(base, "polygon-abc")
