"""The canonical domain types every connector maps into and every rule reads."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class SourceKind(StrEnum):
    """Where an issue came from."""

    JIRA = "jira"
    AZURE_DEVOPS = "azure_devops"
    FILE = "file"


class IssueType(StrEnum):
    """Normalised work item type; the vendor's own name stays in ``Issue.raw_type``."""

    STORY = "story"
    BUG = "bug"
    TASK = "task"
    EPIC = "epic"
    OTHER = "other"

    @classmethod
    def from_name(cls, name: str | None) -> IssueType:
        """Map a vendor type name (Jira issue type, ADO work item type) to a normalised type."""
        if not name:
            return cls.OTHER
        lowered = name.strip().lower()
        return _TYPE_NAMES.get(lowered, cls.OTHER)


_TYPE_NAMES: dict[str, IssueType] = {
    "story": IssueType.STORY,
    "user story": IssueType.STORY,
    "product backlog item": IssueType.STORY,
    "requirement": IssueType.STORY,
    "improvement": IssueType.STORY,
    "new feature": IssueType.STORY,
    "feature request": IssueType.STORY,
    "bug": IssueType.BUG,
    "defect": IssueType.BUG,
    "issue": IssueType.BUG,
    "task": IssueType.TASK,
    "sub-task": IssueType.TASK,
    "subtask": IssueType.TASK,
    "technical task": IssueType.TASK,
    "spike": IssueType.TASK,
    "epic": IssueType.EPIC,
    "feature": IssueType.EPIC,
    "initiative": IssueType.EPIC,
}


class StatusCategory(StrEnum):
    """The three workflow categories both Jira and Azure DevOps reduce to."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"

    @classmethod
    def from_jira_key(cls, key: str | None) -> StatusCategory | None:
        """Map Jira's ``statusCategory.key`` (new / indeterminate / done)."""
        return {"new": cls.TODO, "indeterminate": cls.IN_PROGRESS, "done": cls.DONE}.get((key or "").lower())

    @classmethod
    def guess_from_status(cls, status: str | None) -> StatusCategory:
        """Best guess from a bare status name, for sources that carry no category (CSV exports)."""
        lowered = (status or "").strip().lower()
        if lowered in _DONE_NAMES:
            return cls.DONE
        if lowered in _PROGRESS_NAMES or "progress" in lowered or "review" in lowered:
            return cls.IN_PROGRESS
        return cls.TODO


_DONE_NAMES = frozenset(
    {
        "done",
        "closed",
        "resolved",
        "completed",
        "complete",
        "removed",
        "cancelled",
        "canceled",
        "won't do",
        "wont do",
        "released",
        "finished",
    }
)
_PROGRESS_NAMES = frozenset({"active", "committed", "doing", "in development", "testing", "qa"})


class LinkKind(StrEnum):
    """How an issue relates to another, read from this issue's side."""

    BLOCKS = "blocks"
    BLOCKED_BY = "blocked_by"
    DUPLICATES = "duplicates"
    DUPLICATED_BY = "duplicated_by"
    RELATES = "relates"
    PARENT = "parent"
    CHILD = "child"


class Severity(StrEnum):
    """How much a finding matters for readiness; error and warning make an item not ready."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Link:
    """One link from an issue to another issue."""

    kind: LinkKind
    target: str
    target_status_category: StatusCategory | None = None


@dataclass(frozen=True, slots=True)
class Issue:
    """One backlog item, whatever system it came from."""

    key: str
    project: str
    source_kind: SourceKind
    title: str
    type: IssueType = IssueType.OTHER
    raw_type: str = ""
    url: str | None = None
    description: str = ""
    acceptance_criteria: str | None = None
    story_points: float | None = None
    status: str = ""
    status_category: StatusCategory = StatusCategory.TODO
    priority: str | None = None
    rank: str | None = None
    labels: tuple[str, ...] = ()
    assignee: str | None = None
    reporter: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    sprint: str | None = None
    in_active_sprint: bool = False
    parent: str | None = None
    links: tuple[Link, ...] = ()
    flagged_blocked: bool = False

    @property
    def is_open(self) -> bool:
        """True while the item still needs work (not in a done category)."""
        return self.status_category is not StatusCategory.DONE


def rank_from_number(value: float) -> str:
    """Turn a numeric backlog order (ADO StackRank/BacklogPriority) into a string that sorts the same way."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"rank must be a finite number, got {value!r}")
    # The IEEE-754 bits, flipped so that unsigned order equals numeric order (all bits for negatives, the
    # sign bit for positives): exact for every finite float, so nearby StackRank values never tie.
    (bits,) = struct.unpack(">Q", struct.pack(">d", value + 0.0))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def pair_subject(first: str, second: str) -> str:
    """The subject of a finding about a pair of issues: both keys, sorted, joined by ``|``."""
    return "|".join(sorted((first, second)))


