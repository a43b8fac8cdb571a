"""Saved screens: the presets and the user's screens.toml load and validate (errors name the file and the screen);
a scan publishes several screens from one scoring pass through the flow's `screen` / `where` parameters, with files,
artifacts and a history per screen (new / dropped / flipped against the last run of that screen)."""

import datetime as dt
import json

import pandas as pd
import pytest

from technic_v4.aio import run_sync
from technic_v4.domain.scoring.score import SIGNALS
from technic_v4.errors import ConfigError
from technic_v4.pipeline.scan_config import ScanConfig
from technic_v4.pipeline.screens.apply import member_changes, members
from technic_v4.pipeline.screens.model import SIGNAL_NAMES, Screen, catalogue, resolve, run_screens

PRESETS = {"breakouts", "trend-template", "oversold-uptrend", "unusual-volume", "rs-leaders"}
DAY1, DAY2 = dt.date(2026, 10, 12), dt.date(2026, 10, 13)


def test_presets_load_and_parse(tmp_path):
    screens = catalogue(tmp_path)
    assert PRESETS <= set(screens)
    for s in screens.values():
        assert s.source == "preset" and s.description and s.expression.columns
    assert tuple(SIGNAL_NAMES) == tuple(SIGNALS)  # the model's copy of the signal names is the scorer's


def test_users_screens_add_and_replace_presets(tmp_path):
    (tmp_path / "screens.toml").write_text(
        '[my-pullbacks]\nwhere = "RSI14 < 40 and Close > SMA200"\nsort = "RSI14 asc"\nsignals = ["Long", "Avoid"]\n'
        '[breakouts]\nwhere = "BreakoutScore >= 1"\ndescription = "mine"\n')
    screens = catalogue(tmp_path)
    assert screens["my-pullbacks"].source == str(tmp_path / "screens.toml")
    assert screens["my-pullbacks"].ascending and screens["my-pullbacks"].sort_column == "RSI14"
    assert screens["breakouts"].where == "BreakoutScore >= 1" and screens["breakouts"].description == "mine"
    assert [s.name for s in resolve(["my-pullbacks", "rs-leaders"], tmp_path)] == ["my-pullbacks", "rs-leaders"]


@pytest.mark.parametrize("body,words", [
    ('[bad]\nwhere = "RSI14 < < 3"\n', ["screen 'bad'", "where", "position 8"]),
    ('[bad]\nwhere = "__import__(\'os\')"\n', ["screen 'bad'", "not allowed"]),
    ('[bad]\nwhere = "RSI14 < 3"\ncolour = "red"\n', ["screen 'bad'", "colour"]),
    ('[bad]\nwhere = "RSI14 < 3"\nsort = "RSI14 sideways"\n', ["screen 'bad'", "COLUMN desc"]),
    ('[bad]\nwhere = "RSI14 < 3"\nsignals = ["Maybe"]\n', ["screen 'bad'", "unknown signals"]),
    ('["Bad Name"]\nwhere = "RSI14 < 3"\n', ["screen 'Bad Name'", "lowercase"]),
    ('[bad]\ndescription = "no where"\n', ["screen 'bad'", "where"]),
    ('bad = 3\n', ["screen 'bad'", "table"]),
    ('[bad\nwhere = 1\n', ["not valid TOML"]),
])
def test_users_file_errors_name_the_file_and_the_screen(tmp_path, body, words):
    (tmp_path / "screens.toml").write_text(body)
    with pytest.raises(ConfigError) as info:
        catalogue(tmp_path)
    assert str(tmp_path / "screens.toml") in str(info.value)
    for w in words:
        assert w in str(info.value), str(info.value)


def test_unknown_screen_lists_the_known(tmp_path):
    with pytest.raises(ConfigError, match="unknown screen.*'nope'.*breakouts"):
        resolve(["nope"], tmp_path)


