"""A small JQL parser and evaluator for the fake Jira: enough grammar to answer real queries.

Supports AND / OR / NOT, parentheses, ``=  !=  >  >=  <  <=  IN  NOT IN  IS [NOT] EMPTY`` and
``ORDER BY`` on project, key, status, statusCategory, issuetype, labels, created and updated. Like
Jira it rejects unquoted reserved words and unknown fields with a 400-style ``JqlError``, so quoting
mistakes in the client show up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_RESERVED_TEXT = """
a an abort access add after alias alter and any are as asc audit avg before begin between
boolean break by byte catch cf char character check checkpoint collate collation column
commit connect continue count create current date decimal declare decrement default defaults
define delete delimiter desc difference distinct divide do double drop else empty encoding
end equals escape exclusive exec execute exists explain false fetch file field first float
for from function go goto grant greater group having identified if immediate in increment
index initial inner inout input insert int integer intersect intersection into is isempty
isnull join last left less like limit lock long max min minus mode modify modulo more
multiply next noaudit not notin nowait null number object of on option or order outer output
power previous prior privileges public raise raw remainder rename resource return returns
revoke right row rowid rownum rows select session set share size sqrt start strict string
subtract sum synonym table then to trans transaction trigger true uid union unique update
user validate values view when whenever where while with
"""
RESERVED = frozenset(_RESERVED_TEXT.split())

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>!=|>=|<=|=|>|<|~|\(|\)|,)'
    r"|(?P<word>[^\s=!<>~(),\"']+))"
)
_RELATIVE = re.compile(r"^([+-]?)(\d+)([mhdw])$")


class JqlError(ValueError):
    """A query Jira would refuse with HTTP 400."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "str", "op" or "word"
    text: str

    @property
    def value(self) -> str:
        if self.kind != "str":
            return self.text
        inner = self.text[1:-1]
        return re.sub(
            r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), inner
        )


