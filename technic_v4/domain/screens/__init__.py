"""Screen expressions: a small safe grammar over result columns (parse once, evaluate vectorized over a frame).

    expr = parse("RSI14 < 30 and Close > SMA200")   # syntax errors: ConfigError with the position
    mask = evaluate(expr, frame)                     # unknown columns: ConfigError with close matches

Parsed by a hand-written recursive-descent parser into a small tree; never eval'ed or compiled.
"""

from technic_v4.domain.screens.evaluate import evaluate, select
from technic_v4.domain.screens.expression import Expression, parse

__all__ = ["Expression", "evaluate", "parse", "select"]