def _freeze(details: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(details))


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's verdict on one issue: what is wrong, why, and the numbers behind it."""

    project: str
    issue: str
    rule: str
    code: str
    severity: Severity
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    # A stable fingerprint of what the finding is about beyond its issue and rule (the sorted pair of
    # keys for a duplicate); empty for issue-level rules. Part of the identity, not of the JSON contract.
    subject: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _freeze(self.details))

    @classmethod
    def owning(
        cls,
        project: str,
        issue: str,
        rule: str,
        code: str,
        severity: Severity,
        message: str,
        details: dict[str, Any],
        subject: str = "",
    ) -> Finding:
        """A finding that takes ``details`` over instead of copying it: for a fresh dict nobody else holds.

        ``Rule.finding`` makes half a million findings on a 200k backlog, each from its own ``**details``
        dict; the generated ``__init__`` (one ``object.__setattr__`` per field) and the defensive copy in
        ``__post_init__`` were most of their cost. ``details`` is still only reachable read-only.
        """
        finding = _new(cls)
        _SET_PROJECT(finding, project)
        _SET_ISSUE(finding, issue)
        _SET_RULE(finding, rule)
        _SET_CODE(finding, code)
        _SET_SEVERITY(finding, severity)
        _SET_MESSAGE(finding, message)
        _SET_DETAILS(finding, MappingProxyType(details))
        _SET_SUBJECT(finding, subject)
        return finding

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What makes two runs' findings the same finding: project, issue, rule and subject."""
        return (self.project, self.issue, self.rule, self.subject)

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape: exactly project, issue, rule, code, severity, message, details."""
        return {
            "project": self.project,
            "issue": self.issue,
            "rule": self.rule,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "details": _plain(self.details),
        }


# The slots' own setters: what the frozen ``__setattr__`` would refuse, ``Finding.owning`` needs once.
_new = object.__new__
(
    _SET_PROJECT,
    _SET_ISSUE,
    _SET_RULE,
    _SET_CODE,
    _SET_SEVERITY,
    _SET_MESSAGE,
    _SET_DETAILS,
    _SET_SUBJECT,
) = (
    Finding.__dict__[name].__set__
    for name in ("project", "issue", "rule", "code", "severity", "message", "details", "subject")
)

# Exact types ``_plain`` returns as they are, and containers it copies: tested by ``type`` first,
# because the ``Mapping`` ABC check was most of encoding 568k findings (the order below is unchanged
# for every other type).
_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAPPINGS = frozenset({dict, MappingProxyType})


_STR = frozenset({str})


def flat_details(details: Mapping[str, Any], scalars: frozenset[object]) -> dict[str, Any] | None:
    """A plain copy of ``details`` when their keys are exact ``str`` and their values of the exact
    types ``scalars`` (or lists and tuples of them): what ``to_json`` gives for them; else None."""
    # The type tests run in C (``issuperset`` over ``map``); the loop only for details with lists.
    if not _STR.issuperset(map(type, details)):
        return None
    if not scalars.issuperset(map(type, details.values())):
        for value in details.values():
            kind = type(value)
            if kind not in scalars and not (
                (kind is list or kind is tuple) and scalars.issuperset(map(type, value))
            ):
                return None
    return dict(details)


def json_default(value: Any) -> Any:
    """What the ``json`` encoder is to print for a value it cannot encode itself (its ``default``).

    A row holding a finding's ``details`` as they are then prints as ``to_json``'s dict prints: the
    usual details (string keys, scalars, lists of scalars) are handed back as a plain copy for the
    encoder's C code, anything else goes through ``_plain`` as ``to_json`` sends it.
    """
    if type(value) is MappingProxyType:
        flat = flat_details(value, _SCALARS)
        return _plain(value) if flat is None else flat
    plain = _plain(value)
    if plain is value:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return plain


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _MAPPINGS:
        return {
            k if type(k) is str else str(k): v if type(v) in _SCALARS else _plain(v) for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else _plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value
