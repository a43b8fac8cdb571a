"""The scan's rating stage: TechRating (the default) or the learned rating, after every chunk is joined.

Every scan's results get a LearnedRating column (NaN unless the learned rating ran). With `rating="learned"` the stage
loads the newest model trained before the scan's session (pipeline/learned_models.latest_model: same source, last
training label closed before as_of), builds the features of every result row (their within-day ranks are across this
scan's universe, as in the evaluation), fills LearnedRating, maps it to the Signal labels with the model's own cut-offs,
recomputes the trade plan for the new signals and ranks the table by LearnedRating. Without a model the scan says so
and keeps TechRating's table. The returned dict says which rating ran; the summary and the report show it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from technic_v4.domain.regime import Regime
from technic_v4.domain.scoring.learned import (DEFAULT_HORIZON, FEATURE_INPUTS, classify_learned, day_percentile_ranks,
                                               feature_matrix, predict, raw_features)
from technic_v4.domain.scoring.plan_rules import ATR_RULE, DEFAULT_MIN_REWARD_RISK
from technic_v4.domain.scoring.plans import PLAN_INPUTS
from technic_v4.domain.scoring.score import trade_plan
from technic_v4.pipeline.learned_models import latest_model, models_root

LEARNED_COLUMN = "LearnedRating"


def apply_rating(results: pd.DataFrame, rating: str, data_dir: Path, as_of: dt.date, source_id: str,
                 regime: Regime, plan_rule: str = ATR_RULE,
                 min_reward_risk: float = DEFAULT_MIN_REWARD_RISK) -> tuple[pd.DataFrame, dict]:
    """(results with LearnedRating, {"requested", "ran", "note", and the model's window when one ran})."""
    results = results.assign(**{LEARNED_COLUMN: np.nan})
    if rating != "learned":
        return results, {"requested": rating, "ran": "tech", "note": "TechRating"}
    model = latest_model(data_dir, DEFAULT_HORIZON, as_of, source_id)
    if model is None:
        where = models_root(data_dir, DEFAULT_HORIZON)
        return results, {"requested": "learned", "ran": "tech",
                         "note": f"no learned model trained before {as_of} for this source in {where}: fell back to "
                                 "TechRating (fit one with `technic evaluate --rating learned`)"}
    if len(results) == 0:
        return results, _ran(model, 0)
    values = {c: results[c].to_numpy(np.float64) for c in FEATURE_INPUTS}
    X = feature_matrix(raw_features(values), np.zeros(len(results), dtype=np.int64), results["Regime"].to_numpy())
    score = predict(model, X)
    signal = classify_learned(day_percentile_ranks(score, np.zeros(len(score), dtype=np.int64)), model.cutoffs)
    inputs = {c: results[c].to_numpy(np.float64) for c in PLAN_INPUTS if c in results}
    rule = plan_rule if set(PLAN_INPUTS) <= set(inputs) or plan_rule == ATR_RULE else ATR_RULE
    signal, plan = trade_plan(signal, inputs, regime, rule, min_reward_risk)
    out = results.assign(**{LEARNED_COLUMN: score}, Signal=signal, **plan)
    out = out.sort_values([LEARNED_COLUMN, "Symbol"], ascending=[False, True], na_position="last", kind="stable")
    info = _ran(model, int(np.isfinite(score).sum()))
    if rule != plan_rule:  # the structure rule reads swing/prior highs the results do not carry
        info["note"] += f"; plans by the {rule} rule for the learned signals ({plan_rule}'s inputs are not in the results)"
    return out.reset_index(drop=True), info


def _ran(model, rated: int) -> dict:
    m = model.manifest
    return {"requested": "learned", "ran": "learned", "kind": model.kind, "horizon": m["horizon"],
            "applies_from": m["applies_from"], "train_start": m["train_start"], "train_end": m["train_end"],
            "labels_end": m["labels_end"], "rows_rated": rated,
            "note": f"learned ({model.kind}, {m['horizon']}-session model trained {m['train_start']}..{m['train_end']}, "
                    f"labels to {m['labels_end']}); Signal from its training-window cut-offs"}
