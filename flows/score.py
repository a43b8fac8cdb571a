"""The score stage's fan-out: the run's own task runner (chosen per run from its ScanConfig, never at import), the
panel and regime put into Ray's object store once, and one task per chunk of symbols."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flows.runners import SharedDataStore, choose_runner, chunk_columns, make_task_runner
from flows.tasks import score_chunk
from technic_v4.config import Settings
from technic_v4.domain.panel import Panel
from technic_v4.domain.regime import Regime
from technic_v4.pipeline.scan_config import ScanConfig


@dataclass
class ScoreRun:
    frame: pd.DataFrame
    runner: str  # the runner this run chose
    reason: str  # why (policy or override), for the report
    workers: list[dict] = field(default_factory=list)  # one record per chunk: pid, peak RSS, symbols


def runner_choice(config: ScanConfig, settings: Settings, n_symbols: int) -> tuple[str, str]:
    """(runner kind, why) for this run: ScanConfig.task_runner, else TECHNIC_TASK_RUNNER, resolved by the policy."""
    kind, reason = choose_runner(config.task_runner or settings.task_runner, n_symbols, settings)
    where = "task_runner parameter" if config.task_runner else "TECHNIC_TASK_RUNNER"
    return kind, f"{where}={config.task_runner or settings.task_runner}: {reason}"


def score_symbols(panel: Panel, reference: pd.DataFrame, regime: Regime, priority: np.ndarray,
                  config: ScanConfig, settings: Settings) -> ScoreRun:
    """Score every panel column on `max_workers` chunk tasks of the chosen runner; priority columns go first."""
    kind, reason = runner_choice(config, settings, panel.shape[1])
    workers = config.max_workers or settings.max_workers
    if panel.shape[1] == 0:  # nothing changed since the last scan: no runner (and no Ray) is started
        return ScoreRun(pd.DataFrame(), kind, reason + "; nothing to score")
    ref = reference[reference["symbol"].isin(panel.symbols)]
    with make_task_runner(kind, workers, settings.ray_address) as runner:
        shared = SharedDataStore(runner)
        panel_ref, regime_ref = shared.put(panel), shared.put(regime)
        futures = [runner.submit(score_chunk, {"panel": panel_ref, "columns": cols, "reference": ref,
                                               "regime": regime_ref, "plan_rule": config.plan_rule,
                                               "min_reward_risk": config.min_reward_risk})
                   for cols in chunk_columns(panel.shape[1], workers, priority)]
        outs = [f.result() for f in futures]
    frames = [o[0] for o in outs if len(o[0])]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return ScoreRun(frame, kind, reason, [o[1] for o in outs])
