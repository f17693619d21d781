"""The commands teams answer a bot comment with: one verb table that both parses them and renders the usage hint.

A command is a line of its own anywhere in a comment, case-insensitive: ``refinebot snooze 2w``
(also ``3d``, ``1m`` or a date ``2026-12-24``), ``refinebot ignore <rule-name> <reason…>``,
``refinebot not-duplicate <KEY>``, ``refinebot recheck``. Renovate's dependency dashboard taught the
shape: the same ``VERBS`` entries render the hint in every bot comment and parse the answers, so the
hint can never advertise a form the parser rejects (a test parses every rendered example back).
Pure: no I/O, no store; applying a command is the cycle's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

COMMAND_WORD = "refinebot"
MAX_SNOOZE_DAYS = 366  # a longer "snooze" is really "ignore": say why with a reason instead
_LINE = re.compile(rf"^\s*{COMMAND_WORD}\b[ \t]*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_DURATION = re.compile(r"^(\d{1,3})([dwm])$", re.IGNORECASE)
_KEY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*-\d+|[A-Za-z0-9_. -]*#\d+|\d+)$")


@dataclass(frozen=True, slots=True)
class Snooze:
    """Hide the ticket's findings until ``until``."""

    until: datetime


@dataclass(frozen=True, slots=True)
class Ignore:
    """Hide one rule on the ticket for a reason, until lifted."""

    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class NotDuplicate:
    """The ticket and ``other`` are not duplicates (both directions, until lifted)."""

    other: str


@dataclass(frozen=True, slots=True)
class Recheck:
    """Lift the ticket's snoozes and ignores so every finding shows again."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that starts with the command word but is no valid command; ``problem`` says why."""

    line: str
    problem: str


Command = Snooze | Ignore | NotDuplicate | Recheck


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What parsing needs to know: the ticket, the rules that exist, the time and the project's zone."""

    issue: str
    rules: frozenset[str]
    now: datetime
    zone: ZoneInfo


class CommandError(ValueError):
    """A verb's arguments are wrong; the message is shown to the person who wrote them."""


@dataclass(frozen=True, slots=True)
class Verb:
    """One command: its name, its argument form, an example that must parse, and its parser."""

    name: str
    arguments: str  # as the usage hint shows it
    example: str  # the arguments of a working example
    meaning: str
    parse: Callable[[str, ParseContext], Command]

    def usage(self) -> str:
        """``refinebot snooze 2w|3d|1m|YYYY-MM-DD``."""
        return " ".join(part for part in (COMMAND_WORD, self.name, self.arguments) if part)

    def example_line(self) -> str:
        """A line that works, e.g. ``refinebot snooze 2w``."""
        return " ".join(part for part in (COMMAND_WORD, self.name, self.example) if part)


def _parse_snooze(arguments: str, ctx: ParseContext) -> Command:
    value = arguments.strip()
    duration = _DURATION.match(value)
    if duration:
        count, unit = int(duration.group(1)), duration.group(2).lower()
        if count == 0:
            raise CommandError("snooze needs a length above zero")
        local = ctx.now.astimezone(ctx.zone)
        if unit == "m":
            until = _add_months(local, count)
        else:
            until = local + timedelta(days=count * (7 if unit == "w" else 1))
    else:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise CommandError(f"snooze needs 2w, 3d, 1m or a date like 2026-12-24, not {value!r}") from None
        until = datetime.combine(day, time(0, 0), tzinfo=ctx.zone)
        if until <= ctx.now:
            raise CommandError(f"{value} has already begun; give a later date")
    if until - ctx.now > timedelta(days=MAX_SNOOZE_DAYS):
        raise CommandError(f"snooze at most {MAX_SNOOZE_DAYS} days; use ignore with a reason for longer")
    return Snooze(until)


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, _days_in(year, month))
    return moment.replace(year=year, month=month, day=day)


def _days_in(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _parse_ignore(arguments: str, ctx: ParseContext) -> Command:
    rule, _, reason = arguments.strip().partition(" ")
    rule = rule.lower()
    if not rule:
        raise CommandError("ignore needs the rule's name and a reason")
    if rule not in ctx.rules:
        raise CommandError(f"there is no rule {rule!r}")
    if not reason.strip():
        raise CommandError(f"ignore {rule} needs a reason after the rule's name")
    return Ignore(rule, " ".join(reason.split()))


def _parse_not_duplicate(arguments: str, ctx: ParseContext) -> Command:
    other = arguments.strip()
    if not other or not _KEY.match(other):
        raise CommandError("not-duplicate needs the other ticket's key, e.g. PAY-112")
    other = other.upper() if "-" in other and "#" not in other else other
    if other == ctx.issue:
        raise CommandError("a ticket cannot be a duplicate of itself")
    return NotDuplicate(other)


def _parse_recheck(arguments: str, _ctx: ParseContext) -> Command:
    if arguments.strip():
        raise CommandError("recheck takes no arguments")
    return Recheck()


VERBS: tuple[Verb, ...] = (
    Verb("snooze", "2w|3d|1m|YYYY-MM-DD", "2w", "hide these findings for a while", _parse_snooze),
    Verb(
        "ignore",
        "RULE REASON",
        "stale-item kept for the yearly audit",
        "hide one rule for good",
        _parse_ignore,
    ),
    Verb("not-duplicate", "KEY", "PAY-112", "this ticket and KEY are different work", _parse_not_duplicate),
    Verb("recheck", "", "", "lift this ticket's snoozes and ignores", _parse_recheck),
)
_BY_NAME = {verb.name: verb for verb in VERBS}


def parse_line(line: str, ctx: ParseContext) -> Command | Malformed:
    """One command line (after the command word) as a command, or why it is none."""
    name, _, arguments = line.strip().partition(" ")
    verb = _BY_NAME.get(name.lower())
    shown = f"{COMMAND_WORD} {line.strip()}".strip()
    if verb is None:
        return Malformed(shown, f"unknown command {name!r}" if name else "no command after 'refinebot'")
    try:
        return verb.parse(arguments, ctx)
    except CommandError as exc:
        return Malformed(shown, str(exc))


def parse_comment(text: str, ctx: ParseContext) -> list[Command | Malformed]:
    """Every command line in a comment's text, in order (a comment without one gives ``[]``)."""
    return [parse_line(match.group(1), ctx) for match in _LINE.finditer(text)]


def usage_line(verbs: Sequence[Verb] = VERBS) -> str:
    """The short usage line of every verb: ``refinebot snooze 2w|3d|1m|YYYY-MM-DD · ...``."""
    return " · ".join(verb.usage() for verb in verbs)


def usage_items(verbs: Iterable[Verb] = VERBS) -> list[tuple[str, str]]:
    """(usage, meaning) per verb, for a comment's "how to answer" list."""
    return [(verb.usage(), verb.meaning) for verb in verbs]
