"""Evaluate a parsed screen expression over a frame, vectorized: one numpy operation per tree node, no row loop.

Types: numbers (numeric columns; flags count as 0/1 in arithmetic), true/false (bool columns, comparisons, and/or/not)
and text (string/categorical columns). Text compares with == and != and `in` only; the whole expression must give
true/false.

Missing values (NaN, None): a comparison or `in` involving a missing value is false — `!=` and `not in` included, so
`Sector != 'Energy'` keeps only rows whose sector is known; `not (RSI14 < 30)` is then true for a missing RSI14 (the
logic is two-valued: test with isna()/notna() when it matters). Arithmetic propagates NaN; x / 0 is NaN; min/max of a
NaN is NaN. A flag stored with missing values counts as false.
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from technic_v4.domain.screens.expression import (
    Arithmetic, Call, Column, Compare, Expression, ExpressionError, Literal, Logic, Membership, Node, Unary, parse,
)

NUM, BOOL, STR = "a number", "true/false", "text"
_NUMPY_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
                  "!=": np.not_equal}


def close_matches(name: str, columns) -> list[str]:
    """Columns a misspelt `name` may mean: same name in another case first, then difflib's close matches."""
    columns = [str(c) for c in columns]
    same_case = [c for c in columns if c.lower() == name.lower()]
    lowered = {c.lower(): c for c in columns}
    fuzzy = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=4, cutoff=0.6)]
    return list(dict.fromkeys(same_case + fuzzy))[:4]


def check_columns(expr: Expression, columns, label: str = "where") -> None:
    """ExpressionError for the first column of `expr` that `columns` lacks, with its position and close matches."""
    have = set(columns)
    for node in _walk(expr.tree):
        if isinstance(node, Column) and node.name not in have:
            near = close_matches(node.name, columns)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise ExpressionError(f"unknown column {node.name!r}", expr.text, node.pos, label, hint)


def _walk(node: Node):
    yield node
    for value in vars(node).values():
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, Node):
                yield from _walk(child)


