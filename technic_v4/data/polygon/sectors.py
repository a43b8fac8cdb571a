"""SIC code -> one of 11 GICS-like sectors; the SIC description becomes the industry.

Polygon's ticker details carry a 4-digit SIC code and its description, not a GICS sector. The SIC divisions do not line
up with GICS (pharma sits in Manufacturing, software in Services), so the mapping is by 2-digit major group, with the
few 3/4-digit ranges that belong elsewhere listed first. Symbols without a SIC code (ETFs, most ADRs) get None, not a guess.
"""

from __future__ import annotations

SECTORS = (
    "Energy",
    "Materials",
    "Industrials",
    "Consumer Discretionary",
    "Consumer Staples",
    "Health Care",
    "Financials",
    "Information Technology",
    "Communication Services",
    "Utilities",
    "Real Estate",
)

# (first, last) 4-digit SIC ranges that override their major group.
_RANGE_OVERRIDES: tuple[tuple[int, int, str], ...] = (
    (1310, 1389, "Energy"),  # crude, natural gas, drilling and oilfield services
    (1531, 1531, "Consumer Discretionary"),  # operative builders = homebuilders in GICS
    (3533, 3533, "Energy"),  # oil and gas field machinery: energy equipment and services
    (3620, 3629, "Industrials"),  # electrical industrial apparatus
    (3826, 3826, "Health Care"),  # laboratory analytical instruments: life-sciences tools
    (4922, 4923, "Energy"),  # natural gas transmission: pipelines are energy in GICS, distribution stays a utility
    (2830, 2836, "Health Care"),  # drugs, biologicals, diagnostics
    (2711, 2741, "Communication Services"),  # newspapers, periodicals, books publishing
    (2840, 2844, "Consumer Staples"),  # soaps, cleaners, perfumes, cosmetics
    (2900, 2999, "Energy"),  # petroleum refining
    (3570, 3579, "Information Technology"),  # computers and office machines
    (3600, 3699, "Information Technology"),  # electronic equipment, semiconductors
    (3630, 3639, "Consumer Discretionary"),  # household appliances
    (3710, 3716, "Consumer Discretionary"),  # motor vehicles and parts
    (3750, 3751, "Consumer Discretionary"),  # motorcycles, bicycles
    (3800, 3829, "Information Technology"),  # measuring and control instruments
    (3840, 3851, "Health Care"),  # medical instruments and supplies
    (3940, 3949, "Consumer Discretionary"),  # toys, sporting goods
    (4800, 4899, "Communication Services"),  # telephone, broadcasting, cable
    (4900, 4991, "Utilities"),  # electric, gas, water, sanitary
    (5400, 5499, "Consumer Staples"),  # food stores
    (5120, 5122, "Health Care"),  # drug wholesale
    (5140, 5149, "Consumer Staples"),  # grocery wholesale
    (5910, 5912, "Consumer Staples"),  # drug stores
    (6500, 6599, "Real Estate"),  # real estate operators and developers
    (6798, 6798, "Real Estate"),  # REITs
    (7370, 7379, "Information Technology"),  # software, data processing, IT services
    (7800, 7841, "Communication Services"),  # motion pictures, video
    (8000, 8099, "Health Care"),  # health services
    (8731, 8731, "Health Care"),  # commercial physical and biological research
)

# 2-digit SIC major group -> sector, for everything the overrides do not catch.
_MAJOR_GROUPS: dict[range, str] = {
    range(1, 10): "Consumer Staples",  # agriculture, forestry, fishing
    range(10, 15): "Materials",  # metal mining, coal, quarrying (oil and gas caught above)
    range(15, 18): "Industrials",  # construction
    range(20, 22): "Consumer Staples",  # food, tobacco
    range(22, 24): "Consumer Discretionary",  # textiles, apparel
    range(24, 27): "Materials",  # lumber, furniture, paper
    range(27, 28): "Communication Services",  # printing and publishing
    range(28, 31): "Materials",  # chemicals, petroleum, rubber and plastics
    range(31, 32): "Consumer Discretionary",  # leather
    range(32, 35): "Materials",  # stone/glass, primary metals, fabricated metal
    range(35, 37): "Industrials",  # machinery, electrical equipment
    range(37, 38): "Industrials",  # transportation equipment (aerospace, rail, ships)
    range(38, 39): "Health Care",  # instruments not caught above
    range(39, 40): "Consumer Discretionary",  # misc manufacturing
    range(40, 48): "Industrials",  # transportation
    range(48, 49): "Communication Services",
    range(49, 50): "Utilities",
    range(50, 52): "Industrials",  # wholesale trade
    range(52, 60): "Consumer Discretionary",  # retail trade, restaurants
    range(60, 65): "Financials",  # banks, credit, brokers, insurance carriers
    range(65, 66): "Real Estate",
    range(67, 68): "Financials",  # holding and investment offices, blank checks
    range(70, 80): "Consumer Discretionary",  # hotels, personal and business services, amusement
    range(80, 81): "Health Care",
    range(81, 90): "Industrials",  # legal, educational, engineering and management services
    range(90, 99): "Industrials",  # public administration (99 = nonclassifiable stays None)
}
_MAJOR_GROUPS[range(64, 65)] = "Financials"  # insurance agents
_MAJOR_GROUPS[range(73, 74)] = "Industrials"  # business services not caught by the software range


# Narrower ranges win over the broad ones they sit in (3630 appliances inside 3600 electronics; 64 inside 60-65).
_OVERRIDES_BY_WIDTH = sorted(_RANGE_OVERRIDES, key=lambda r: r[1] - r[0])
_GROUPS_BY_WIDTH = sorted(_MAJOR_GROUPS.items(), key=lambda item: len(item[0]))


def sector_for_sic(sic_code: str | int | None) -> str | None:
    """One of SECTORS for a SIC code, or None when the code is missing or not a number."""
    if sic_code is None:
        return None
    try:
        code = int(str(sic_code).strip())
    except ValueError:
        return None
    if not 100 <= code <= 9999:
        return None
    for first, last, sector in _OVERRIDES_BY_WIDTH:
        if first <= code <= last:
            return sector
    major = code // 100
    for group, sector in _GROUPS_BY_WIDTH:
        if major in group:
            return sector
    return None


def industry_for(sic_description: str | None) -> str | None:
    """Polygon's SIC description (upper case) in title case: 'ELECTRONIC COMPUTERS' -> 'Electronic Computers'."""
    if not sic_description or not str(sic_description).strip():
        return None
    return " ".join(word if word in {"&", "-"} else word.capitalize() for word in str(sic_description).split())
