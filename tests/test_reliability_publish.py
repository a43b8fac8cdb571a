"""Publish is atomic as a set (issue 24, deliver 2): a scan's files go to results/runs/<run_id>/, a manifest written
last switches latest, and every reader (technic top, latest.*, the next scan's reuse, history) follows it — so a
publish killed between any two files never shows two scans mixed."""

from __future__ import annotations

import datetime as dt
import json
import signal

import pandas as pd
import pytest
from typer.testing import CliRunner

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.cli import app
from technic_v4.errors import StoreCorruption
from technic_v4.pipeline import publish as pub
from tests.support.processes import start_scan

AS_OF = dt.date(2026, 10, 12)


def table(seed: int, rows: int = 40) -> pd.DataFrame:
    rng = pd.Series(range(rows)) * seed
    return pd.DataFrame({"Symbol": [f"S{i:03d}" for i in range(rows)], "Sector": "Tech", "Close": 10.5 + rng,
                         "ret_21d": 0.01, "RSI14": 50.0, "ATR14_pct": 0.02, "TechRating": rng.astype(float),
                         "Signal": ["Long" if i % (seed + 1) else "Avoid" for i in range(rows)], "Entry": 1.0,
                         "Stop": 0.9, "Target": 1.3, "RewardRisk": 3.0, "AsOf": pd.Timestamp(AS_OF),
                         "fingerprint": [f"{seed}-{i}" for i in range(rows)]})


def publish_one(data_dir, seed: int, run_id: str, key: str = "k1"):
    return pub.publish(table(seed), data_dir=data_dir, as_of=AS_OF, report_md=f"# scan {seed}\n",
                       meta={"as_of": AS_OF.isoformat(), "seed": seed, "simulated": True}, key=key, run_id=run_id)


def user_view(data_dir) -> dict:
    """What a user reads at the documented paths, and what technic's readers read through the manifest."""
    out = data_dir / "results"
    return {
        "csv": pd.read_csv(out / "latest.csv")["Close"].tolist(),
        "parquet": pd.read_parquet(out / "latest.parquet")["Close"].tolist(),
        "json": json.loads((out / "latest.json").read_text())["seed"],
        "md": (out / "latest.md").read_text(),
        "manifest_csv": pd.read_csv(pub.published_file(data_dir, pub.CSV))["Close"].tolist(),
        "previous": pub.read_previous(data_dir, "k1")[0]["Close"].tolist(),
    }


def expected_view(seed: int) -> dict:
    close = table(seed)["Close"].tolist()
    return {"csv": close, "parquet": close, "json": seed, "md": f"# scan {seed}\n", "manifest_csv": close,
            "previous": close}


@pytest.mark.parametrize("fail_after", ["latest.parquet", "latest.csv", "latest.md", "by-config/k1/manifest.json"])
def test_a_publish_that_dies_between_files_leaves_the_previous_scan_whole(tmp_path, monkeypatch, fail_after):
    publish_one(tmp_path, 1, "run-a")
    assert user_view(tmp_path) == expected_view(1)
    real_write, real_text = pub.atomic_write, pub.atomic_write_text

    def dying(write):
        def wrapper(path, *args, **kwargs):
            done = write(path, *args, **kwargs)
            if str(path).endswith(fail_after):
                raise KeyboardInterrupt("killed")  # as a kill: nothing after this line runs
            return done
        return wrapper

    monkeypatch.setattr(pub, "atomic_write", dying(real_write))
    monkeypatch.setattr(pub, "atomic_write_text", dying(real_text))
    with pytest.raises(KeyboardInterrupt):
        publish_one(tmp_path, 2, "run-b")
    view = user_view(tmp_path)
    if fail_after.endswith("manifest.json"):  # this configuration's next scan may reuse run-b (it is whole) ...
        assert view.pop("previous") == table(2)["Close"].tolist()
        view["previous"] = expected_view(1)["previous"]
    assert view == expected_view(1)  # ... but latest, everywhere, is still all of scan 1
    monkeypatch.setattr(pub, "atomic_write", real_write)
    monkeypatch.setattr(pub, "atomic_write_text", real_text)
    publish_one(tmp_path, 3, "run-c")
    assert user_view(tmp_path) == expected_view(3)


def test_runs_are_pruned_to_a_bounded_number_but_never_a_named_one(tmp_path):
    publish_one(tmp_path, 1, "run-old", key="other")  # the only run of configuration "other"
    for i in range(pub.KEEP_RUNS + 5):
        paths = publish_one(tmp_path, 2 + i, f"run-{i:02d}")
    runs = sorted(p.name for p in (tmp_path / "results" / "runs").iterdir())
    assert len(runs) == pub.KEEP_RUNS + 1 and "run-old" in runs and paths.run_dir.name in runs
    assert pub.read_previous(tmp_path, "other")[0]["Close"].tolist() == table(1)["Close"].tolist()
    history = sorted((tmp_path / "results" / "history").rglob("scan-*.parquet"))
    assert len(history) == pub.KEEP_RUNS + 6  # every published scan, also of pruned runs
    assert pd.read_parquet(history[0])["Close"].tolist() in [table(s)["Close"].tolist() for s in range(1, 30)]


def test_a_published_file_changed_afterwards_is_refused_by_name(tmp_path):
    publish_one(tmp_path, 1, "run-a")
    path = tmp_path / "results" / "runs" / "run-a" / "latest.csv"
    path.write_text(path.read_text().replace("Long", "Shrt"))
    with pytest.raises(StoreCorruption, match="runs/run-a/latest.csv does not match"):
        pub.published_file(tmp_path, pub.CSV)


def test_technic_top_reads_the_manifest_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path))
    publish_one(tmp_path, 1, "run-a")
    publish_one(tmp_path, 2, "run-b")
    (tmp_path / "results" / "runs" / "run-b" / "junk.csv").write_text("x")  # another publisher's extra file
    out = CliRunner().invoke(app, ["top", "--n", "3"])
    assert out.exit_code == 0, out.output
    assert "S001" in out.output and f"{table(2)['Close'][1]:,.2f}" in out.output


@pytest.mark.slow
def test_scan_killed_between_publish_files_then_rerun(prefect_api, sim_env, tmp_path):
    """Flow level with a real SIGKILL: the killed scan leaves the previous one latest everywhere; the rerun
    publishes a whole new one. Slow: two scan processes."""
    config = {"as_of": AS_OF, "lookback_days": 40, "allow_short_history": True, "max_symbols": 300}
    first = run_scan_output(ScanConfig.build(**config))
    later = {**config, "as_of": AS_OF + dt.timedelta(days=1)}
    for point in ("latest.csv", "/manifest.json"):
        proc = start_scan(later, tmp_path / "killed.parquet", RELIABILITY_KILL_AFTER=point)
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL
        out = sim_env / "results"
        assert json.loads((out / "latest.json").read_text())["as_of"] == AS_OF.isoformat()
        assert pd.read_csv(out / "latest.csv")["Symbol"].tolist() == first.results["Symbol"].tolist()
        assert len(pd.read_parquet(out / "latest.parquet")) == len(first.results)
    again = run_scan_output(ScanConfig.build(**later))
    assert json.loads((sim_env / "results" / "latest.json").read_text())["as_of"] == later["as_of"].isoformat()
    assert pd.read_csv(sim_env / "results" / "latest.csv")["Symbol"].tolist() == again.results["Symbol"].tolist()
