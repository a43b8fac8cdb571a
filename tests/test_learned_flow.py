"""The learned rating through the flows on the simulated market: `evaluate --rating learned` fits and saves the
walk-forward models (the same on Ray as on threads), a scan with rating "learned" uses the newest one trained before
its session, and a scan with no model says so and keeps TechRating.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.evaluation import EvalConfig, run_evaluation
from technic_v4.pipeline.learned_models import manifests

pytestmark = pytest.mark.slow  # a cold backfill of ~500 simulated sessions, three evaluations and three scans

END = dt.date(2025, 9, 30)
CONFIG = dict(end=END, sessions=200, max_symbols=300, horizons=(5, 21), rating="learned")
LEARNED_COLUMNS = ["learned_5d", "learned_ridge_5d", "learned_lgbm_5d", "learned_21d", "LearnedRating",
                   "LearnedSignal"]


@pytest.fixture(scope="module")
def learned(prefect_api, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("learned") / "technic_data"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"TECHNIC_DATA_DIR": str(data_dir), "TECHNIC_DATA_SOURCE": "simulated",
                     "TECHNIC_SIM_SYMBOLS": "500", "TECHNIC_TASK_RUNNER": "thread"}.items():
            mp.setenv(k, v)
        scores, summary = run_evaluation(EvalConfig(**CONFIG))
        yield scores, summary, data_dir, mp


def test_evaluate_reports_and_saves_the_learned_rating(learned):
    scores, summary, data_dir, _ = learned
    section = summary["learned"]
    assert summary["meta"]["rating"] == "learned"
    assert "## Learned rating" in summary["report_md"] and "learned rating (out of sample" in summary["verdicts"][0]
    for h in (5, 21):
        fits = manifests(data_dir, h)
        assert len(fits) == section["refits"][h]["count"] >= 2
        oos = scores[scores[f"learned_{h}d"].notna()]
        assert oos["Date"].min() > pd.Timestamp(fits[0][1]["labels_end"])  # nothing scored before its first model
        assert section["tables"][h]["rows"] == int((oos[f"fwd_ret_{h}d"].notna() & oos["TechRating"].notna()).sum())
    last = manifests(data_dir, 21)[-1][1]
    assert last["labels_end"] == END.isoformat() and last["applies_from"] > END.isoformat()


def test_ray_gives_the_same_learned_rating_as_threads(learned, ray_session):
    scores, _, data_dir, _ = learned
    before = {f.name: (f / "lgbm.txt").read_bytes() for f, _ in manifests(data_dir, 21)}
    ray_scores, summary = run_evaluation(EvalConfig(**CONFIG, task_runner="ray"))
    assert summary["meta"]["metrics"]["task_runner"] == "ray"
    pd.testing.assert_frame_equal(ray_scores[LEARNED_COLUMNS], scores[LEARNED_COLUMNS])
    assert {f.name: (f / "lgbm.txt").read_bytes() for f, _ in manifests(data_dir, 21)} == before


def test_scan_uses_the_newest_model_trained_before_its_session(learned):
    _, _, data_dir, _ = learned
    as_of = dt.date(2025, 10, 1)
    out = run_scan_output(ScanConfig(as_of=as_of, max_symbols=300, rating="learned"))
    rating = out.summary["rating"]
    newest = manifests(data_dir, 21)[-1][1]
    assert rating["ran"] == "learned" and rating["applies_from"] == newest["applies_from"] == "2025-10-01"
    assert out.results["LearnedRating"].notna().all()
    assert out.results["LearnedRating"].is_monotonic_decreasing
    assert "rating learned" in out.message
    earlier = run_scan_output(ScanConfig(as_of=dt.date(2025, 9, 2), max_symbols=300, rating="learned"))
    assert earlier.summary["rating"]["labels_end"] < "2025-09-02" < newest["labels_end"]
    tech = run_scan_output(ScanConfig(as_of=as_of, max_symbols=300))
    assert tech.summary["rating"]["ran"] == "tech" and tech.results["LearnedRating"].isna().all()
    assert set(tech.results["Symbol"]) == set(out.results["Symbol"])
    assert np.allclose(tech.results.set_index("Symbol")["TechRating"],
                       out.results.set_index("Symbol").loc[tech.results["Symbol"], "TechRating"])


def test_scan_before_the_first_model_says_so_and_keeps_techrating(learned):
    _, _, data_dir, _ = learned
    first = manifests(data_dir, 21)[0][1]
    as_of = dt.date(2025, 7, 1)
    assert first["labels_end"] >= as_of.isoformat()  # no model's training labels closed before this session
    out = run_scan_output(ScanConfig(as_of=as_of, max_symbols=300, rating="learned"))
    assert out.summary["rating"]["ran"] == "tech" and out.summary["rating"]["requested"] == "learned"
    assert "no learned model" in out.message
    assert out.results["LearnedRating"].isna().all() and out.results["TechRating"].dropna().is_monotonic_decreasing
