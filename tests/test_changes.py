import numpy as np
import pandas as pd

from technic_v4.pipeline.changes import bar_fingerprints, split_reusable
from tests.test_prescreen import make_panel


def _panel():
    return make_panel({"A": 10.0, "B": 20.0, "C": 30.0}, {"A": 1e6, "B": 2e6, "C": 3e6})


def test_fingerprint_is_stable_and_sensitive_to_what_scores_depend_on():
    p = _panel()
    f1, f2 = bar_fingerprints(p, "SIDEWAYS"), bar_fingerprints(_panel(), "SIDEWAYS")
    assert f1.dtype == np.int64 and (f1 == f2).all()
    p.close[-1, 0] = 10.5  # last bar of A changed
    p.close[0, 1] = 19.0  # history start of B changed (as a new split adjustment would)
    f3 = bar_fingerprints(p, "SIDEWAYS")
    assert list(f3 != f1) == [True, True, False]
    assert (bar_fingerprints(_panel(), "TRENDING_UP") != f1).all()  # a new regime rescores everything
    # another plan rule or minimum R changes Stop/Target/PlanOK: rescored too (ScanConfig.plan_variant)
    from technic_v4.pipeline.scan_config import ScanConfig

    atr, structure = (ScanConfig(plan_rule=r).plan_variant for r in ("atr", "structure"))
    assert (bar_fingerprints(_panel(), "SIDEWAYS", variant=atr) == bar_fingerprints(_panel(), "SIDEWAYS", variant=atr)).all()
    assert (bar_fingerprints(_panel(), "SIDEWAYS", variant=atr) != bar_fingerprints(_panel(), "SIDEWAYS",
                                                                                      variant=structure)).all()
    assert ScanConfig(min_reward_risk=2).plan_variant != atr


def test_split_reusable_reuses_only_unchanged_and_not_forced():
    fp = bar_fingerprints(_panel(), "SIDEWAYS")
    prev = pd.DataFrame({"Symbol": ["A", "B", "C", "GONE"], "TechRating": [1.0, 2.0, 3.0, 4.0],
                         "fingerprint": np.r_[fp.to_numpy(), 7]})
    prev.loc[1, "fingerprint"] = 12345  # B changed since
    to_score, reused = split_reusable(fp, prev, force=["C"])
    assert to_score == ["B", "C"]
    assert reused["Symbol"].tolist() == ["A"] and reused["TechRating"].tolist() == [1.0]
    # survives a parquet round trip exactly (int64, no float rounding)
    to_score2, _ = split_reusable(fp, pd.read_parquet(_roundtrip(prev)), force=[])
    assert to_score2 == ["B"]


def test_first_scan_scores_everything():
    fp = bar_fingerprints(_panel(), "SIDEWAYS")
    to_score, reused = split_reusable(fp, None)
    assert to_score == ["A", "B", "C"] and len(reused) == 0


def _roundtrip(df):
    import io

    buf = io.BytesIO()
    df.to_parquet(buf)
    buf.seek(0)
    return buf


def test_reference_change_invalidates_reuse():
    from technic_v4.pipeline.changes import bar_fingerprints

    p = _panel()
    ref = pd.DataFrame({"symbol": list(p.symbols), "name": "x", "sector": "s", "industry": "i", "shares_outstanding": 1e6})
    a = bar_fingerprints(p, "SIDEWAYS", ref)
    ref.loc[0, "shares_outstanding"] = 2e6
    b = bar_fingerprints(p, "SIDEWAYS", ref)
    assert a.iloc[0] != b.iloc[0] and (a.iloc[1:] == b.iloc[1:]).all()