def test_config_fields_and_flow_parameters_merge():
    config = ScanConfig.build(screens="breakouts, rs-leaders", where="RSI14 < 30")
    assert config.screens == ["breakouts", "rs-leaders"]
    merged = ScanConfig.build(screens=["breakouts"]).with_screens("oversold-uptrend,rs-leaders", "Close > 1")
    assert merged.screens == ["breakouts", "oversold-uptrend", "rs-leaders"] and merged.where == "Close > 1"
    with pytest.raises(ConfigError, match="where.*position 7"):
        ScanConfig.build(where="RSI14 <> 3")
    with pytest.raises(ConfigError, match="lowercase"):
        ScanConfig.build(screens=["Not A Name"])
    assert [s.name for s in run_screens(merged, None)] == ["breakouts", "oversold-uptrend", "rs-leaders", "where"]


def _table():
    return pd.DataFrame({"Symbol": list("ABCDEF"), "RSI14": [10.0, 20, 25, 50, 15, float("nan")],
                         "Signal": ["Long", "Avoid", "Strong Long", "Long", "Short", "Long"],
                         "TechRating": [5.0, 1, 9, 3, -2, 4]})


def test_members_respect_run_and_screen_signals_and_sort():
    s = Screen(name="low-rsi", where="RSI14 < 30", sort="RSI14 asc")
    assert list(members(_table(), s)["Symbol"]) == ["A", "E", "B", "C"]
    assert list(members(_table(), s, run_signals=["Long", "Strong Long"])["Symbol"]) == ["A", "C"]
    s2 = Screen(name="low-rsi", where="RSI14 < 30", signals=["Long", "Short"])  # TechRating desc by default
    assert list(members(_table(), s2)["Symbol"]) == ["A", "E"]
    assert list(members(_table(), s2, run_signals=["Short"])["Symbol"]) == ["E"]
    assert s2.history_key(["Short"], "k") != s2.history_key(None, "k") != s2.history_key(None, "other-config")
    assert s.history_key(None, "k") == Screen(name="low-rsi", where="RSI14<30 ").history_key(None, "k")


def test_member_changes_new_dropped_flipped():
    before = pd.DataFrame({"Symbol": ["A", "B", "C"], "Signal": ["Long", "Long", "Avoid"]})
    now = pd.DataFrame({"Symbol": ["B", "C", "D"], "Signal": ["Long", "Strong Long", "Short"]})
    assert member_changes(before, now) == {"new": ["D"], "dropped": ["A"], "flipped": ["C"]}
    assert member_changes(None, now) == {"new": ["B", "C", "D"], "dropped": [], "flipped": []}


def _flow_scan(as_of, **params):
    from flows.scan import scan

    config = ScanConfig.build(as_of=as_of, lookback_days=260, max_symbols=800)
    return run_sync(lambda: scan(config=config, **params))


