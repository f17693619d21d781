"""The pre-refinement agenda: which not-ready items the next session discusses, why, and what to prepare.

Pure: issues, findings and suppressions in, an ``Agenda`` out (no I/O, no clock: ``now`` is passed in).

Choice: open, non-epic items that are not in an active sprint and still have a shown error or warning,
in backlog rank order (the items most likely to enter the next one or two sprints), the severity of what
is missing deciding among equally ranked (unranked) items; then as many as fit ``size`` items and
``session_minutes`` by a per-item discussion estimate (larger for an oversized or possibly duplicated
item, which takes a decision, not a nod). An item too long for the time left is passed over for a
shorter one further down, so the session fills up rather than stopping early.

Suppressions are read through ``refinebot.suppressions.decide`` only: a snoozed finding drops off the
agenda (the item is still not ready, and counts so in readiness); an ignored finding or a pair marked
"not a duplicate" was judged wrong and counts as met. "Remove from agenda" is a snooze until the cycle
ends with ``REMOVED_REASON``, so the store needs no separate agenda table and "Add back" is a lift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from refinebot.config import ProjectConfig
from refinebot.models import Finding, Issue, Severity
from refinebot.readiness import BLOCKING_SEVERITIES, backlog_order, summarize
from refinebot.schedules import cycle_label
from refinebot.suppressions import Suppression, SuppressionKind, Verdict, decide

REMOVED_REASON = "removed from agenda"
# Items that need a decision in the room (split it; duplicate or not) take the larger estimate.
LARGE_RULES = frozenset({"oversized-story", "duplicate-candidate"})
_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
_STATUS_WORDS = {"todo": "To Do", "in_progress": "In Progress", "done": "Done"}


@dataclass(frozen=True, slots=True)
class AgendaSettings:
    """How big the agenda is: items, session length, discussion estimates, readiness window."""

    size: int = 8
    session_minutes: int = 60
    item_minutes: int = 5
    large_item_minutes: int = 10
    top_n: int = 16

    @classmethod
    def from_project(cls, project: ProjectConfig) -> AgendaSettings:
        """The settings a project's config asks for."""
        return cls(
            size=project.agenda_size,
            session_minutes=project.session_minutes,
            item_minutes=project.item_minutes,
            large_item_minutes=project.large_item_minutes,
            top_n=project.ready_top_n,
        )


