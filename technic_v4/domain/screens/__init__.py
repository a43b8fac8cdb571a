"""Screen expressions: a small safe grammar over result columns (parse once, evaluate vectorized over a frame).

    from technic_v4.domain.screens.expression import parse
    from technic_v4.domain.screens.evaluate import evaluate
    expr = parse("RSI14 < 30 and Close > SMA200")   # syntax errors: ConfigError with the position
    mask = evaluate(expr, frame)                     # unknown columns: ConfigError with close matches

Parsed by a hand-written recursive-descent parser into a small tree (tree.py); never eval'ed or compiled. Nothing is
imported here: the configs parse `where` at validation without pulling in numpy/pandas (CLI start-up).
"""
