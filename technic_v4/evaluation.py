"""Python entry point of the walk-forward evaluation, mirroring run_scan:

    scores, summary = run_evaluation(EvalConfig(start=date, end=date, max_symbols=6000, horizons=(1, 5, 21, 63)))

`scores` has one row per (session, symbol) a scan as of that session kept: Date, Symbol, Close, TechRating, the six
sub-scores, the textbook factors (mom_12_1, rev_1m, prox_52w_high, low_vol_63), Signal, Regime, Entry, Stop, Target,
fwd_ret_{h}d, plan_target_session, plan_stop_session. `summary` holds the statistics per horizon, the attribution
table (`summary["attribution"][h]`), the verdicts, `report_md`, `message` and the paths written. Runs the Prefect
flow `evaluate`.
"""

from __future__ import annotations

import pandas as pd

from technic_v4.aio import run_sync
from technic_v4.api import load_flow_factory
from technic_v4.heap import tune_process
from technic_v4.pipeline.evaluation.config import EvalConfig
from technic_v4.startup import prepare_prefect_api

__all__ = ["EvalConfig", "run_evaluation"]


def run_evaluation(config: EvalConfig | None = None, **overrides) -> tuple[pd.DataFrame, dict]:
    if config is None:
        config = EvalConfig.build(**overrides)
    elif overrides:
        config = EvalConfig.build(**{**config.model_dump(), **overrides})
    tune_process()  # two malloc arenas, as for run_scan (technic_v4/heap.py)
    api = prepare_prefect_api()  # a kept server, or Prefect's own with time to start on a busy box
    flow = load_flow_factory("evaluate")(config)
    if api is not None:
        api.wait()
    output = run_sync(lambda: flow(config=config))
    return output.scores, output.summary
