"""The screen grammar: tokens, a recursive-descent parser and the tree it builds (never eval, compile or exec).

    expr        := or ;  or := and ("or" and)* ;  and := not ("and" not)* ;  not := "not" not | comparison
    comparison  := sum ((< | <= | > | >= | == | !=) sum)*  |  sum ["not"] "in" ( "(" literal ("," literal)* ")" | literal )
    sum         := term ((+ | -) term)* ;  term := unary ((* | /) unary)* ;  unary := (- | +) unary | primary
    primary     := number | 'string' | "string" | true | false | column | function "(" expr ("," expr)* ")" | "(" expr ")"

Numbers: 30, 1.5, 1e6, and the suffixes % (5% = 0.05: returns are fractions), K, M, B (2B = 2e9: market cap).
Keywords (and, or, not, in, true, false) are case-insensitive; column names are case-sensitive. Comparisons chain as
in Python (20 < RSI14 < 30). Functions: the allow-list FUNCTIONS, nothing else. `Expression.canonical` is one string
per meaning (spacing, keyword case, number spelling, and/or operand order normalised) for cache and history keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from technic_v4.domain.screens.tree import (  # noqa: F401  (the node types are part of this module's interface)
    Arithmetic, Call, Column, Compare, Expression, Literal, Logic, Membership, Node, Unary, canonical, columns_of,
)
from technic_v4.errors import ConfigError

FUNCTIONS = {"abs": (1, 1), "min": (2, None), "max": (2, None), "isna": (1, 1), "notna": (1, 1)}  # name: (min, max) args
FUNCTION_ALIASES = {"isnan": "isna", "isnull": "isna", "notnull": "notna"}
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
KEYWORDS = {"and", "or", "not", "in", "true", "false"}
SUFFIXES = {"%": 0.01, "K": 1e3, "k": 1e3, "M": 1e6, "B": 1e9}
MAX_LENGTH = 2000

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:%|[kKMB](?![A-Za-z0-9_]))?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,)
""", re.VERBOSE)


class ExpressionError(ConfigError):
    """A screen expression that does not parse or does not fit the table; names the position (0-based offset)."""

    def __init__(self, message: str, expression: str, position: int, label: str = "where", hint: str = ""):
        self.expression, self.position, self.label, self.reason, self.hint = expression, position, label, message, hint
        super().__init__(f"{label}: {message} at position {position}{hint}\n  {expression}\n  {' ' * position}^")

    def relabel(self, label: str) -> ExpressionError:
        return ExpressionError(self.reason, self.expression, self.position, label, self.hint)


