import datetime as dt

import pytest

from technic_v4.config import load_settings
from technic_v4.errors import ConfigError


def test_defaults_resolve_to_simulated_without_key(monkeypatch):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("TECHNIC_DATA_SOURCE", raising=False)
    s = load_settings()
    assert s.data_source == "auto"
    assert s.resolved_source == "simulated"


def test_auto_resolves_to_polygon_with_key(monkeypatch):
    monkeypatch.setenv("POLYGON_API_KEY", "k" * 20)
    monkeypatch.delenv("TECHNIC_DATA_SOURCE", raising=False)
    assert load_settings().resolved_source == "polygon"


def test_blank_key_counts_as_unset(monkeypatch):
    monkeypatch.setenv("POLYGON_API_KEY", "   ")
    assert load_settings().resolved_source == "simulated"


@pytest.mark.parametrize(
    "var,value,fragment",
    [
        ("TECHNIC_MAX_WORKERS", "abc", "valid integer"),
        ("TECHNIC_MAX_WORKERS", "0", "greater than or equal to 1"),
        ("TECHNIC_DATA_SOURCE", "yahoo", "'auto', 'polygon', 'flatfiles', 'csv' or 'simulated'"),
        ("TECHNIC_TASK_RUNNER", "dask", "'ray' or 'thread'"),
        ("TECHNIC_RATE_LIMIT", "-1", "greater than or equal to 0"),
        ("TECHNIC_ASYNC_IO", "maybe", "valid boolean"),
        ("POLYGON_BASE_URL", "ftp://x", "http:// or https://"),
    ],
)
def test_bad_env_value_names_the_variable(monkeypatch, var, value, fragment):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert f"{var}={value!r}" in str(exc.value)
    assert fragment in str(exc.value)


def test_case_insensitive_choices(monkeypatch):
    monkeypatch.setenv("TECHNIC_TASK_RUNNER", "Thread")
    assert load_settings().task_runner == "thread"


def test_api_key_never_in_error_or_repr(monkeypatch):
    secret = "SECRETKEY1234567890abcd"
    monkeypatch.setenv("POLYGON_API_KEY", secret)
    monkeypatch.setenv("TECHNIC_MAX_WORKERS", "-5")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert secret not in str(exc.value)
    monkeypatch.delenv("TECHNIC_MAX_WORKERS")
    s = load_settings()
    assert secret not in repr(s) and secret not in str(s.model_dump())
    assert s.api_key() == secret


def test_missing_key_error_is_actionable(monkeypatch):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="POLYGON_API_KEY is not set"):
        load_settings().api_key()


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("ALL", "all"), ("40", 40), ("0", 0)])
def test_details_per_scan_is_auto_all_or_a_count(monkeypatch, value, expected):
    monkeypatch.setenv("TECHNIC_DETAILS_PER_SCAN", value)
    assert load_settings().details_per_scan == expected


def test_details_per_scan_rejects_negative_and_settle_time_parses(monkeypatch):
    monkeypatch.setenv("TECHNIC_DETAILS_PER_SCAN", "-3")
    with pytest.raises(ConfigError, match="TECHNIC_DETAILS_PER_SCAN"):
        load_settings()
    monkeypatch.delenv("TECHNIC_DETAILS_PER_SCAN")
    assert load_settings().settle_time == dt.time(20, 30)
    monkeypatch.setenv("TECHNIC_SETTLE_TIME", "07:00")
    assert load_settings().settle_time == dt.time(7, 0)


def test_empty_data_dir_means_the_default_one_home_for_it(monkeypatch):
    from technic_v4.config import DEFAULT_DATA_DIR

    monkeypatch.setenv("TECHNIC_DATA_DIR", "  ")
    assert load_settings().data_dir == DEFAULT_DATA_DIR
    monkeypatch.setenv("TECHNIC_DATA_DIR", "/tmp/elsewhere")
    assert str(load_settings().data_dir) == "/tmp/elsewhere"


def test_every_technic_variable_read_anywhere_is_a_setting():
    """`technic config` shows every TECHNIC_* variable the product reads: none is parsed by hand elsewhere."""
    import re
    from pathlib import Path

    from technic_v4.config import Settings

    root = Path(__file__).resolve().parents[1]
    read = set()
    for path in [*root.glob("technic_v4/**/*.py"), *root.glob("flows/**/*.py"), *root.glob("deployments/*.py")]:
        read |= set(re.findall(r"\bTECHNIC_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    fields = {f.validation_alias for f in Settings.model_fields.values()}
    assert {"TECHNIC_PREFECT_SERVER_LINGER", "TECHNIC_RAY_HEAD"} <= fields
    assert read - fields == set()


def test_market_cap_floor_is_given_in_millions_and_a_dollar_figure_is_refused():
    from technic_v4.evaluation import EvalConfig
    from technic_v4.pipeline.prescreen import DEFAULT_RULES
    from technic_v4.pipeline.scan_config import ScanConfig
    from technic_v4.pipeline.screen import rules_for

    assert ScanConfig().min_market_cap == 500 and EvalConfig().min_market_cap == 500
    assert rules_for(ScanConfig()).min_market_cap == DEFAULT_RULES.min_market_cap == 500e6  # the rules work in USD
    assert rules_for(ScanConfig(min_market_cap=2000)).min_market_cap == 2e9
    assert EvalConfig(min_market_cap=2000).floor_rules().min_market_cap == 2e9
    for build in (ScanConfig.build, EvalConfig.build):
        with pytest.raises(ConfigError, match=r"min_market_cap.*\$M.*write 500"):
            build(min_market_cap=500e6)


def test_config_key_of_the_default_floor_is_the_one_scans_had_before_the_floor_was_in_millions():
    import hashlib
    import json

    from technic_v4.pipeline.scan_config import ScanConfig
    from technic_v4.pipeline.state import RESULT_FIELDS, config_key

    config = ScanConfig()
    before = {name: getattr(config, name) for name in RESULT_FIELDS} | {"min_market_cap": 500e6, "source": "sim"}
    expected = hashlib.sha1(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert config_key(config, "sim") == expected  # history (new / dropped) carries over the change of unit


def test_custom_run_form_shows_trader_filters_first_with_readable_units():
    from prefect.utilities.callables import parameter_schema

    from flows.scan import scan

    schema = parameter_schema(scan.fn).model_dump_for_openapi()
    props = schema["definitions"]["ScanConfig"]["properties"]
    first = sorted(props, key=lambda n: props[n]["position"])[:4]
    assert first == ["signals", "min_market_cap", "min_avg_volume", "min_price"]
    assert props["min_market_cap"]["title"] == "Min market cap, $M (500 = $500M)"
    assert props["min_market_cap"]["default"] == 500
    assert not any("anyOf" in p and {"type": "null"} in p["anyOf"] for p in props.values())  # no "type None" toggles
    assert all(props[n]["title"].startswith("Engineering") for n in ("data_source", "task_runner", "data_dir"))


def test_a_csv_folder_in_the_environment_picks_the_csv_source_when_no_key_is_set(monkeypatch, tmp_path):
    for k in ("POLYGON_API_KEY", "TECHNIC_DATA_SOURCE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("TECHNIC_CSV_DIR", str(tmp_path))
    assert load_settings().resolved_source == "csv"  # was the simulated market, silently
    monkeypatch.setenv("POLYGON_API_KEY", "pk_test_key")
    assert load_settings().resolved_source == "polygon"  # a key still wins, as documented
    monkeypatch.setenv("TECHNIC_DATA_SOURCE", "simulated")
    assert load_settings().resolved_source == "simulated"
