"""The static side of the simulated market: who is listed, what they are, and when events happen to them.

Everything here is drawn once from the seed, in session-index space (0 = the market's start session), so it does not
depend on how far the market is simulated. Price paths live in `simulated.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from technic_v4.data.columns import INDEX_ETFS

# sector, share of listings, mean market beta, idiosyncratic-vol multiplier, rate sensitivity,
# industries: (industry, SIC code, SEC SIC description, name nouns)
SECTORS: tuple = (
    ("Information Technology", 0.13, 1.20, 1.10, 0.0, (
        ("Semiconductors", "3674", "SEMICONDUCTORS & RELATED DEVICES", ("Semiconductor", "Microsystems", "Silicon")),
        ("Software", "7372", "SERVICES-PREPACKAGED SOFTWARE", ("Software", "Systems", "Technologies", "Labs")),
        ("IT Services", "7374", "SERVICES-COMPUTER PROCESSING & DATA PREPARATION", ("Data", "Digital", "Solutions")),
        ("Electronic Components", "3679", "ELECTRONIC COMPONENTS, NEC", ("Electronics", "Instruments")),
        ("Computer Hardware", "3572", "COMPUTER STORAGE DEVICES", ("Computing", "Storage")),
    )),
    ("Health Care", 0.16, 0.90, 1.50, 0.0, (
        ("Biotechnology", "2836", "BIOLOGICAL PRODUCTS, (NO DIAGNOSTIC SUBSTANCES)", ("Therapeutics", "Biosciences", "Genomics", "Oncology")),
        ("Pharmaceuticals", "2834", "PHARMACEUTICAL PREPARATIONS", ("Pharmaceuticals", "Pharma")),
        ("Medical Devices", "3841", "SURGICAL & MEDICAL INSTRUMENTS & APPARATUS", ("Medical", "Surgical", "Diagnostics")),
        ("Health Care Providers", "8062", "SERVICES-HOSPITALS", ("Health", "Healthcare")),
        ("Life Sciences Tools", "3826", "LABORATORY ANALYTICAL INSTRUMENTS", ("Scientific", "Life Sciences")),
    )),
    ("Financials", 0.17, 1.00, 0.70, -0.15, (
        ("Banks", "6022", "STATE COMMERCIAL BANKS", ("Bancorp", "Bancshares", "Financial")),
        ("Insurance", "6331", "FIRE, MARINE & CASUALTY INSURANCE", ("Insurance", "Assurance")),
        ("Capital Markets", "6211", "SECURITY BROKERS, DEALERS & FLOTATION COMPANIES", ("Capital", "Securities", "Partners")),
        ("Consumer Finance", "6141", "PERSONAL CREDIT INSTITUTIONS", ("Credit", "Lending")),
        ("Asset Management", "6282", "INVESTMENT ADVICE", ("Investments", "Advisors")),
    )),
    ("Consumer Discretionary", 0.10, 1.15, 1.10, 0.0, (
        ("Specialty Retail", "5651", "RETAIL-FAMILY CLOTHING STORES", ("Stores", "Outfitters", "Brands")),
        ("Restaurants", "5812", "RETAIL-EATING PLACES", ("Restaurants", "Kitchen")),
        ("Automobiles", "3711", "MOTOR VEHICLES & PASSENGER CAR BODIES", ("Motors", "Automotive")),
        ("Hotels & Leisure", "7011", "HOTELS & MOTELS", ("Resorts", "Hospitality")),
        ("Homebuilding", "1531", "OPERATIVE BUILDERS", ("Homes", "Builders")),
        ("Internet Retail", "5961", "RETAIL-CATALOG & MAIL-ORDER HOUSES", ("Commerce", "Marketplace")),
    )),
    ("Communication Services", 0.04, 1.05, 1.10, 0.0, (
        ("Telecom", "4813", "TELEPHONE COMMUNICATIONS (NO RADIOTELEPHONE)", ("Communications", "Wireless")),
        ("Media", "4841", "CABLE & OTHER PAY TELEVISION SERVICES", ("Media", "Broadcasting")),
        ("Entertainment", "7812", "SERVICES-MOTION PICTURE & VIDEO TAPE PRODUCTION", ("Studios", "Entertainment")),
        ("Interactive Media", "7370", "SERVICES-COMPUTER PROGRAMMING, DATA PROCESSING, ETC.", ("Interactive", "Social")),
    )),
    ("Industrials", 0.13, 1.05, 0.90, 0.0, (
        ("Aerospace & Defense", "3728", "AIRCRAFT PARTS & AUXILIARY EQUIPMENT, NEC", ("Aerospace", "Defense")),
        ("Machinery", "3560", "GENERAL INDUSTRIAL MACHINERY & EQUIPMENT", ("Industries", "Machinery")),
        ("Airlines", "4512", "AIR TRANSPORTATION, SCHEDULED", ("Airlines", "Air Group")),
        ("Trucking & Logistics", "4213", "TRUCKING (NO LOCAL)", ("Logistics", "Freight")),
        ("Construction & Engineering", "1600", "HEAVY CONSTRUCTION OTHER THAN BLDG CONST - CONTRACTORS", ("Construction", "Engineering")),
        ("Electrical Equipment", "3620", "ELECTRICAL INDUSTRIAL APPARATUS", ("Electric", "Power Systems")),
    )),
    ("Consumer Staples", 0.04, 0.60, 0.70, 0.1, (
        ("Food Products", "2000", "FOOD AND KINDRED PRODUCTS", ("Foods", "Farms")),
        ("Beverages", "2080", "BEVERAGES", ("Beverage", "Brewing")),
        ("Household Products", "2840", "SOAP, DETERGENTS, CLEANG PREPARATIONS, PERFUMES, COSMETICS", ("Consumer Products",)),
        ("Food Retail", "5411", "RETAIL-GROCERY STORES", ("Markets", "Grocers")),
        ("Tobacco", "2111", "CIGARETTES", ("Tobacco",)),
    )),
    ("Energy", 0.05, 1.10, 1.20, 0.0, (
        ("Oil & Gas E&P", "1311", "CRUDE PETROLEUM & NATURAL GAS", ("Petroleum", "Energy", "Resources")),
        ("Oil & Gas Equipment", "3533", "OIL & GAS FIELD MACHINERY & EQUIPMENT", ("Drilling", "Oilfield Services")),
        ("Refining", "2911", "PETROLEUM REFINING", ("Refining",)),
        ("Midstream", "4922", "NATURAL GAS TRANSMISSION", ("Midstream", "Pipeline")),
    )),
    ("Utilities", 0.03, 0.50, 0.60, 0.4, (
        ("Electric Utilities", "4911", "ELECTRIC SERVICES", ("Electric", "Power")),
        ("Gas Utilities", "4924", "NATURAL GAS DISTRIBUTION", ("Gas",)),
        ("Water Utilities", "4941", "WATER SUPPLY", ("Water",)),
        ("Multi-Utilities", "4931", "ELECTRIC & OTHER SERVICES COMBINED", ("Utilities", "Energy")),
    )),
    ("Real Estate", 0.06, 0.90, 0.70, 0.35, (
        ("REITs", "6798", "REAL ESTATE INVESTMENT TRUSTS", ("Realty Trust", "Properties")),
        ("Real Estate Services", "6531", "REAL ESTATE AGENTS & MANAGERS (FOR OTHERS)", ("Realty", "Real Estate")),
        ("Real Estate Development", "6552", "LAND SUBDIVIDERS & DEVELOPERS (NO CEMETERIES)", ("Land", "Development")),
    )),
    ("Materials", 0.05, 1.05, 1.00, 0.0, (
        ("Chemicals", "2800", "CHEMICALS & ALLIED PRODUCTS", ("Chemical", "Materials")),
        ("Metals & Mining", "1000", "METAL MINING", ("Mining", "Minerals", "Gold")),
        ("Steel", "3312", "STEEL WORKS, BLAST FURNACES & ROLLING MILLS (COKE OVENS)", ("Steel",)),
        ("Containers & Packaging", "2650", "PAPERBOARD CONTAINERS & BOXES", ("Packaging",)),
        ("Construction Materials", "3241", "CEMENT, HYDRAULIC", ("Aggregates",)),
    )),
)
SECTOR_NAMES = tuple(s[0] for s in SECTORS)
TECH_SECTOR = SECTOR_NAMES.index("Information Technology")

_ROOTS = np.array(
    "Apex Arbor Atlas Aurora Beacon Bluewater Boreal Cascade Cedar Cobalt Crescent Crestline Delta Dynamo Echo Elm "
    "Ember Evergreen Falcon Fieldstone Frontier Galaxy Garnet Glacier Granite Harbor Helix Horizon Ironwood Jasper "
    "Juniper Keystone Kinetic Lakeshore Landmark Liberty Lumen Magnolia Maple Meridian Midland Monarch Nexus Northgate "
    "Nova Oakmont Orion Pacific Paragon Pinnacle Pioneer Polaris Prairie Quantum Quarry Radiant Redwood Ridgeway "
    "Riverbend Sable Sagebrush Sentinel Sequoia Sierra Silverline Solstice Sterling Stonebridge Summit Sunrise Tandem "
    "Terra Titan Trident Trinity Union Unity Vanguard Vector Verdant Vertex Vista Westfield Willow Zenith Alder "
    "Bayview Brightwater Canyon Coastal Copperhead Cornerstone Eastbrook Fairway Foxhollow Greystone Highland "
    "Hudson Ivory Kingsley Lighthouse Marble Mesa Northwind Oriel Palisade Redstone Saratoga Tidewater".split()
)
_SUFFIXES = np.array(["Inc.", "Corp.", "Holdings, Inc.", "Co.", "Group, Inc.", "Corporation", "Ltd."])
_ADR_SUFFIXES = np.array(["plc ADR", "S.A. ADR", "AG ADR", "N.V. ADR", "Ltd. ADR", "ASA ADR"])
# Letter weights for tickers: English-ish frequencies, flattened so rare letters still appear.
_LETTER_WEIGHTS = np.array(
    [8, 3, 5, 4, 7, 3, 3, 3, 5, 1.5, 2, 5, 4, 5, 5, 3, 1, 5, 6, 6, 3, 2, 2, 1.5, 1.5, 1.2], dtype=float
)

# ETFs: name, exchange, market beta, sector loading (Tech), rate loading, own daily vol, constant daily drift,
# start price, shares outstanding, average daily volume
ETF_SPECS = {
    "SPY": ("SPDR S&P 500 ETF Trust", "ARCX", 1.00, 0.0, 0.00, 0.0008, 0.0, 383.0, 9.2e8, 7.5e7),
    "QQQ": ("Invesco QQQ Trust, Series 1", "XNAS", 1.20, 0.5, 0.00, 0.0020, 0.0, 264.0, 5.6e8, 4.8e7),
    "TLT": ("iShares 20+ Year Treasury Bond ETF", "XNAS", -0.05, 0.0, 1.00, 0.0010, 0.0, 99.0, 4.0e8, 2.5e7),
    "SHY": ("iShares 1-3 Year Treasury Bond ETF", "XNAS", 0.00, 0.0, 0.10, 0.0004, 0.00012, 81.0, 3.0e8, 3.0e6),
    "HYG": ("iShares iBoxx $ High Yield Corporate Bond ETF", "ARCX", 0.35, 0.0, 0.25, 0.0020, 0.0001, 74.0, 2.0e8, 3.5e7),
    "LQD": ("iShares iBoxx $ Investment Grade Corporate Bond ETF", "ARCX", 0.10, 0.0, 0.65, 0.0015, 0.00005, 104.0, 3.0e8, 2.5e7),
    "VIXY": ("ProShares VIX Short-Term Futures ETF", "BATS", -2.60, 0.0, 0.00, 0.0150, -0.0012, 40.0, 2.0e7, 8.0e6),
}
assert tuple(ETF_SPECS) == INDEX_ETFS

# Calm-regime factor vols (daily), used to size intraday ranges from each symbol's loadings.
MARKET_VOL, SECTOR_VOL, BOND_VOL = 0.008, 0.005, 0.0085
NEVER = np.iinfo(np.int64).max // 4  # session index of an event that never happens


@dataclass(frozen=True)
class Universe:
    """Per-symbol attributes, one entry per column, columns sorted by symbol. Event times are session indices."""

    symbols: np.ndarray
    name: np.ndarray
    type: np.ndarray
    exchange: np.ndarray
    sector: np.ndarray
    industry: np.ndarray
    sic_code: np.ndarray
    sic_description: np.ndarray
    sector_idx: np.ndarray  # -1 for ETFs
    shares0: np.ndarray  # shares outstanding at the start, before any simulated split
    price0: np.ndarray
    beta: np.ndarray
    sector_load: np.ndarray
    bond_load: np.ndarray
    idio_vol: np.ndarray
    range_vol: np.ndarray  # typical total daily vol, sizes gaps and intraday ranges
    drift_const: np.ndarray
    drift_scale: np.ndarray  # 1 for stocks (random trend epochs), 0 for ETFs
    base_volume: np.ndarray  # average shares traded per day, in start-share units
    trade_size: np.ndarray  # average shares per trade
    old_list_date: np.ndarray  # ISO date for symbols listed before the start, None for IPOs
    ipo_idx: np.ndarray  # first session with a bar
    delist_idx: np.ndarray  # first session without a bar after delisting (NEVER if none)
    splits: pd.DataFrame  # col, exec_idx, split_from, split_to
    long_halts: pd.DataFrame  # col, start_idx, length

    @property
    def is_etf(self) -> np.ndarray:
        return self.type == "ETF"


def _sector_tables():
    """Flat per-industry arrays so sector/industry/SIC/name nouns can be picked with one fancy index."""
    rows, nouns, noun_start = [], [], []
    for s_idx, (_, _, _, _, _, industries) in enumerate(SECTORS):
        for industry, sic, desc, words in industries:
            noun_start.append(len(nouns))
            nouns.extend(words)
            rows.append((s_idx, industry, sic, desc, len(words)))
    s_idx, industry, sic, desc, n_nouns = map(np.array, zip(*rows))
    return s_idx, industry.astype(object), sic.astype(object), desc.astype(object), np.array(noun_start), n_nouns, np.array(nouns, dtype=object)


def _tickers(rng: np.random.Generator, lengths: np.ndarray, last_letter: np.ndarray, reserved) -> np.ndarray:
    """Unique 1-5 letter tickers for the requested lengths (redrawing collisions); `last_letter` > 0 forces it."""
    n = len(lengths)
    out = np.empty(n, dtype=object)
    todo = np.arange(n)
    taken = set(reserved)
    p = _LETTER_WEIGHTS / _LETTER_WEIGHTS.sum()
    while todo.size:
        codes = (65 + rng.choice(26, size=(todo.size, 5), p=p)).astype(np.uint8)
        codes[np.arange(5)[None, :] >= lengths[todo, None]] = 0
        forced = last_letter[todo] > 0
        codes[forced, lengths[todo[forced]] - 1] = last_letter[todo[forced]]
        cand = codes.view("S5").ravel().astype("U5").astype(object)
        # keep the first occurrence of each new ticker, redraw the rest (short lengths collide often)
        _, first = np.unique(cand, return_index=True)
        fresh = np.zeros(todo.size, bool)
        fresh[first] = True
        fresh &= ~pd.Index(cand).isin(list(taken))
        out[todo[fresh]] = cand[fresh]
        taken.update(cand[fresh])
        todo = todo[~fresh]
        lengths[todo] = np.maximum(lengths[todo], np.minimum(lengths[todo] + 1, 4))  # short names run out
    return out


def _names(rng, roots_n, ind, noun_start, n_nouns, nouns, is_adr) -> np.ndarray:
    first = _ROOTS[rng.integers(0, len(_ROOTS), roots_n)]
    noun = nouns[noun_start[ind] + (rng.random(roots_n) * n_nouns[ind]).astype(int)]
    suffix = np.where(is_adr, _ADR_SUFFIXES[rng.integers(0, len(_ADR_SUFFIXES), roots_n)],
                      _SUFFIXES[rng.integers(0, len(_SUFFIXES), roots_n)])
    return (pd.Series(first) + " " + pd.Series(noun) + " " + pd.Series(suffix)).to_numpy(dtype=object)


def _stock_attributes(rng: np.random.Generator, n: int) -> dict:
    s_idx, industry, sic, desc, noun_start, n_nouns, nouns = _sector_tables()
    weights = np.array([s[1] for s in SECTORS])
    sector = rng.choice(len(SECTORS), size=n, p=weights / weights.sum())
    # industry uniformly within the sector
    ind_of_sector = [np.flatnonzero(s_idx == k) for k in range(len(SECTORS))]
    n_ind = np.array([len(x) for x in ind_of_sector])
    first_ind = np.array([x[0] for x in ind_of_sector])
    ind = first_ind[sector] + (rng.random(n) * n_ind[sector]).astype(int)
    is_adr = rng.random(n) < 0.03

    # Size and price: lognormal caps (a few trillion-dollar names), smaller companies trade at lower prices.
    log10_cap = np.clip(rng.normal(9.1, 0.9, n), 6.8, 12.55)
    cap = 10.0**log10_cap
    price0 = np.clip(np.exp(np.log(20.0) + 0.30 * np.log(cap / 7e8) + rng.normal(0, 0.8, n)), 0.15, 1800.0)
    sec_beta = np.array([s[2] for s in SECTORS])[sector]
    sec_idio = np.array([s[3] for s in SECTORS])[sector]
    sec_rate = np.array([s[4] for s in SECTORS])[sector]
    idio = np.clip(0.028 * (cap / 1e9) ** -0.12 * sec_idio * np.exp(rng.normal(0, 0.25, n)), 0.006, 0.12)
    turnover = np.clip(np.exp(np.log(0.024) + rng.normal(0, 0.6, n)) * (cap / 1e9) ** -0.04, 5e-4, 0.2)
    shares0 = cap / price0
    lengths = rng.choice([1, 2, 3, 4], size=n, p=[0.002, 0.03, 0.34, 0.628])
    lengths = np.where(is_adr, 5, lengths)
    return {
        "symbols": _tickers(rng, lengths, np.where(is_adr, ord("Y"), 0), reserved=ETF_SPECS),
        "name": _names(rng, n, ind, noun_start, n_nouns, nouns, is_adr),
        "type": np.where(is_adr, "ADRC", "CS").astype(object),
        "exchange": np.where(is_adr, "XNYS", rng.choice(["XNAS", "XNYS", "XASE", "BATS"], n, p=[0.56, 0.37, 0.04, 0.03])).astype(object),
        "sector": np.array(SECTOR_NAMES, dtype=object)[sector],
        "industry": industry[ind],
        "sic_code": sic[ind],
        "sic_description": desc[ind],
        "sector_idx": sector,
        "shares0": shares0,
        "price0": price0,
        "beta": np.clip(sec_beta * np.exp(rng.normal(0, 0.25, n)), 0.2, 2.5),
        "sector_load": rng.uniform(0.6, 1.2, n),
        "bond_load": sec_rate + rng.normal(0, 0.08, n),
        "idio_vol": idio,
        "drift_const": np.zeros(n),
        "drift_scale": np.ones(n),
        "base_volume": turnover * shares0,
        "trade_size": np.clip(6000.0 / price0 * np.exp(rng.normal(0, 0.3, n)), 20, 3000),
    }


def _etf_attributes() -> dict:
    specs = list(ETF_SPECS.values())
    col = lambda i: np.array([s[i] for s in specs], dtype=float)  # noqa: E731
    k = len(specs)
    return {
        "symbols": np.array(list(ETF_SPECS), dtype=object),
        "name": np.array([s[0] for s in specs], dtype=object),
        "type": np.full(k, "ETF", dtype=object),
        "exchange": np.array([s[1] for s in specs], dtype=object),
        "sector": np.full(k, "ETF", dtype=object),
        "industry": np.array(["Index ETF", "Index ETF", "Treasury ETF", "Treasury ETF", "Credit ETF", "Credit ETF",
                              "Volatility ETF"], dtype=object),
        "sic_code": np.full(k, None, dtype=object),
        "sic_description": np.full(k, None, dtype=object),
        "sector_idx": np.where(col(3) > 0, TECH_SECTOR, -1),
        "shares0": col(8),
        "price0": col(7),
        "beta": col(2),
        "sector_load": col(3),
        "bond_load": col(4),
        "idio_vol": col(5),
        "drift_const": col(6),
        "drift_scale": np.zeros(k),
        "base_volume": col(9),
        "trade_size": np.full(k, 150.0),
    }


def _events(rng: np.random.Generator, a: dict, start: dt.date) -> dict:
    """IPOs, delistings, splits and multi-day halts as session indices (independent of the simulated length)."""
    n = len(a["symbols"])
    stock = a["type"] != "ETF"
    cap0 = a["shares0"] * a["price0"]
    ipo = np.where(stock & (rng.random(n) < 0.07), rng.integers(5, 520, n), 0)
    # Delisting hazard per session: small caps go away (acquired, bankrupt, non-compliant) more often.
    hazard = np.where(cap0 < 3e8, 0.035, 0.010) / 252
    delist = np.where(stock, ipo + 1 + rng.geometric(hazard), NEVER)
    years_listed = np.minimum(rng.exponential(12.0, n), (start - dt.date(1962, 1, 2)).days / 365.25)
    old_dates = (pd.Timestamp(start) - pd.to_timedelta(np.ceil(years_listed * 365.25 + 1), unit="D")).strftime("%Y-%m-%d")
    old_list = np.where(ipo == 0, old_dates.to_numpy(dtype=object), None)

    # Splits: expensive stocks split forward, penny stocks reverse-split; at most one per symbol.
    fwd = stock & (a["price0"] >= 150)
    rev = stock & (a["price0"] < 2.0)
    rate = np.where(fwd, 0.09, np.where(rev, 0.06, 0.0)) / 252
    when = ipo + 5 + rng.geometric(np.maximum(rate, 1e-12))
    has = (fwd | rev) & (when < delist - 1)
    cols = np.flatnonzero(has)
    fwd_ratio = np.array([[1, 2], [1, 3], [1, 4], [1, 5], [1, 10]])[rng.choice(5, n, p=[0.5, 0.2, 0.15, 0.05, 0.1])]
    rev_ratio = np.array([[10, 1], [5, 1], [20, 1], [8, 1], [25, 1]])[rng.choice(5, n, p=[0.4, 0.2, 0.2, 0.1, 0.1])]
    ratio = np.where(fwd[:, None], fwd_ratio, rev_ratio)
    splits = pd.DataFrame({"col": cols, "exec_idx": when[cols], "split_from": ratio[cols, 0].astype(float),
                           "split_to": ratio[cols, 1].astype(float)}).sort_values(["exec_idx", "col"], ignore_index=True)

    halted = rng.choice(np.flatnonzero(stock), size=min(30, int(stock.sum())), replace=False)
    long_halts = pd.DataFrame({"col": halted, "start_idx": rng.integers(10, 1200, halted.size),
                               "length": rng.integers(2, 13, halted.size)})
    return {"ipo_idx": ipo, "delist_idx": delist, "old_list_date": old_list, "splits": splits, "long_halts": long_halts}


def build_universe(seed: int, n_symbols: int, start: dt.date) -> Universe:
    """`n_symbols` stocks (ever listed) plus the index/macro ETFs, sorted by symbol."""
    rng = np.random.default_rng([seed, 1, n_symbols])
    stocks, etfs = _stock_attributes(rng, n_symbols), _etf_attributes()
    a = {k: np.concatenate([stocks[k], etfs[k]]) for k in stocks}
    order = np.argsort(a["symbols"].astype(str), kind="stable")
    a = {k: v[order] for k, v in a.items()}
    sector_vol = np.where(a["sector_idx"] >= 0, a["sector_load"] * SECTOR_VOL, 0.0)
    a["range_vol"] = np.sqrt((a["beta"] * MARKET_VOL) ** 2 + sector_vol**2 + (a["bond_load"] * BOND_VOL) ** 2 + a["idio_vol"] ** 2)
    a.update(_events(np.random.default_rng([seed, 5, n_symbols]), a, start))
    return Universe(**a)