def test_flow_publishes_each_screen_with_its_history(prefect_api, sim_env):
    """Two scans through the flow's `screen` and `where` parameters; every figure checked against pandas."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    sim_env.mkdir(parents=True, exist_ok=True)
    (sim_env / "screens.toml").write_text('[pullbacks]\nwhere = "RSI14 < 40 and ret_21d < 0"\n')
    where = "RSI14 > 60 and Sector != 'Utilities'"

    def direct(results, text):
        mask = (results["RSI14"] < 40) & (results["ret_21d"] < 0) if text == "pullbacks" else \
            (results["RSI14"] > 60) & results["Sector"].notna() & (results["Sector"] != "Utilities")
        return results.loc[mask.fillna(False)].set_index("Symbol")["Signal"].astype(str)

    one = _flow_scan(DAY1, screen="pullbacks,oversold-uptrend")
    everything1 = one.results
    m1 = direct(everything1, "pullbacks")
    assert len(m1) > 5 and set(one.screens["pullbacks"]["Symbol"]) == set(m1.index)
    assert one.screens["pullbacks"]["TechRating"].dropna().is_monotonic_decreasing
    assert {"Symbol", "RSI14", "Close", "ret_21d", "Signal"} <= set(one.screens["pullbacks"].columns)
    info = one.summary["screens"]["pullbacks"]
    assert info["new"] == sorted(m1.index) and info["previous_as_of"] is None and info["rows"] == len(m1)

    two = _flow_scan(DAY2, screen="pullbacks", where=where)
    info2 = json.loads((sim_env / "results" / "latest.json").read_text())["screens"]
    assert set(info2) == {"pullbacks", "where"}
    full2 = pd.read_parquet(sim_env / "results" / "latest.parquet")
    m2 = direct(full2, "pullbacks")
    both = m1.index.intersection(m2.index)
    assert info2["pullbacks"]["previous_as_of"] == DAY1.isoformat()
    assert info2["pullbacks"]["new"] == sorted(m2.index.difference(m1.index))
    assert info2["pullbacks"]["dropped"] == sorted(m1.index.difference(m2.index))
    assert info2["pullbacks"]["flipped"] == sorted(both[m1.loc[both].to_numpy() != m2.loc[both].to_numpy()])
    assert info2["pullbacks"]["new"] or info2["pullbacks"]["dropped"]  # one session later, membership moved
    # the run's own where narrows what the run returns, and is a screen with its own (first) history
    w = direct(full2, "where")
    assert set(two.results["Symbol"]) == set(w.index) and info2["where"]["new"] == sorted(w.index)
    # files per screen in the run's folder, one table artifact each
    run_id = two.summary["flow_run_id"]
    folder = sim_env / "results" / "runs" / run_id / "screens"
    assert len(pd.read_csv(folder / "pullbacks.csv")) == len(m2)
    assert len(pd.read_parquet(folder / "where.parquet")) == len(w)
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    keys = {a.key for a in arts}
    assert {"scan-top", "screen-pullbacks", "screen-where"} <= keys
    table = next(a for a in arts if a.key == "screen-pullbacks")
    assert len(json.loads(table.data)) == min(50, len(m2)) and "where" in table.description


def test_flow_fails_clearly_on_an_unknown_screen(prefect_api, sim_env):
    with pytest.raises(ConfigError, match="unknown screen.*'no-such'"):
        _flow_scan(DAY1, screen="no-such")


def test_cli_lists_screens_and_rejects_a_bad_where_before_scanning(prefect_api, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from technic_v4.cli import app

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)  # the session's server: the CLI starts none of its own
    monkeypatch.setenv("TECHNIC_DATA_DIR", str(tmp_path))
    (tmp_path / "screens.toml").write_text('[mine]\nwhere = "RSI14 < 25"\ndescription = "my own"\n')
    listed = CliRunner().invoke(app, ["screens"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and "mine" in listed.output and "rs-leaders" in listed.output
    bad = CliRunner().invoke(app, ["scan", "--where", "RSI14 << 3"])
    assert bad.exit_code == 2 and "position 7" in bad.output
    started = []
    monkeypatch.setattr("technic_v4.cli._prepare_prefect_api", lambda: started.append(1))
    typo = CliRunner().invoke(app, ["scan", "--where", "RSI14 <"])
    assert typo.exit_code == 2 and "ends too early" in typo.output and started == []  # no Prefect server for a typo
    unknown = CliRunner().invoke(app, ["scan", "--screen", "nope"])
    assert unknown.exit_code == 2 and "unknown screen" in unknown.output and "mine" in unknown.output


def test_screen_names_and_where_validate_without_numpy_or_pandas():
    """What the configs call to validate `where` / `screens` stays light (the CLI validates before heavy imports)."""
    import subprocess
    import sys

    code = ("import sys; from technic_v4.pipeline.screens.model import valid_names, valid_where; "
            "valid_where('RSI14 < 30 and Sector in (\"Energy\")'); valid_names('breakouts,rs-leaders'); "
            "print('pandas' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