class _Evaluator:
    def __init__(self, expr: Expression, frame: pd.DataFrame, label: str):
        self.expr, self.frame, self.label, self.n = expr, frame, label, len(frame)

    def fail(self, message: str, node: Node):
        raise ExpressionError(message, self.expr.text, node.pos, self.label)

    def run(self, node: Node):
        return getattr(self, "_" + type(node).__name__.lower())(node)

    def _literal(self, node: Literal):
        v = node.value
        return v, BOOL if isinstance(v, bool) else STR if isinstance(v, str) else NUM

    def _column(self, node: Column):
        s = self.frame[node.name]
        dtype = s.dtype
        if pd.api.types.is_bool_dtype(dtype):
            return s.fillna(False).to_numpy(dtype=bool), BOOL
        if pd.api.types.is_numeric_dtype(dtype):
            return s.to_numpy(dtype=float, na_value=np.nan), NUM
        if pd.api.types.is_datetime64_any_dtype(dtype):
            self.fail(f"column {node.name!r} is a date: dates are not part of the grammar", node)
        if s.dtype == object and len(s) and s.map(type).isin([bool, np.bool_]).any():
            return s.fillna(False).astype(bool).to_numpy(), BOOL  # flags read back as objects (None = missing)
        return s.to_numpy(dtype=object), STR

    def _unary(self, node: Unary):
        value, kind = self.run(node.operand)
        if node.op == "not":
            self.need(kind, BOOL, node.operand, "not")
            return np.logical_not(value), BOOL
        self.need(kind, NUM, node.operand, "-")
        return -np.asarray(value, dtype=float), NUM

    def need(self, kind: str, want: str, node: Node, what: str) -> None:
        if kind == want or (want == NUM and kind == BOOL):
            return
        self.fail(f"{what} needs {want}, got {kind}", node)

    def _arithmetic(self, node: Arithmetic):
        (a, ka), (b, kb) = self.run(node.left), self.run(node.right)
        self.need(ka, NUM, node.left, node.op)
        self.need(kb, NUM, node.right, node.op)
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        with np.errstate(all="ignore"):
            if node.op == "+":
                return a + b, NUM
            if node.op == "-":
                return a - b, NUM
            if node.op == "*":
                return a * b, NUM
            return np.where(b == 0, np.nan, a / np.where(b == 0, 1.0, b)), NUM

    def _compare(self, node: Compare):
        values = [self.run(o) for o in node.operands]
        out = None
        for i, op in enumerate(node.ops):
            (a, ka), (b, kb) = values[i], values[i + 1]
            part = self.compare_pair(op, a, ka, b, kb, node.operands[i + 1])
            out = part if out is None else out & part
        return out, BOOL

    def compare_pair(self, op, a, ka, b, kb, at: Node):
        if STR in (ka, kb):
            if ka != kb:
                self.fail(f"cannot compare {ka} with {kb}", at)
            if op not in ("==", "!="):
                self.fail(f"text compares with == and != only, not {op}", at)
            known = pd.notna(a) & pd.notna(b)
            return np.asarray(_NUMPY_COMPARE[op](a, b), dtype=bool) & known
        if BOOL in (ka, kb) and ka == kb:
            if op not in ("==", "!="):
                self.fail(f"true/false compares with == and != only, not {op}", at)
            return np.asarray(_NUMPY_COMPARE[op](a, b), dtype=bool)
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        with np.errstate(invalid="ignore"):
            return _NUMPY_COMPARE[op](a, b) & ~np.isnan(a) & ~np.isnan(b)

    def _logic(self, node: Logic):
        out = None
        for operand in node.operands:
            value, kind = self.run(operand)
            self.need(kind, BOOL, operand, node.op)
            out = value if out is None else (out & value if node.op == "and" else out | value)
        return out, BOOL

    def _membership(self, node: Membership):
        value, kind = self.run(node.operand)
        kinds = {STR if isinstance(v.value, str) else NUM for v in node.values}
        want = STR if kind == STR else NUM
        if kinds != {want}:
            self.fail(f"`in` compares {kind} with a list of {' and '.join(sorted(kinds))}", node.values[0])
        values = [v.value for v in node.values]
        series = pd.Series(np.broadcast_to(np.asarray(value, dtype=object if want == STR else float), (self.n,)))
        inside = series.isin(values).to_numpy()
        return (series.notna().to_numpy() & ~inside) if node.negated else inside, BOOL

    def _call(self, node: Call):
        args = [self.run(a) for a in node.args]
        if node.name in ("isna", "notna"):
            (value, _), = args
            missing = np.asarray(pd.isna(value), dtype=bool)
            return (missing if node.name == "isna" else ~missing), BOOL
        for (_, kind), arg in zip(args, node.args):
            self.need(kind, NUM, arg, f"{node.name}()")
        arrays = [np.asarray(v, dtype=float) for v, _ in args]
        if node.name == "abs":
            return np.abs(arrays[0]), NUM
        reduce = np.minimum if node.name == "min" else np.maximum  # NaN-propagating, as documented
        out = arrays[0]
        for a in arrays[1:]:
            out = reduce(out, a)
        return out, NUM


def evaluate(expr: Expression | str, frame: pd.DataFrame, label: str = "where") -> np.ndarray:
    """Boolean mask (len(frame),) of the rows the expression selects. ExpressionError (a ConfigError) for an
    unknown column (with close matches) or a type mismatch, naming the position."""
    if isinstance(expr, str):
        try:
            expr = parse(expr)
        except ExpressionError as exc:
            raise exc.relabel(label) from None
    check_columns(expr, frame.columns, label)
    value, kind = _Evaluator(expr, frame, label).run(expr.tree)
    if kind != BOOL:
        raise ExpressionError(f"the expression gives {kind}, not true/false (add a comparison, e.g. RSI14 < 30)",
                              expr.text, 0, label)
    return np.broadcast_to(np.asarray(value, dtype=bool), (len(frame),)).copy()


def select(frame: pd.DataFrame, expr: Expression | str, label: str = "where") -> pd.DataFrame:
    """The rows of `frame` the expression selects, in their order."""
    return frame.loc[evaluate(expr, frame, label)]
