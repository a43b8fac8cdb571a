"""The learned rating inside an evaluation: fit walk-forward, persist every fit, and its out-of-sample statistics.

The comparison is made on the learned rating's out-of-sample rows only (sessions a model scored, forward return
known): the learned rating, each model kind alone (ridge, LightGBM), TechRating, the sub-scores, the textbook factors
and the shuffled control on the very same (session, symbol) rows, so no score is compared on different days. The
statistics are rank_ic's (the evaluation's one function: daily Spearman rank IC, ICIR, Newey-West t with h - 1 lags).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

from technic_v4.calendar import trading_days
from technic_v4.domain.scoring.score import SIGNALS
from technic_v4.pipeline.evaluation.learned import LearnedRun, WalkForward, prediction_columns, run_learned
from technic_v4.pipeline.evaluation.factors import attributed_columns
from technic_v4.pipeline.evaluation.rank_ic import T_DISTINGUISHABLE, RankIC, newey_west_t
from technic_v4.pipeline.learned_models import models_root, save_fit


def next_session(day: dt.date) -> dt.date:
    return trading_days(day + dt.timedelta(days=1), day + dt.timedelta(days=10))[0]


def horizon_table(scores: pd.DataFrame, h: int, seed: int) -> dict:
    """IC statistics on horizon h's OOS rows (learned prediction and return both known) of the learned rating, each
    kind, TechRating, every sub-score and textbook factor the rows carry, and the shuffled control: rank_ic's."""
    cols = prediction_columns(h)
    ok = (np.isfinite(scores[f"fwd_ret_{h}d"].to_numpy(np.float64)) & scores[cols["learned"]].notna().to_numpy()
          & scores["TechRating"].notna().to_numpy())
    if not ok.any():
        return {"horizon": h, "rows": 0, "days": 0, "table": {}}
    rows = scores.loc[ok, ["Date", f"fwd_ret_{h}d"]]
    named = {"LearnedRating": cols["learned"], "ridge": cols["ridge"], "lgbm": cols["lgbm"], "TechRating": "TechRating",
             **{c: c for c in attributed_columns(scores.columns) if c not in ("TechRating", "LearnedRating")}}
    ric = RankIC(rows, (h,), seed)
    series, table, control = {}, {}, None
    for name, column in named.items():
        stats, detail = ric.column(scores.loc[ok, column].to_numpy(np.float64), detail=True)[h]
        series[name] = detail["ic_series"]
        table[name] = stats["ic"] | {"minus_control_t": stats["ic_minus_control"]["t"]}
        control = control or stats["control_ic"]
    lags = max(h - 1, 0)
    for name in named:
        if name != "TechRating":
            diff = (series[name] - series["TechRating"]).dropna().to_numpy()
            table[name]["minus_tech_t"] = newey_west_t(diff, lags)
    table["control"] = control
    dates = np.unique(rows["Date"].to_numpy())
    return {"horizon": h, "rows": int(ok.sum()), "days": int(len(dates)), "first": str(dates[0])[:10],
            "last": str(dates[-1])[:10], "table": table}


def signal_table(scores: pd.DataFrame, h: int) -> pd.DataFrame:
    """Mean forward return, mean excess over the day's mean and rows per LearnedSignal, on the OOS rows."""
    r = scores[f"fwd_ret_{h}d"]
    ok = r.notna() & scores["LearnedRating"].notna()
    part = pd.DataFrame({"Date": scores.loc[ok, "Date"], "Signal": scores.loc[ok, "LearnedSignal"], "r": r[ok]})
    part["excess"] = part["r"] - part.groupby("Date")["r"].transform("mean")
    table = part.groupby("Signal", observed=False).agg(mean=("r", "mean"), mean_excess=("excess", "mean"),
                                                       rows=("r", "size"))
    return table.reindex(list(SIGNALS))


def verdict(t: dict) -> str:
    if not t["table"]:
        return f"{t['horizon']}-session learned rating: no out-of-sample day (too little history for a first model)."
    lr, tech, ctl = t["table"]["LearnedRating"], t["table"]["TechRating"], t["table"]["control"]
    head = (f"{t['horizon']}-session learned rating (out of sample, {t['days']} days): rank IC {lr['mean']:+.4f} "
            f"(NW t {lr['t']:+.2f}, ICIR {lr['icir']:+.3f}) vs TechRating {tech['mean']:+.4f} (t {tech['t']:+.2f}) and "
            f"control {ctl['mean']:+.4f}; learned - TechRating t {lr['minus_tech_t']:+.2f}")
    beats = np.isfinite(lr["minus_tech_t"]) and lr["minus_tech_t"] >= T_DISTINGUISHABLE
    skill = np.isfinite(lr["minus_control_t"]) and lr["minus_control_t"] >= T_DISTINGUISHABLE
    if beats:
        return head + " — the learned rating ranks better than TechRating (t >= 2)."
    if skill:
        return head + " — better than no skill, but not distinguishable from TechRating."
    return head + " — NOT distinguishable from the no-skill control: the learned rating shows no edge here."