# ---- tokens and parser -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # number, name, string, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = {".": "attribute access is not part of the grammar", "[": "subscripts are not part of the grammar",
                    "=": "use == to compare", "!": "use != or not", "&": "use and", "|": "use or",
                    ":": "lambdas are not part of the grammar"}.get(ch, "not part of the grammar")
            if ch in "'\"":
                hint = "the string is not closed"
            raise ExpressionError(f"unexpected {ch!r} ({hint})", text, pos)
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, tokenize(text), 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str, pos: int | None = None):
        raise ExpressionError(message, self.text, self.tok.pos if pos is None else pos)

    def keyword(self, *words: str) -> bool:
        return self.tok.kind == "name" and self.tok.text.lower() in words

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        if self.tok.text != text:
            found = repr(self.tok.text) if self.tok.kind != "end" else "the end"
            self.fail(f"expected {text!r}, found {found}")
        return self.take()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            self.fail("empty expression")
        node = self.or_()
        if self.tok.kind != "end":
            self.fail(f"unexpected {self.tok.text!r} (expected an operator such as and, or, <, ==)")
        return node

    def _chain(self, word: str, below) -> Node:
        pos, operands = self.tok.pos, [below()]
        while self.keyword(word):
            self.take()
            operands.append(below())
        if len(operands) == 1:
            return operands[0]
        flat = []
        for o in operands:  # a and (b and c) is one chain
            flat.extend(o.operands if isinstance(o, Logic) and o.op == word else (o,))
        return Logic(pos, word, tuple(flat))

    def or_(self) -> Node:
        return self._chain("or", self.and_)

    def and_(self) -> Node:
        return self._chain("and", self.not_)

    def not_(self) -> Node:
        if self.keyword("not"):
            pos = self.take().pos
            return Unary(pos, "not", self.not_())
        return self.comparison()

    def comparison(self) -> Node:
        pos, first = self.tok.pos, self.sum_()
        if self.keyword("in") or (self.keyword("not") and self.tokens[self.i + 1].text.lower() == "in"):
            negated = self.take().text.lower() == "not"
            if negated:
                self.take()
            return Membership(pos, first, self.literal_list(), negated)
        ops, operands = [], [first]
        while self.tok.kind == "op" and self.tok.text in COMPARISONS:
            ops.append(self.take().text)
            operands.append(self.sum_())
        return Compare(pos, tuple(ops), tuple(operands)) if ops else first

    def literal_list(self) -> tuple[Literal, ...]:
        if self.tok.text != "(":
            return (self.literal(),)
        self.take()
        values = [self.literal()]
        while self.tok.text == ",":
            self.take()
            if self.tok.text == ")":
                break
            values.append(self.literal())
        self.expect(")")
        return tuple(values)

    def literal(self) -> Literal:
        node = self.unary()
        if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Literal):
            node = Literal(node.pos, -node.operand.value)
        if not isinstance(node, Literal) or isinstance(node.value, bool):
            self.fail("`in` takes a list of numbers or strings, e.g. Sector in ('Technology', 'Energy')", node.pos)
        return node

    def _binary(self, ops: tuple[str, ...], below) -> Node:
        node = below()
        while self.tok.kind == "op" and self.tok.text in ops:
            tok = self.take()
            node = Arithmetic(tok.pos, tok.text, node, below())
        return node

    def sum_(self) -> Node:
        return self._binary(("+", "-"), self.term)

    def term(self) -> Node:
        return self._binary(("*", "/"), self.unary)

    def unary(self) -> Node:
        if self.tok.text in ("-", "+"):
            tok = self.take()
            operand = self.unary()
            return operand if tok.text == "+" else Unary(tok.pos, "-", operand)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Literal(tok.pos, _number(tok.text))
        if tok.kind == "string":
            self.take()
            return Literal(tok.pos, re.sub(r"\\(.)", r"\1", tok.text[1:-1]))
        if tok.text == "(":
            self.take()
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind == "name":
            word = tok.text.lower()
            if word in ("true", "false"):
                self.take()
                return Literal(tok.pos, word == "true")
            if word in KEYWORDS:
                self.fail(f"{tok.text!r} needs a value before it")
            self.take()
            if self.tok.text == "(":
                return self.call(tok)
            return Column(tok.pos, tok.text)
        if tok.kind == "end":
            self.fail("the expression ends too early")
        self.fail(f"unexpected {tok.text!r}")

    def call(self, name: Token) -> Call:
        fn = FUNCTION_ALIASES.get(name.text.lower(), name.text.lower())
        if fn not in FUNCTIONS:
            self.fail(f"function {name.text!r} is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})", name.pos)
        self.expect("(")
        args = [] if self.tok.text == ")" else [self.or_()]
        while self.tok.text == ",":
            self.take()
            args.append(self.or_())
        self.expect(")")
        low, high = FUNCTIONS[fn]
        if len(args) < low or (high is not None and len(args) > high):
            want = f"{low}" if low == high else f"at least {low}"
            self.fail(f"{fn}() takes {want} argument(s), got {len(args)}", name.pos)
        return Call(name.pos, fn, tuple(args))


def _number(text: str) -> float:
    scale = SUFFIXES.get(text[-1], 1.0)
    return float(text[:-1] if text[-1] in SUFFIXES else text) * scale


@lru_cache(maxsize=256)
def parse(text: str) -> Expression:
    """The parsed expression; ExpressionError (a ConfigError) naming the position of the first problem."""
    if not isinstance(text, str):
        raise ConfigError(f"where: expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters", text[:80] + "…", 0)
    try:
        return Expression(text, _Parser(text).parse())
    except RecursionError:
        raise ExpressionError("nested too deeply", text[:80], 0) from None
