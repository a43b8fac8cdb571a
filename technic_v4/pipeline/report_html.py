"""The scan's self-contained HTML report (report.html in the run's folder): the summary, what changed, each
published table (sortable by a click on its header, a few lines of inline JS) and its charts inlined as base64 PNG.

One file that opens offline anywhere: no script, style sheet, font or image is fetched; nothing refers to http(s).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from technic_v4.pipeline.charts import ChartsReport, png_data_uri
from technic_v4.pipeline.publish import results_dir, run_dir
from technic_v4.pipeline.report import SIM_BANNER, counts_text, short_list, top_table
from technic_v4.pipeline.summary import ScanSummary

REPORT_ROWS = 200  # rows per table in the report; the run's CSV/parquet has every row

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1560px}
h1{font-size:22px;margin:0 0 6px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.sim{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;font-weight:600}
.meta td{padding:1px 12px 1px 0;vertical-align:top} .meta td:first-child{color:#666}
table.rows{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
table.rows th{background:#f1f3f5;cursor:pointer;position:sticky;top:0;padding:4px 8px;text-align:right;
  white-space:nowrap;user-select:none} table.rows th:after{content:" \\2195";color:#aaa}
table.rows td{padding:3px 8px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
table.rows td.t,table.rows th.t{text-align:left}
tr.SL td{color:#1b5e20;font-weight:600} tr.L td{color:#2e7d32} tr.S td{color:#b71c1c} tr.SS td{color:#b71c1c;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(700px,1fr));gap:12px}
.charts img{width:100%;border:1px solid #ddd} .fail{color:#b71c1c}
"""

# Click a header: sort by that column (numbers as numbers, blanks last), click again: reverse.
SORT_JS = """
document.querySelectorAll('table.rows th').forEach(function(th){th.addEventListener('click',function(){
 var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),
 d=th.dataset.dir==='a'?'d':'a';th.dataset.dir=d;
 var r=Array.prototype.slice.call(b.rows),k=function(x){var s=x.cells[i].textContent.replace(/[,%$]/g,'');
 var n=parseFloat(s);return s===''?null:(isNaN(n)?s:n)};
 r.sort(function(p,q){var a=k(p),c=k(q);if(a===null)return 1;if(c===null)return -1;
 var o=(typeof a==='number'&&typeof c==='number')?a-c:String(a).localeCompare(String(c));return d==='a'?o:-o});
 r.forEach(function(x){b.appendChild(x)})})});
"""

SIGNAL_CLASS = {"Strong Long": "SL", "Long": "L", "Short": "S", "Strong Short": "SS"}


def run_folder(data_dir: Path, run_id: str) -> Path:
    """results/runs/<run_id>/: this run's charts/ and report.html (pipeline.publish.run_dir, the one home)."""
    return run_dir(data_dir, run_id)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return html.escape(str(v))


def rows_table(records: list[dict]) -> str:
    """A sortable <table> of JSON-safe records (report.top_table's rounded trader columns)."""
    if not records:
        return "<p>no rows</p>"
    cols = list(records[0])
    text = {c for c in cols if all(isinstance(r.get(c), str) or r.get(c) is None for r in records)}
    head = "".join(f'<th class="{"t" if c in text else ""}">{html.escape(c)}</th>' for c in cols)
    body = "\n".join(
        f'<tr class="{SIGNAL_CLASS.get(r.get("Signal"), "")}">'
        + "".join(f'<td class="{"t" if c in text else ""}">{_cell(r.get(c))}</td>' for c in cols) + "</tr>"
        for r in records)
    return f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def image_data_uri(path: Path) -> str:
    return png_data_uri(Path(path).read_bytes())


def _changes_html(changes: dict, previous_as_of: str | None) -> str:
    since = f"since the last scan of this configuration ({previous_as_of})" if previous_as_of else \
        "first scan of this configuration"
    items = "".join(f"<li><b>{label}</b> ({len(changes.get(key, []))}): {html.escape(short_list(changes.get(key, [])))}"
                    "</li>" for key, label in (("new", "new"), ("dropped", "dropped"), ("changed", "flipped")))
    return f"<p>{html.escape(since)}</p><ul>{items}</ul>"


def _charts_html(charts: ChartsReport | None, table: str) -> str:
    if charts is None:
        return ""
    shown = charts.for_table(table)
    imgs = "".join(f'<figure><img alt="{html.escape(c.title)}" title="{html.escape(c.title)}" '
                   f'src="{image_data_uri(c.path)}"></figure>' for c in shown)
    failed = [c for c in charts.failures if table in c.tables]
    fails = "".join(f'<p class="fail">chart of {html.escape(c.symbol)} failed: {html.escape(c.error)}</p>'
                    for c in failed)
    return f'<h3>Charts of the top {len(shown)}</h3><div class="charts">{imgs}</div>{fails}' if shown or fails else ""


def render_report(summary: ScanSummary, tables: Sequence[tuple[str, pd.DataFrame]], charts: ChartsReport | None,
                  *, headline: str = "", files: dict[str, str] | None = None) -> str:
    """The whole report as one HTML string. `tables` are the published (name, rows) pairs, best first; `files`
    names the run's data files (label -> relative path) linked beside the tables."""
    s = summary
    title = f"technic scan {s.as_of}" + (" (SIMULATED)" if s.simulated else "")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if s.simulated:
        parts.append(f'<p class="sim">{html.escape(SIM_BANNER)}</p>')
    if headline:
        parts.append(f"<p><b>{html.escape(headline)}</b></p>")
    meta = [("regime", s.regime), ("source", s.source), ("configuration", s.config_key),
            ("universe", f"{s.prescreen['universe']:,} -> kept {s.prescreen['kept']:,}"),
            ("signals", counts_text(s.signals)), ("flow run", s.flow_run_id)]
    if files:
        meta.append(("files", " · ".join(f'<a href="{html.escape(p)}">{html.escape(k)}</a>' for k, p in files.items())))
    parts.append('<table class="meta">' + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v if k == 'files' else html.escape(str(v))}</td></tr>" for k, v in meta)
        + "</table>")
    parts.append("<h2>What changed</h2>" + _changes_html(s.changes, s.previous_as_of))
    for name, frame in tables:
        shown = min(REPORT_ROWS, len(frame))
        parts.append(f"<h2>{html.escape(name)}: top {shown} of {len(frame):,}</h2>")
        parts.append(_charts_html(charts, name))  # the charts first: what a trader looks at before the rows
        parts.append(rows_table(top_table(frame, REPORT_ROWS)))
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in s.metrics.stages.items())
    parts.append(f"<h2>Run</h2><p>wall {s.metrics.wall_seconds:.2f} s ({html.escape(stages)})</p>")
    data = html.escape(json.dumps({"as_of": s.as_of, "config_key": s.config_key, "simulated": s.simulated}))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body data-scan=\"{data}\">\n" + "\n".join(parts)
            + f"\n<script>{SORT_JS}</script></body></html>\n")
