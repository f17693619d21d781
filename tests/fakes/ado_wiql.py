"""A small WIQL evaluator for the fake Azure DevOps: the subset refinebot sends, parsed and run on work items."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


def iso(moment: datetime) -> str:
    """A timestamp as the service writes it (UTC, milliseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_TOKEN = re.compile(
    r"\s*(?:(?P<field>\[[^\]]+\])|(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<macro>@\w+)|(?P<op><>|>=|<=|=|<|>|\(|\)|,|\+|-)|(?P<word>[A-Za-z_]+))",
)


@dataclass(frozen=True)
class EvalContext:
    project: str | None
    process: Mapping[str, Any] | None
    time_precision: bool


class WiqlError(Exception):
    """A 400 the fake answers for a query it refuses (same attributes as the server's ``HttpError``)."""

    def __init__(self, message: str, type_key: str = "WiqlSyntaxException", *, syntax: bool = True) -> None:
        text = f"VS402612: WIQL syntax error: {message}" if syntax else message
        super().__init__(text)
        self.status = 400
        self.message = text
        self.type_key = type_key
        self.headers: dict[str, str] = {}


@dataclass(frozen=True)
class ParsedWiql:
    columns: list[str]
    where: _Node | None
    order_by: list[tuple[str, bool]]


class _Node:
    def evaluate(self, item: Mapping[str, Any], ctx: EvalContext) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class _And(_Node):
    parts: tuple[_Node, ...]

    def evaluate(self, item: Mapping[str, Any], ctx: EvalContext) -> bool:
        return all(p.evaluate(item, ctx) for p in self.parts)


@dataclass(frozen=True)
class _Or(_Node):
    parts: tuple[_Node, ...]

    def evaluate(self, item: Mapping[str, Any], ctx: EvalContext) -> bool:
        return any(p.evaluate(item, ctx) for p in self.parts)


@dataclass(frozen=True)
class _Not(_Node):
    part: _Node

    def evaluate(self, item: Mapping[str, Any], ctx: EvalContext) -> bool:
        return not self.part.evaluate(item, ctx)


@dataclass(frozen=True)
class _Predicate(_Node):
    field: str
    op: str
    values: tuple[Any, ...]

    def evaluate(self, item: Mapping[str, Any], ctx: EvalContext) -> bool:
        actual = item["fields"].get(self.field)
        values = [_resolve(v, ctx) for v in self.values]
        if self.op == "in group":
            group = str(values[0])
            types = _group_types(group, ctx)
            return str(actual or "").lower() in {t.lower() for t in types}
        if self.op == "in":
            return any(_equal(actual, v) for v in values)
        if self.op == "under":
            text, prefix = str(actual or "").lower(), str(values[0]).lower()
            return text == prefix or text.startswith(prefix + "\\")
        if self.op == "contains":
            if self.field == "System.Tags":
                tags = {t.strip().lower() for t in str(actual or "").split(";")}
                return str(values[0]).lower() in tags
            return str(values[0]).lower() in str(actual or "").lower()
        value = values[0]
        if self.op == "=":
            return _equal(actual, value)
        if self.op == "<>":
            return not _equal(actual, value)
        if actual is None:
            return False
        left, right = _comparable(actual, value, ctx)
        outcomes = {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}
        return bool(outcomes[self.op])


def _group_types(group: str, ctx: EvalContext) -> list[str]:
    process = ctx.process or {}
    key = {
        "microsoft.requirementcategory": "requirement",
        "microsoft.bugcategory": "bug",
        "microsoft.taskcategory": "task",
    }.get(group.lower())
    if key is None:
        raise WiqlError(f"unknown category {group!r}")
    return list(process.get(key, []))


def _resolve(value: Any, ctx: EvalContext) -> Any:
    if isinstance(value, _Macro):
        if value.name == "@project":
            if ctx.project is None:
                raise WiqlError("@project needs a project in the route")
            return ctx.project
        if value.name == "@today":
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return iso(today + timedelta(days=value.offset))
        raise WiqlError(f"unsupported macro {value.name}")
    return value


def _equal(actual: Any, value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(actual, str):
        return actual is not None and float(actual) == float(value)
    return str(actual if actual is not None else "").lower() == str(value).lower()


def _parse_date(text: str, ctx: EvalContext) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _comparable(actual: Any, value: Any, ctx: EvalContext) -> tuple[Any, Any]:
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        return float(actual), float(value)
    left_date = _parse_date(str(actual), ctx)
    right_date = _parse_date(str(value), ctx) if isinstance(value, str) else None
    if left_date is not None and right_date is not None:
        if not ctx.time_precision:
            if "T" in str(value) and not str(value).endswith("T00:00:00Z"):
                raise WiqlError(
                    "VS402625: Dates in WIQL queries may not contain a time unless timePrecision is set.",
                    "WiqlTimePrecisionException",
                    syntax=False,
                )
            return left_date.date(), right_date.date()
        return left_date, right_date
    return str(actual).lower(), str(value).lower()


@dataclass(frozen=True)
class _Macro:
    name: str
    offset: int = 0


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise WiqlError(f"unexpected text at {position}: {text[position : position + 20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.at += 1
        return token

    def word(self, *words: str) -> bool:
        if all(self.peek(i)[0] == "word" and self.peek(i)[1].lower() == w for i, w in enumerate(words)):
            self.at += len(words)
            return True
        return False

    def expect_word(self, word: str) -> None:
        if not self.word(word):
            raise WiqlError(f"expected {word.upper()}, found {self.peek()[1]!r}")

    def field(self) -> str:
        kind, value = self.take()
        if kind != "field":
            raise WiqlError(f"expected a [field], found {value!r}")
        return value[1:-1].strip()

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "macro":
            offset = 0
            if self.peek()[1] in ("+", "-") and self.peek(1)[0] == "number":
                sign = -1 if self.take()[1] == "-" else 1
                offset = sign * int(self.take()[1])
            return _Macro(value.lower(), offset)
        raise WiqlError(f"expected a value, found {value!r}")

    def parse(self) -> ParsedWiql:
        self.expect_word("select")
        columns = [self.field()]
        while self.peek()[1] == ",":
            self.take()
            columns.append(self.field())
        self.expect_word("from")
        _kind, source = self.take()
        if source.lower() != "workitems":
            raise WiqlError(f"only FROM WorkItems is supported by this fake, not {source!r}")
        where = None
        if self.word("where"):
            where = self.or_()
        order: list[tuple[str, bool]] = []
        if self.word("order", "by"):
            while True:
                name = self.field()
                descending = False
                if self.word("desc"):
                    descending = True
                else:
                    self.word("asc")
                order.append((name, descending))
                if self.peek()[1] != ",":
                    break
                self.take()
        if self.peek()[0] != "eof":
            raise WiqlError(f"unexpected {self.peek()[1]!r}")
        return ParsedWiql(columns, where, order)

    def or_(self) -> _Node:
        parts = [self.and_()]
        while self.word("or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else _Or(tuple(parts))

    def and_(self) -> _Node:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _And(tuple(parts))

    def unary(self) -> _Node:
        if self.word("not"):
            return _Not(self.unary())
        if self.peek()[1] == "(":
            self.take()
            node = self.or_()
            if self.take()[1] != ")":
                raise WiqlError("missing )")
            return node
        return self.predicate()

    def predicate(self) -> _Node:
        name = self.field()
        negate = self.word("not")
        if self.word("in", "group"):
            node: _Node = _Predicate(name, "in group", (self.value(),))
        elif self.word("in"):
            if self.take()[1] != "(":
                raise WiqlError("expected ( after IN")
            values = [self.value()]
            while self.peek()[1] == ",":
                self.take()
                values.append(self.value())
            if self.take()[1] != ")":
                raise WiqlError("missing ) after IN list")
            node = _Predicate(name, "in", tuple(values))
        elif self.word("under"):
            node = _Predicate(name, "under", (self.value(),))
        elif self.word("contains", "words") or self.word("contains"):
            node = _Predicate(name, "contains", (self.value(),))
        else:
            if negate:
                raise WiqlError("NOT must precede IN, UNDER or CONTAINS here")
            kind, op = self.take()
            if kind != "op" or op not in ("=", "<>", ">", ">=", "<", "<="):
                raise WiqlError(f"expected an operator after [{name}], found {op!r}")
            return _Predicate(name, op, (self.value(),))
        return _Not(node) if negate else node


def parse_wiql(text: str) -> ParsedWiql:
    """Parse the WIQL subset refinebot uses; raise a 400 ``WiqlError`` on anything else."""
    return _Parser(text).parse()
