"""The issues a project's last cycle saw, kept so Slack buttons can rebuild the agenda without a tracker call.

A button press must be answered in 3 s and listeners never call Jira or Azure DevOps, yet the agenda
needs the issues (rank, title, points, sprint) as well as the findings. The cycle saves the normalised
``Issue`` list here after each run (as JSON in the ``sync_state`` table, one row per project, so no
migration); the listener loads it beside the stored findings and suppressions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from refinebot.models import Issue, IssueType, Link, LinkKind, SourceKind, StatusCategory
from refinebot.store.sync_state import DatabaseSyncStateStore

KEY = "refinebot:issues:{project}"
VERSION = 1
_DATES = ("created", "updated")


def issue_to_json(issue: Issue) -> dict[str, Any]:
    """``issue`` as plain JSON (enums as values, dates as ISO strings, links as lists)."""
    out: dict[str, Any] = {}
    for spec in fields(Issue):
        value = getattr(issue, spec.name)
        if spec.name in _DATES:
            value = value.isoformat() if value is not None else None
        elif spec.name == "links":
            value = [[link.kind.value, link.target, link.target_status_category] for link in value]
        elif spec.name == "labels":
            value = list(value)
        out[spec.name] = value
    return out


def issue_from_json(data: dict[str, Any]) -> Issue:
    """The ``Issue`` ``issue_to_json`` wrote."""
    values = dict(data)
    values["source_kind"] = SourceKind(values["source_kind"])
    values["type"] = IssueType(values["type"])
    values["status_category"] = StatusCategory(values["status_category"])
    for name in _DATES:
        values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
    values["labels"] = tuple(values.get("labels") or ())
    values["links"] = tuple(
        Link(LinkKind(kind), target, StatusCategory(category) if category else None)
        for kind, target, category in values.get("links") or ()
    )
    known = {spec.name for spec in fields(Issue)}
    return Issue(**{k: v for k, v in values.items() if k in known})


class IssueSnapshots:
    """Save and load the issues a project's last cycle saw."""

    def __init__(self, state: DatabaseSyncStateStore) -> None:
        self._state = state

    def save(self, project: str, issues: Sequence[Issue]) -> None:
        """Replace ``project``'s snapshot with ``issues``."""
        self._state.save(
            KEY.format(project=project),
            {"version": VERSION, "issues": [issue_to_json(issue) for issue in issues]},
        )

    def load(self, project: str) -> list[Issue] | None:
        """The issues last saved for ``project``; None when none were (or in a format no longer read)."""
        value = self._state.load(KEY.format(project=project))
        if not isinstance(value, dict) or value.get("version") != VERSION:
            return None
        return [issue_from_json(item) for item in value.get("issues") or []]
