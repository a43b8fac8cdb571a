"""How ScanConfig looks in the Prefect UI's Custom Run form (Prefect builds the form from its JSON schema): trader
filters first with readable titles, engineering settings after them, and no `Property is type "None"` toggles.

An optional field (`X | None`) becomes a plain X in the schema, its default null left out; ScanConfig's
serializer leaves None values out of every dump too, so the form's defaults and the parameters a run sends never carry a
null the schema would reject, and an omitted field means what None means (use the environment's setting)."""

from __future__ import annotations

# The trader's questions first, in this order; every other field follows in its definition order.
FORM_ORDER = ("signals", "min_market_cap", "min_avg_volume", "min_price", "sectors", "watchlist", "screens", "where",
              "max_symbols", "as_of", "intraday", "chart_top")
TITLES = {
    "signals": "Signals to show",
    "min_market_cap": "Min market cap, $M (500 = $500M)",
    "min_avg_volume": "Min 20-day average volume, shares",
    "min_price": "Min price, USD",
    "sectors": "Sectors (empty: all)",
    "watchlist": "Watchlist symbols",
    "max_symbols": "Universe: most liquid N symbols",
    "as_of": "As of session (empty: last completed)",
    "intraday": "Add today's unfinished session",
    "chart_top": "Charts of the top N rows",
    "data_source": "Engineering · data source (empty: TECHNIC_DATA_SOURCE)",
    "lookback_days": "Engineering · lookback sessions",
    "task_runner": "Engineering · task runner (empty: TECHNIC_TASK_RUNNER)",
    "max_workers": "Engineering · workers (empty: TECHNIC_MAX_WORKERS)",
    "data_dir": "Engineering · data dir (empty: TECHNIC_DATA_DIR)",
    "csv_dir": "Engineering · CSV folder (empty: TECHNIC_CSV_DIR)",
    "allow_short_history": "Engineering · allow a short lookback",
    "blacklist_after": "Engineering · blacklist after N low-volume scans",
    "on_missing_day": "Engineering · on a missing day",
    "reuse_scores": "Engineering · reuse unchanged rows",
}


def _without_null(prop: dict) -> dict:
    branches = prop.get("anyOf")
    if not branches or {"type": "null"} not in branches:
        return prop
    rest = [b for b in branches if b != {"type": "null"}]
    out = {k: v for k, v in prop.items() if k != "anyOf"}
    out.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
    if out.get("default", 0) is None:
        del out["default"]
    return out


def form_schema(schema: dict) -> None:
    """pydantic's json_schema_extra hook: reorder, retitle and drop the null branches of ScanConfig's schema."""
    props = {name: _without_null(p) for name, p in schema.get("properties", {}).items()}
    first = [n for n in FORM_ORDER if n in props]
    order = first + [n for n in props if n not in first]
    for position, name in enumerate(order):
        props[name]["position"] = position
        if name in TITLES:
            props[name]["title"] = TITLES[name]
    schema["properties"] = {n: props[n] for n in order}