def evaluate_learned(scores: pd.DataFrame, evaluated: list, config, data_dir: Path, source_id: str,
                     spec: WalkForward = WalkForward()) -> tuple[pd.DataFrame, dict]:
    """Fit, persist every fit under data_dir/models, and summarise out of sample. (scores with the learned columns,
    the summary's "learned" section)."""
    scores, run = run_learned(scores, evaluated, config.learned_horizons, spec, next_session(evaluated[-1]))
    tables = {h: horizon_table(scores, h, config.shuffle_seed) for h in config.learned_horizons}
    folders = []
    for h, fits in run.fits.items():
        oos = {k: {"mean_ic": v["mean"], "icir": v["icir"], "t": v["t"], "days": v["days"]}
               for k, v in tables[h]["table"].items()}
        for fit in fits:  # the evaluation's OOS figures go only into the manifest of the model fitted after them
            folders.append(save_fit(data_dir, fit, spec, source_id, oos if fit is fits[-1] else None))
    return scores, summary_section(scores, run, tables, data_dir)


def summary_section(scores: pd.DataFrame, run: LearnedRun, tables: dict, data_dir: Path) -> dict:
    refits = {h: {"count": len(fits), "lgbm_chosen": sum(f.chosen == "lgbm" for f in fits),
                  "first_applies": fits[0].applies_from if fits else None,
                  "last_applies": fits[-1].applies_from if fits else None,
                  "rows_per_fit": int(np.mean([f.rows for f in fits])) if fits else 0}
              for h, fits in run.fits.items()}
    return {"main_horizon": run.main_horizon, "tables": tables, "refits": refits,
            "by_signal": signal_table(scores, run.main_horizon),
            "models_dir": str(models_root(data_dir, run.main_horizon).parent),
            "verdicts": [verdict(tables[h]) for h in tables], "walk_forward": dataclasses.asdict(run.spec)}


def _f(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.4f}"


def render_learned(section: dict) -> str:
    """The report's "Learned rating" section (markdown)."""
    spec = section["walk_forward"]
    parts = ["## Learned rating (walk-forward, out of sample)",
             f"Refit monthly on the last {spec['train_sessions']} sessions whose forward window had closed (gap = "
             f"horizon), {spec['rows_per_day']} training rows per session (subsampled by a hash of symbol and date), "
             f"ridge and LightGBM both fitted; the rating uses the kind with the higher walk-forward IC on the "
             f"training sessions. Models: {section['models_dir']}. Same (session, symbol) rows for every line below.",
             "\n".join(f"- {v}" for v in section["verdicts"])]
    for h, t in section["tables"].items():
        r = section["refits"][h]
        parts.append(f"### {h}-session: {t['rows']:,} rows, {t['days']} days "
                     f"({t.get('first', '—')} .. {t.get('last', '—')}); {r['count']} fits, LightGBM chosen "
                     f"{r['lgbm_chosen']}x")
        lines = ["| rating | IC mean | IC std | ICIR | NW t | t vs control | t vs TechRating |", "|---|---|---|---|---|---|---|"]
        for name, row in t["table"].items():
            lines.append(f"| {name} | {_f(row['mean'])} | {_f(row['std'])} | {_f(row['icir'])} | {_f(row['t'])} | "
                         f"{_f(row.get('minus_control_t'))} | {_f(row.get('minus_tech_t'))} |")
        parts.append("\n".join(lines))
    table = section["by_signal"]
    parts.append(f"### By learned Signal ({section['main_horizon']}-session returns, out of sample)\n"
                 "| signal | rows | mean | mean excess |\n|---|---|---|---|\n"
                 + "\n".join(f"| {s} | {int(row['rows']) if np.isfinite(row['rows']) else 0:,} | "
                             f"{_pct(row['mean'])} | {_pct(row['mean_excess'])} |" for s, row in table.iterrows()))
    return "\n\n".join(parts)


def _pct(v) -> str:
    return "—" if not np.isfinite(v) else f"{v:+.2%}"