def tokenize(jql: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(jql):
        if jql[pos:].strip() == "":
            break
        match = _TOKEN.match(jql, pos)
        if not match or match.end() == pos:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
        kind = match.lastgroup or "word"
        tokens.append(Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Query:
    predicate: Predicate | None  # None: no restriction (unbounded)
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    # Issue keys named with = or IN: Jira refuses the query when one does not exist.
    keys: tuple[str, ...] = ()
    # Issue keys compared with > >= < <=: Jira matches nothing for one that does not exist.
    range_keys: tuple[str, ...] = ()
    # Issue ids named with = or IN (key fields take ids too): refused like keys when missing.
    ids: tuple[str, ...] = ()


class _Parser:
    def __init__(
        self, tokens: list[Token], now: datetime, resolve: Callable[[Mapping[str, Any], str], Any]
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.now = now
        self.resolve = resolve
        self.keys: list[str] = []
        self.range_keys: list[str] = []
        self.ids: list[str] = []

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def word(self, *options: str) -> bool:
        token = self.peek()
        if token and token.kind == "word" and token.text.lower() in options:
            self.pos += 1
            return True
        return False

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise JqlError("Error in the JQL Query: the query ended unexpectedly.")
        self.pos += 1
        return token

    def expect_op(self, text: str) -> None:
        token = self.take()
        if token.kind != "op" or token.text != text:
            raise JqlError(f"Error in the JQL Query: expecting '{text}' but got '{token.text}'.")

    def parse(self) -> Query:
        predicate = None
        token = self.peek()
        if token is not None and not (token.kind == "word" and token.text.lower() == "order"):
            predicate = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.word("order"):
            if not self.word("by"):
                raise JqlError("Error in the JQL Query: expecting 'by' after 'order'.")
            while True:
                name = self.take().value
                descending = False
                if self.word("desc"):
                    descending = True
                else:
                    self.word("asc")
                order.append((name.lower(), descending))
                nxt = self.peek()
                if nxt and nxt.kind == "op" and nxt.text == ",":
                    self.pos += 1
                    continue
                break
        if self.peek() is not None:
            raise JqlError(f"Error in the JQL Query: unexpected '{self.peek().text}'.")  # type: ignore[union-attr]
        return Query(predicate, tuple(order), tuple(self.keys), tuple(self.range_keys), tuple(self.ids))

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.word("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda issue: any(p(issue) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.word("and"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda issue: all(p(issue) for p in parts))

    def not_expr(self) -> Predicate:
        if self.word("not"):
            inner = self.not_expr()
            return lambda issue: not inner(issue)
        token = self.peek()
        if token and token.kind == "op" and token.text == "(":
            self.pos += 1
            inner = self.or_expr()
            self.expect_op(")")
            return inner
        return self.clause()

    def value(self) -> str:
        token = self.take()
        if token.kind == "op":
            raise JqlError(f"Error in the JQL Query: expecting a value but got '{token.text}'.")
        if token.kind == "word" and token.text.lower() in RESERVED:
            raise JqlError(
                f"Error in the JQL Query: '{token.text}' is a reserved JQL word. "
                "You must surround it in "
                "quotation marks to use it in a query."
            )
        return token.value

    def clause(self) -> Predicate:
        field_token = self.take()
        if field_token.kind == "op":
            raise JqlError(f"Error in the JQL Query: expecting a field name but got '{field_token.text}'.")
        name = field_token.value.lower()
        if name not in _FIELDS:
            raise JqlError(
                f"Field '{field_token.value}' does not exist or you do not have permission to view it."
            )
        negate = False
        if self.word("is"):
            negate = self.word("not")
            if not self.word("empty", "null"):
                raise JqlError("Error in the JQL Query: expecting EMPTY after IS.")
            return lambda issue: (self.resolve(issue, name) in (None, "", [])) != negate
        if self.word("not"):
            if not self.word("in"):
                raise JqlError("Error in the JQL Query: expecting IN after NOT.")
            values = self.value_list()
            return lambda issue: not any(self.match(issue, name, "=", v) for v in values)
        if self.word("in"):
            values = self.value_list()
            if name in _KEY_FIELDS:
                self.keys.extend(v for v in values if not v.isdigit())
                self.ids.extend(v for v in values if v.isdigit())
            return lambda issue: any(self.match(issue, name, "=", v) for v in values)
        op = self.take()
        if op.kind != "op" or op.text not in ("=", "!=", ">", ">=", "<", "<=", "~"):
            raise JqlError(f"Error in the JQL Query: expecting an operator but got '{op.text}'.")
        value = self.value()
        if name in _KEY_FIELDS and op.text == "=":
            (self.ids if value.isdigit() else self.keys).append(value)
        if name in _KEY_FIELDS and op.text in (">", ">=", "<", "<="):
            self.range_keys.append(value)
        return lambda issue: self.match(issue, name, op.text, value)

    def value_list(self) -> list[str]:
        self.expect_op("(")
        values = [self.value()]
        while True:
            token = self.take()
            if token.kind == "op" and token.text == ")":
                return values
            if token.kind == "op" and token.text == ",":
                values.append(self.value())
                continue
            raise JqlError(f"Error in the JQL Query: unexpected '{token.text}' in a list.")

    def match(self, issue: Mapping[str, Any], name: str, op: str, value: str) -> bool:
        if name in _KEY_FIELDS:
            name = "key"
            if value.isdigit() and op in ("=", "!="):  # the issue field takes ids as well as keys
                return (str(issue.get("id")) == value) == (op == "=")
        actual = self.resolve(issue, name)
        if name in ("created", "updated"):
            when = _parse_when(value, self.now)
            if actual is None:
                return False
            return _compare(actual, op, when)
        if isinstance(actual, list):
            hits = any(str(a).lower() == value.lower() for a in actual)
            return hits if op == "=" else not hits
        if name in ("key", "issuekey") and op in (">", ">=", "<", "<="):
            # Jira (IssueIdClauseQueryFactory) compares the number within the named issue's own
            # project only: `key > "A-5"` never matches an issue of project B.
            mine, wanted = _key_order(str(actual)), _key_order(value)
            return mine[0] == wanted[0] and _compare(mine, op, wanted)
        # Several accepted spellings (project key or name, category key or name) arrive as a tuple.
        hits = value.lower() in actual if isinstance(actual, tuple) else str(actual).lower() == value.lower()
        if op in ("=", "~"):
            return hits
        if op == "!=":
            return not hits
        raise JqlError(f"Error in the JQL Query: operator '{op}' is not supported for field '{name}'.")


_FIELDS = frozenset(
    {
        "project",
        "key",
        "issuekey",
        "id",  # Jira's aliases of issuekey
        "issue",
        "status",
        "statuscategory",
        "issuetype",
        "type",
        "labels",
        "created",
        "updated",
    }
)


_KEY_FIELDS = frozenset({"key", "issuekey", "id", "issue"})


def _key_order(key: str) -> tuple[str, int]:
    prefix, _, number = key.rpartition("-")
    return (prefix.upper(), int(number) if number.isdigit() else 0)


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if op == "=":
        return bool(actual == wanted)
    if op == "!=":
        return bool(actual != wanted)
    if op == ">":
        return bool(actual > wanted)
    if op == ">=":
        return bool(actual >= wanted)
    if op == "<":
        return bool(actual < wanted)
    if op == "<=":
        return bool(actual <= wanted)
    raise JqlError(f"Error in the JQL Query: operator '{op}' is not supported here.")


def _parse_when(value: str, now: datetime) -> datetime:
    relative = _RELATIVE.match(value.strip().replace(" ", ""))
    if relative:
        sign = -1 if relative.group(1) == "-" else 1
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[relative.group(3)]
        return now + sign * timedelta(**{unit: int(relative.group(2))})
    for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise JqlError(f"Date value '{value}' for field 'updated' is invalid.")


def parse(jql: str, now: datetime, resolve: Callable[[Mapping[str, Any], str], Any]) -> Query:
    """Parse ``jql`` into a predicate over stored issues and an ordering."""
    return _Parser(tokenize(jql), now, resolve).parse()
