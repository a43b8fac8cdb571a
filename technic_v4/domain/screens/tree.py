"""The tree a screen expression parses into (small frozen node types), its canonical string form and the columns
it reads. Built only by technic_v4.domain.screens.expression's parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: float | str | bool


@dataclass(frozen=True)
class Column(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True)
class Arithmetic(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    ops: tuple[str, ...]
    operands: tuple[Node, ...]  # len(ops) + 1, chained: a < b < c is a < b and b < c


@dataclass(frozen=True)
class Logic(Node):
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Membership(Node):
    operand: Node
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


def canonical(node: Node) -> str:
    """One spelling per meaning, fully parenthesised below the top level."""
    if isinstance(node, Literal):
        v = node.value
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        text = repr(float(v))
        return text[:-2] if text.endswith(".0") else text
    if isinstance(node, Column):
        return node.name
    if isinstance(node, Unary):
        return f"({'not ' if node.op == 'not' else '-'}{canonical(node.operand)})"
    if isinstance(node, Arithmetic):
        return f"({canonical(node.left)} {node.op} {canonical(node.right)})"
    if isinstance(node, Compare):
        parts = [canonical(node.operands[0])]
        for op, operand in zip(node.ops, node.operands[1:]):
            parts += [op, canonical(operand)]
        return "(" + " ".join(parts) + ")"
    if isinstance(node, Logic):
        return "(" + f" {node.op} ".join(sorted(dict.fromkeys(canonical(o) for o in node.operands))) + ")"
    if isinstance(node, Membership):
        values = sorted(dict.fromkeys(canonical(v) for v in node.values))
        return f"({canonical(node.operand)} {'not in' if node.negated else 'in'} ({', '.join(values)}))"
    if isinstance(node, Call):
        args = [_strip(canonical(a)) for a in node.args]
        return f"{node.name}({', '.join(sorted(args) if node.name in ('min', 'max') else args)})"
    raise TypeError(node)


def columns_of(node: Node) -> list[str]:
    """Column names the expression reads, in order of first appearance."""
    out: dict[str, None] = {}

    def walk(n: Node) -> None:
        if isinstance(n, Column):
            out.setdefault(n.name)
        for child in _children(n):
            walk(child)

    walk(node)
    return list(out)


def _children(n: Node) -> tuple[Node, ...]:
    if isinstance(n, Unary):
        return (n.operand,)
    if isinstance(n, Arithmetic):
        return n.left, n.right
    if isinstance(n, (Compare, Logic)):
        return n.operands
    if isinstance(n, Membership):
        return (n.operand,)
    if isinstance(n, Call):
        return n.args
    return ()


@dataclass(frozen=True)
class Expression:
    text: str
    tree: Node

    @property
    def canonical(self) -> str:
        return _strip(canonical(self.tree))

    @property
    def columns(self) -> list[str]:
        return columns_of(self.tree)


def _strip(text: str) -> str:
    """`text` without parentheses that enclose all of it."""
    return text[1:-1] if text.startswith("(") and text.endswith(")") and _balanced_inside(text) else text


def _balanced_inside(text: str) -> bool:
    """True when the outer parentheses of `text` enclose all of it (not '(a) and (b)'), quotes respected."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i < len(text) - 1:
                return False
    return True
