"""The optional reference file beside per-symbol CSV files (`_reference.csv`, technic_v4.data.csvdir.REFERENCE_FILE):
what bars cannot tell, one row a symbol.

    symbol,name,sector,industry,shares_outstanding[,type]
    AAPL,Apple Inc.,Information Technology,Technology Hardware,5480000000

Headers as in the symbol files: case-insensitive, spaces and `_-/.` ignored, aliases in REFERENCE_ALIASES. Empty fields
are unknown (None / NaN), never guessed; a shares_outstanding that is text but not a number is an error naming the file
and line. A symbol with a file but no row here is listed with its ticker as its name, type CS (ETF for the index ETFs),
no sector and unknown shares outstanding (market cap unknown: kept and flagged by the prescreen).
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from technic_v4.config import TICKER
from technic_v4.data.columns import INDEX_ETFS, REFERENCE_COLUMNS, conform
from technic_v4.errors import DataSourceError

MAX_EXAMPLES = 3


# ---- shared with the symbol files (technic_v4.data.csvdir) -----------------------------------------------------------

def normalise_header(name: str) -> str:
    return re.sub(r"[\s_\-/.]", "", str(name).strip().lower())


def read_text(path: Path, data: bytes | None) -> str:
    raw = path.read_bytes() if data is None else data
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig")


def header_columns(headers, aliases: dict[str, str], path: Path) -> dict[str, str]:
    """field -> the file's header for it; a header that two columns share is an error naming the file."""
    found: dict[str, str] = {}
    for header in headers:
        name = aliases.get(normalise_header(header))
        if name is None:
            continue
        if name in found:
            raise DataSourceError(f"{path}: columns {found[name]!r} and {header!r} both mean {name!r}; keep one")
        found[name] = header
    return found



# ---- the reference file -------------------------------------------------------------------------------------------------


REFERENCE_ALIASES: dict[str, str] = {
    **dict.fromkeys(("symbol", "ticker"), "symbol"),
    **dict.fromkeys(("name", "company", "companyname", "security"), "name"),
    **dict.fromkeys(("sector", "gicssector"), "sector"),
    **dict.fromkeys(("industry", "gicssubindustry", "subindustry"), "industry"),
    **dict.fromkeys(("sharesoutstanding", "shares"), "shares_outstanding"),
    "type": "type",
}


def read_reference_file(path: Path, data: bytes | None = None) -> pd.DataFrame:
    """The optional reference file -> REFERENCE_COLUMNS (unknown fields None/NaN); DataSourceError naming the file."""
    path = Path(path)
    try:
        raw = pd.read_csv(io.StringIO(read_text(path, data)), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataSourceError(f"{path}: not a readable CSV file ({type(exc).__name__}: {exc})") from None
    cols = header_columns(raw.columns, REFERENCE_ALIASES, path)
    if "symbol" not in cols:
        raise DataSourceError(f"{path}: no symbol column; found {list(raw.columns)} "
                              "(expected symbol,name,sector,industry,shares_outstanding)")
    out = pd.DataFrame({"symbol": raw[cols["symbol"]].str.strip().str.upper()})
    for name in ("name", "sector", "industry", "type"):
        out[name] = raw[cols[name]].str.strip().replace("", None) if name in cols else None
    if "shares_outstanding" in cols:
        text = raw[cols["shares_outstanding"]].str.strip().str.replace(",", "", regex=False)
        shares = pd.to_numeric(text, errors="coerce")
        bad = shares.isna() & (text != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataSourceError(f"{path}: line {i + 2}: shares_outstanding {raw[cols['shares_outstanding']].iat[i]!r} "
                                  f"is not a number ({int(bad.sum())} such rows)")
        out["shares_outstanding"] = shares.to_numpy(dtype=float)
    else:
        out["shares_outstanding"] = np.nan
    bad = ~out["symbol"].str.match(TICKER)
    if bad.any():
        raise DataSourceError(f"{path}: not ticker symbols: {sorted(out.loc[bad, 'symbol'])[:MAX_EXAMPLES]}")
    if out["symbol"].duplicated().any():
        raise DataSourceError(f"{path}: symbols listed twice: {sorted(out.loc[out['symbol'].duplicated(), 'symbol'])[:5]}")
    return out


def listing_frame(symbols: list[str], reference: pd.DataFrame | None) -> pd.DataFrame:
    """REFERENCE_COLUMNS for the symbols that have a file, with what the reference file knows of them (the name is
    the ticker when it gives none: a listed symbol always has a name)."""
    ref = reference.set_index("symbol") if reference is not None and len(reference) else None
    rows = []
    for s in symbols:
        known = ref.loc[s] if ref is not None and s in ref.index else None
        get = (lambda k: known[k]) if known is not None else (lambda k: None)
        rows.append({
            "symbol": s, "name": get("name") or s, "type": get("type") or ("ETF" if s in INDEX_ETFS else "CS"),
            "active": True, "primary_exchange": None, "sic_code": None, "sector": get("sector"),
            "industry": get("industry"), "list_date": None,
            "shares_outstanding": np.nan if known is None else float(known["shares_outstanding"]),
        })
    return conform(pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS)), REFERENCE_COLUMNS)
