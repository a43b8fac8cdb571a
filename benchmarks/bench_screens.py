"""Screens benchmark: a `where` over a 6,000-row result table, and publishing five screens vs one from one scan.

    python -m benchmarks.bench_screens [--quick]

The table is `score_panel` on bench_scoring's synthetic 6,000-symbol panel (every result column). Publishing is
measured side by side in one run: the plain stage (members, sort, CSV + parquet per screen, member history) for one
screen and for five, and the Prefect table artifacts (one per screen) posted to a real `prefect server start`.
The five screens are the presets whose columns the table has, topped up with screens over today's columns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks.bench_scoring import best_of, reference_for, synthetic_panel
from technic_v4.domain.regime import SIDEWAYS, Regime
from technic_v4.domain.scoring.score import score_panel
from technic_v4.domain.screens.evaluate import evaluate
from technic_v4.domain.screens.expression import parse
from technic_v4.pipeline.screens.model import Screen, catalogue
from technic_v4.pipeline.screens.publish import screen_results, write_screens

WHERE_TARGET_S, PUBLISH_EXTRA_TARGET_S = 0.010, 0.3
EXPRESSIONS = [
    "RSI14 < 30 and Close > SMA200",
    "Sector in ('Technology', 'Energy') and TechRating > 10 and abs(ret_21d) > 5%",
    "20 <= RSI14 < 70 and Close > SMA50 and SMA50 > SMA200 and DollarVolume20 >= 20M and not (Signal == 'Avoid')"
    " and max(pct_from_52w_high, -0.25) > -0.25",
]
FILLERS = [
    Screen(name="pullbacks", where="RSI14 < 40 and Close > SMA200"),
    Screen(name="momentum", where="ret_63d > 20% and Close > SMA50", sort="ret_63d desc"),
    Screen(name="near-high", where="pct_from_52w_high > -0.03", sort="pct_from_52w_high desc"),
    Screen(name="volume-spike", where="vol_spike_ratio >= 2", sort="vol_spike_ratio desc"),
    Screen(name="strong", where="Signal in ('Strong Long', 'Long') and TechRating >= 16"),
]


def result_table(n: int):
    panel = synthetic_panel(n)
    reference = reference_for(panel)
    reference["sector"] = np.random.default_rng(1).choice(["Technology", "Energy", "Utilities", "Health Care"], n)
    return score_panel(panel, reference, Regime(trend=SIDEWAYS))


def five_screens(table) -> list[Screen]:
    usable = [s for s in catalogue(None).values() if set(s.expression.columns) <= set(table.columns)]
    return (usable + [f for f in FILLERS if f.name not in {s.name for s in usable}])[:5]


def _publish_plain(table, screens, data_dir: Path, run: int) -> None:
    done = screen_results(table, screens, data_dir=data_dir, config_key="bench")
    write_screens(done, table, data_dir=data_dir, run_id=f"run-{run}", as_of=dt.date(2026, 10, 12))
    return done


def _artifacts(done_one, done_five, repeat: int) -> dict:
    from benchmarks.prefect_stack import PrefectServer

    with PrefectServer() as server:
        os.environ["PREFECT_API_URL"] = server.api_url
        os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")  # no log flush after the server stops
        try:
            from prefect import flow

            from flows.publish import publish_screen_artifacts

            summary = SimpleNamespace(simulated=True, as_of="2026-10-12")

            @flow(name="bench-screen-artifacts", log_prints=False)
            async def post(which: str) -> list[float]:
                """Inside a flow run, as the scan posts them (the run's client); 1 vs 5 alternating."""
                times = {"one": [], "five": []}
                for _ in range(repeat):
                    for key, done in (("one", done_one), ("five", done_five)):
                        t0 = time.perf_counter()
                        await publish_screen_artifacts(done, summary)
                        times[key].append(time.perf_counter() - t0)
                return times

            times = asyncio.run(post("both"))
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    return {"one_s": min(times["one"]), "five_s": min(times["five"])}


def run(quick: bool = False) -> dict:
    n, repeat = 6000, (5 if quick else 20)
    table = result_table(n)
    where = {}
    t0 = time.perf_counter()  # the process's first expression: pandas initialises isin/notna lazily (a scan has)
    evaluate(EXPRESSIONS[-1] + " and Sector in ('Energy')", table.head(10))
    process_first = time.perf_counter() - t0
    for text in EXPRESSIONS:
        parse.cache_clear()
        t0 = time.perf_counter()
        rows = int(evaluate(text, table).sum())
        cold = time.perf_counter() - t0
        warm, _ = best_of(lambda: evaluate(text, table), repeat)
        where[text] = {"rows_selected": rows, "first_call_s": round(cold, 5), "best_s": round(warm, 5)}
    screens = five_screens(table)
    with tempfile.TemporaryDirectory(prefix="technic-bench-screens-") as tmp:
        counter = iter(range(10_000))
        one, _ = best_of(lambda: _publish_plain(table, screens[:1], Path(tmp), next(counter)), max(3, repeat // 4))
        five, _ = best_of(lambda: _publish_plain(table, screens, Path(tmp), next(counter)), max(3, repeat // 4))
        done_one = _publish_plain(table, screens[:1], Path(tmp), next(counter))
        done_five = _publish_plain(table, screens, Path(tmp), next(counter))
    try:
        arts = _artifacts(done_one, done_five, 3 if quick else 5)
    except Exception as exc:  # no server on this machine: the plain figures still stand, the gap is said
        arts = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    extra = (five - one) + (arts["five_s"] - arts["one_s"] if "five_s" in arts else 0.0)
    return {
        "quick": quick, "rows": n, "where": where, "process_first_expression_s": round(process_first, 4),
        "where_worst_best_s": max(v["best_s"] for v in where.values()), "where_target_s": WHERE_TARGET_S,
        "screens": [{"name": s.name, "where": s.where, "rows": int(len(d.members))} for s, d in
                    zip(screens, done_five)],
        "publish_plain_one_s": round(one, 4), "publish_plain_five_s": round(five, 4),
        "artifacts": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in arts.items()},
        "publish_extra_five_vs_one_s": round(extra, 4), "publish_extra_target_s": PUBLISH_EXTRA_TARGET_S,
    }


def markdown(result: dict) -> str:
    r = result
    lines = [
        "## Screens",
        "",
        f"A `where` over the {r['rows']:,}-row result table of `score_panel` (synthetic panel), best of repeated calls "
        f"(parse cached) and the first call of each (parse included)" + (" (quick mode)" if r.get("quick") else "")
        + f". The process's very first expression (10 rows) took {r.get('process_first_expression_s', 0) * 1e3:.0f} ms: "
        "pandas initialising isin/notna, which a scan has already done while scoring.",
        "",
        "| expression | rows selected | first call ms | best ms |",
        "|---|---:|---:|---:|",
    ]
    for text, v in r["where"].items():
        lines.append(f"| `{text}` | {v['rows_selected']:,} | {v['first_call_s'] * 1e3:.2f} | {v['best_s'] * 1e3:.2f} |")
    a = r["artifacts"]
    art = (f"table artifacts on a real Prefect server: one {a['one_s'] * 1e3:.0f} ms, five {a['five_s'] * 1e3:.0f} ms"
           if "one_s" in a else f"artifacts not measured ({a.get('error')})")
    lines += [
        "",
        f"Worst `where`: {r['where_worst_best_s'] * 1e3:.2f} ms (target <= {r['where_target_s'] * 1e3:.0f} ms).",
        "",
        f"Publishing five screens vs one from the same table: plain stage (members, sort, CSV + parquet, history) "
        f"one {r['publish_plain_one_s'] * 1e3:.0f} ms, five {r['publish_plain_five_s'] * 1e3:.0f} ms; {art}. "
        f"**Five cost {r['publish_extra_five_vs_one_s'] * 1e3:.0f} ms over one** (target <= "
        f"{r['publish_extra_target_s'] * 1e3:.0f} ms). Screens: "
        + ", ".join(f"{s['name']} ({s['rows']} rows)" for s in r["screens"]) + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    out = run(quick="--quick" in sys.argv)
    print(json.dumps(out, indent=1, default=str))
    print(markdown(out))