@dataclass(frozen=True, slots=True)
class AgendaItem:
    """One item to discuss: which ticket, how long, why it is here and what to bring."""

    issue: str  # the tracker's key (an Azure DevOps id is a bare number)
    label: str  # the key as people read it (Azure DevOps: Project#1211)
    title: str
    url: str | None
    points: float | None
    minutes: int
    reasons: tuple[str, ...]
    prepare: tuple[str, ...]
    rules: tuple[str, ...]
    duplicate_of: str | None = None  # set on a possible duplicate (the "Not a duplicate" button)

    def to_json(self) -> dict[str, Any]:
        """The item in the ``refinebot agenda --format json`` contract."""
        return {
            "issue": self.issue,
            "title": self.title,
            "url": self.url,
            "points": self.points,
            "minutes": self.minutes,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class SetAside:
    """An item kept off this agenda by a person (snoozed or removed), listed so it can be added back."""

    issue: str
    label: str
    title: str
    url: str | None
    removed: bool  # True: "Remove from agenda" this cycle; False: snoozed
    until: datetime | None


@dataclass(frozen=True, slots=True)
class AgendaReadiness:
    """The share of the top-ranked items that meet the definition of ready, and the last cycle's share."""

    ready: int
    top_n: int
    previous_share: float | None = None

    @property
    def share(self) -> float:
        """Ready items over the top N (0 for an empty backlog)."""
        return self.ready / self.top_n if self.top_n else 0.0

    @property
    def change(self) -> float | None:
        """Share now minus share last cycle; None without a last cycle."""
        return None if self.previous_share is None else self.share - self.previous_share

    def to_json(self) -> dict[str, Any]:
        """``{"ready","top_n","share","previous_share"}``."""
        return {
            "ready": self.ready,
            "top_n": self.top_n,
            "share": round(self.share, 4),
            "previous_share": None if self.previous_share is None else round(self.previous_share, 4),
        }


@dataclass(frozen=True, slots=True)
class Agenda:
    """One project's agenda for one cycle."""

    project: str
    cycle: str
    readiness: AgendaReadiness
    items: tuple[AgendaItem, ...]
    more: int  # not-ready items that did not make the agenda
    other_findings: tuple[tuple[str, int], ...] = ()  # (rule, count) of shown findings off the agenda
    set_aside: tuple[SetAside, ...] = ()
    session_minutes: int = 60

    @property
    def minutes(self) -> int:
        """The agenda's estimated length."""
        return sum(item.minutes for item in self.items)

    @property
    def cycle_label(self) -> str:
        """The cycle as people read it: "2026-W49", or a schedule's "Mon 7 Dec 2026 09:00"."""
        return cycle_label(self.cycle)

    def to_json(self) -> dict[str, Any]:
        """The ``refinebot agenda --format json`` contract for one project."""
        return {
            "project": self.project,
            "cycle": self.cycle,
            "readiness": self.readiness.to_json(),
            "items": [item.to_json() for item in self.items],
            "more": self.more,
        }


def display_key(issue: Issue) -> str:
    """An issue key as people read it: Azure DevOps ids as ``Project#1211``, never a bare number."""
    return f"{issue.project}#{issue.key}" if issue.key.isdigit() and issue.project else issue.key


def _points(value: float) -> str:
    return f"{value:g}"


def _blocker_words(finding: Finding, by_key: Mapping[str, Issue], issue: Issue) -> str:
    blockers = [str(k) for k in finding.details.get("blocked_by", ())]
    link_status = {link.target: link.target_status_category for link in issue.links}
    described = []
    for key in blockers:
        blocker = by_key.get(key)
        category = link_status.get(key)
        status = blocker.status if blocker is not None else (_STATUS_WORDS.get(category or "", ""))
        label = display_key(blocker) if blocker is not None else key
        described.append(f"{label} ({status})" if status else label)
    parts = []
    if described:
        parts.append("blocked by " + ", ".join(described))
    elif finding.details.get("flagged"):
        parts.append("flagged as blocked")
    cycle = [str(k) for k in finding.details.get("cycle", ()) if k != issue.key]
    if cycle:
        parts.append("dependency cycle with " + ", ".join(cycle))
    return " · ".join(parts) or "blocked"


def _head(message: str, limit: int = 60) -> str:
    """A rule's message without its advice, short: the fallback reason for rules this module does not know."""
    head = message.partition(": ")[0].rstrip(".")
    head = head[:1].lower() + head[1:]
    return head if len(head) <= limit else head[: limit - 1].rstrip() + "…"


def reason_and_preparation(finding: Finding, by_key: Mapping[str, Issue]) -> tuple[str, str]:
    """What one finding says on the agenda, in a few words, and what to prepare for it."""
    issue = by_key.get(finding.issue)
    details = finding.details
    match finding.rule:
        case "missing-acceptance-criteria":
            return "no acceptance criteria", "draft acceptance criteria"
        case "missing-description":
            return "no description", "write what is wanted and why"
        case "missing-estimate":
            return "no estimate", "enough detail to estimate it"
        case "oversized-story":
            points = details.get("points")
            said = f"{_points(float(points))} points: split it" if points is not None else "too big: split it"
            return said, "a proposal to split it"
        case "blocked-dependency" if issue is not None:
            blockers = [str(k) for k in details.get("blocked_by", ())]
            prepare = f"news on {', '.join(blockers)}" if blockers else "what unblocks it"
            return _blocker_words(finding, by_key, issue), prepare
        case "duplicate-candidate":
            other = str(details.get("duplicate_of", ""))
            other_issue = by_key.get(other)
            label = display_key(other_issue) if other_issue is not None else other
            return f"possible duplicate of {label}", f"duplicate of {label} or not"
        case "stale-item":
            days = details.get("days_since_update")
            said = f"untouched for {days} days" if days is not None else "untouched for long"
            return said, "is it still wanted?"
        case _:
            return _head(finding.message), "what the finding asks for"


def _severity_rank(findings: Iterable[Finding]) -> int:
    return min((_SEVERITY_ORDER[f.severity] for f in findings), default=len(_SEVERITY_ORDER))


def _item(
    issue: Issue, shown: Sequence[Finding], by_key: Mapping[str, Issue], settings: AgendaSettings
) -> AgendaItem:
    # Worst first, so a phone's first line says the most important thing.
    ordered = sorted(shown, key=lambda f: (_SEVERITY_ORDER[f.severity], f.rule))
    reasons: list[str] = []
    prepare: list[str] = []
    for finding in ordered:
        said, bring = reason_and_preparation(finding, by_key)
        if said not in reasons:
            reasons.append(said)
        if bring not in prepare:
            prepare.append(bring)
    rules = tuple(dict.fromkeys(f.rule for f in ordered))
    large = any(rule in LARGE_RULES for rule in rules)
    duplicate_of = next(
        (
            str(f.details["duplicate_of"])
            for f in ordered
            if f.rule == "duplicate-candidate" and f.details.get("duplicate_of")
        ),
        None,
    )
    return AgendaItem(
        issue=issue.key,
        label=display_key(issue),
        title=issue.title,
        url=issue.url,
        points=issue.story_points,
        minutes=settings.large_item_minutes if large else settings.item_minutes,
        reasons=tuple(reasons),
        prepare=tuple(prepare),
        rules=rules,
        duplicate_of=duplicate_of,
    )


def build_agenda(
    project: str,
    cycle: str,
    issues: Sequence[Issue],
    findings: Sequence[Finding],
    suppressions: Sequence[Suppression],
    now: datetime,
    settings: AgendaSettings | None = None,
    *,
    previous_share: float | None = None,
) -> Agenda:
    """The agenda of ``project`` for ``cycle`` as of ``now``; ``previous_share`` is last cycle's readiness."""
    settings = settings or AgendaSettings()
    decisions = [(finding, decide(finding, suppressions, now)) for finding in findings]
    # Judged wrong by a person (ignored, not a duplicate): met for readiness. A snooze only defers.
    counted = [f for f, d in decisions if d.shown or d.verdict is Verdict.HIDDEN_SNOOZED]
    summary = summarize(issues, counted, top_n=settings.top_n)

    shown_by_issue: dict[str, list[Finding]] = {}
    snoozed_by_issue: dict[str, list[Suppression]] = {}
    for finding, decision in decisions:
        if decision.shown:
            shown_by_issue.setdefault(finding.issue, []).append(finding)
        elif (
            decision.verdict is Verdict.HIDDEN_SNOOZED
            and decision.suppression is not None
            and finding.severity in BLOCKING_SEVERITIES
        ):
            snoozed_by_issue.setdefault(finding.issue, []).append(decision.suppression)

    by_key = {issue.key: issue for issue in issues}
    ordered = [issue for issue in backlog_order(issues) if not issue.in_active_sprint]
    position = {issue.key: index for index, issue in enumerate(ordered)}
    candidates: list[tuple[Issue, list[Finding]]] = []
    set_aside: list[SetAside] = []
    for issue in ordered:
        blocking = [f for f in shown_by_issue.get(issue.key, []) if f.severity in BLOCKING_SEVERITIES]
        if blocking:
            candidates.append((issue, shown_by_issue[issue.key]))
        elif issue.key in snoozed_by_issue:
            longest = max(snoozed_by_issue[issue.key], key=lambda s: s.until or now)
            removed = longest.kind is SuppressionKind.SNOOZE and longest.reason == REMOVED_REASON
            set_aside.append(
                SetAside(issue.key, display_key(issue), issue.title, issue.url, removed, longest.until)
            )

    candidates.sort(
        key=lambda c: (
            0 if c[0].rank else 1,
            c[0].rank or "",
            _severity_rank(f for f in c[1] if f.severity in BLOCKING_SEVERITIES),
            position[c[0].key],
        )
    )
    items: list[AgendaItem] = []
    used = 0
    for issue, shown in candidates:
        if len(items) == settings.size:
            break
        item = _item(issue, shown, by_key, settings)
        if used + item.minutes <= settings.session_minutes:
            items.append(item)
            used += item.minutes

    on_agenda = {item.issue for item in items}
    open_keys = set(position)
    other = Counter(
        f.rule
        for key, shown in shown_by_issue.items()
        if key not in on_agenda and key in open_keys
        for f in shown
    )
    return Agenda(
        project=project,
        cycle=cycle,
        readiness=AgendaReadiness(summary.ready_in_top, summary.top_n, previous_share),
        items=tuple(items),
        more=len(candidates) - len(items),
        other_findings=tuple(sorted(other.items(), key=lambda kv: (-kv[1], kv[0]))),
        set_aside=tuple(set_aside),
        session_minutes=settings.session_minutes,
    )


def _percent(share: float) -> str:
    return f"{round(100 * share)}%"


def readiness_words(readiness: AgendaReadiness) -> str:
    """``5 of the top 10 ready (50%), up from 40% last cycle``: the line both the preview and Slack show."""
    said = f"{readiness.ready} of the top {readiness.top_n} ready ({_percent(readiness.share)})"
    change = readiness.change
    if change is None or readiness.previous_share is None:
        return said
    points = round(100 * change)
    if points == 0:
        return f"{said}, same as last cycle"
    direction = "up" if points > 0 else "down"
    return f"{said}, {direction} from {_percent(readiness.previous_share)} last cycle"


def item_facts(item: AgendaItem) -> str:
    """``5 pts · ~5 min``: the estimate (unless a reason already says it) and the discussion time."""
    facts = [f"~{item.minutes} min"]
    if item.points is not None and "oversized-story" not in item.rules:
        facts.insert(0, f"{_points(item.points)} pt" if item.points == 1 else f"{_points(item.points)} pts")
    return " · ".join(facts)


def render_text(agenda: Agenda) -> str:
    """The plain-text preview (``refinebot agenda``, ``refinebot demo``): what the Slack digest says."""
    lines = [
        f"{agenda.project} refinement agenda, {agenda.cycle_label}: {len(agenda.items)} items, "
        f"about {agenda.minutes} of {agenda.session_minutes} minutes",
        f"Readiness: {readiness_words(agenda.readiness)}",
    ]
    if not agenda.items:
        lines.append("Nothing to refine: every top item is ready or set aside.")
    for number, item in enumerate(agenda.items, start=1):
        lines.append("")
        lines.append(f"{number}. {item.label}  {item.title}")
        lines.append(f"   {item_facts(item)} · {' · '.join(item.reasons)}")
        lines.append(f"   Prepare: {'; '.join(item.prepare)}")
        if item.url:
            lines.append(f"   {item.url}")
    tail = []
    if agenda.more:
        tail.append(
            f"and {agenda.more} more not-ready {'item' if agenda.more == 1 else 'items'} in the backlog"
        )
    if agenda.other_findings:
        tail.append(
            "Other findings: " + ", ".join(f"{rule} {count}" for rule, count in agenda.other_findings)
        )
    if agenda.set_aside:
        removed = [s.label for s in agenda.set_aside if s.removed]
        snoozed = [s.label for s in agenda.set_aside if not s.removed]
        if snoozed:
            tail.append(f"Snoozed: {', '.join(snoozed)}")
        if removed:
            tail.append(f"Removed from this agenda: {', '.join(removed)}")
    if tail:
        lines.append("")
        lines.extend(tail)
    return "\n".join(lines)
