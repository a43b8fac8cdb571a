"""The Signal labels, in the order tables list them (no numpy: ScanConfig imports this at CLI start-up)."""

STRONG_LONG, LONG, SHORT, STRONG_SHORT, AVOID = "Strong Long", "Long", "Short", "Strong Short", "Avoid"
SIGNALS = (STRONG_LONG, LONG, SHORT, STRONG_SHORT, AVOID)
LONG_SIGNALS, SHORT_SIGNALS = (STRONG_LONG, LONG), (SHORT, STRONG_SHORT)
