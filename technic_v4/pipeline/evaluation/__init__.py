"""Walk-forward, point-in-time evaluation of TechRating and signals (plain functions; flows/evaluate.py runs them).

config (EvalConfig) -> universe (each day's prescreen and regime, as a scan as of that day) -> chunk (scores, forward
returns, trade-plan outcomes per symbol chunk) -> stats (Qlib-style IC, deciles, control) -> report (markdown, plots).
"""
