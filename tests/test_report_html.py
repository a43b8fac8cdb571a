"""The scan's report.html, parsed: one row per published row (up to REPORT_ROWS), the charts inlined, nothing fetched
from a network; the charts artifact and the run's name in the Prefect API; `technic chart` and `technic top --open`."""

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from technic_v4.api import ScanConfig, run_scan_output
from technic_v4.pipeline.report_html import REPORT_ROWS, run_folder
from tests.support.small_market import LOOKBACK, SYMBOLS

DAY = dt.date(2026, 10, 13)


class ReportParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.imgs, self.urls, self.scripts_with_src, self.in_body_row = [], [], [], 0, False
        self.cells: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href"):
            if k in a:
                self.urls.append(a[k])
        if tag == "img":
            self.imgs.append(a)
        if tag == "script" and "src" in a:
            self.scripts_with_src += 1
        if tag == "tbody":
            self.in_body_row = True
        if tag == "tr" and self.in_body_row:
            self.cells = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body_row = False
        if tag == "tr" and self.cells is not None:
            self.rows.append(self.cells)
            self.cells = None

    def handle_data(self, data):
        if self.cells is not None and data.strip():
            self.cells.append(data.strip())


@pytest.fixture
def scanned(prefect_api, tmp_path, monkeypatch):
    from tests.support.small_market import small_market

    small_market(tmp_path / "technic_data", monkeypatch)
    return run_scan_output(ScanConfig.build(as_of=DAY, max_symbols=SYMBOLS, lookback_days=LOOKBACK)), \
        tmp_path / "technic_data"


def test_report_has_rows_charts_and_no_network_reference(scanned, monkeypatch):
    out, data_dir = scanned
    seen = out.summary["seen"]
    report = Path(seen["report"])
    assert report == run_folder(data_dir, out.summary["flow_run_id"]) / "report.html"
    assert f"report {report}" in out.message  # technic scan prints it
    text = report.read_text()
    parser = ReportParser()
    parser.feed(text)
    assert len(parser.rows) == min(REPORT_ROWS, len(out.results))
    assert [r[0] for r in parser.rows] == out.results["Symbol"].head(REPORT_ROWS).tolist()  # ranked as published
    assert len(parser.imgs) == seen["charts"]["charts"] == min(12, len(out.results))  # the default top 12
    top12 = out.results["Symbol"].head(12).tolist()
    assert [i["alt"].split(" · ")[0] for i in parser.imgs] == top12  # each chart's title names its row
    assert all(i["src"].startswith("data:image/png;base64,") for i in parser.imgs)
    assert not re.search(r"https?://", text) and parser.scripts_with_src == 0
    assert all(not u.startswith(("http:", "https:", "//")) for u in parser.urls)
    assert "SIMULATED" in text and "What changed" in text
    charts = sorted((report.parent / "charts").glob("*.png"))
    assert len(charts) == len(top12) and all(p.stat().st_size > 20_000 for p in charts)
    with Image.open(report.parent / "charts" / f"{top12[0]}.png") as img:
        assert img.text["Title"].startswith(f"{top12[0]} · {out.results['Signal'].iloc[0]} · TechRating")

    # the Prefect UI: the charts artifact has the images, the run is named by what it found
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[out.summary["flow_run_id"]])))}
        run = client.read_flow_run(out.summary["flow_run_id"])
    assert arts["scan-charts"].data.count("](data:image/png;base64,") == len(top12)
    assert arts["scan-report-html"].data.endswith(f"({report.as_uri()})")
    assert "API calls" in arts["scan-diagnostics"].data and "API calls" not in arts["scan-report"].data
    assert run.name == seen["headline"] and run.name.startswith(f"{DAY} · ")
    universe = out.summary["prescreen"]["universe"]
    assert f"top {out.results['Symbol'].iloc[0]} · all signals, {universe:,} symbols · SIMULATED" in run.name

    # technic chart SYMBOL draws the published plan; technic top --open opens this report
    from typer.testing import CliRunner

    from technic_v4.cli import app

    png = data_dir / "one.png"
    res = CliRunner().invoke(app, ["chart", top12[1].lower(), "--as-of", DAY.isoformat(), "--out", str(png)])
    assert res.exit_code == 0, res.output
    row = out.results.iloc[1]
    with Image.open(png) as img:
        assert img.text["Title"].startswith(f"{top12[1]} · {row['Signal']} · TechRating {row['TechRating']:.1f}")
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    res = CliRunner().invoke(app, ["top", "--open", "--n", "3"])
    assert res.exit_code == 0 and opened == [report.as_uri()], res.output
    assert json.loads((data_dir / "results" / "latest.json").read_text())["flow_run_id"] == out.summary["flow_run_id"]
