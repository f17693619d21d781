"""One project's digest cycle, run against the store: sync -> ticket replies -> rules -> findings and
readiness -> ticket comments -> the Slack agenda.

The data walk of ../shared/notes/architecture.md, with one change of order: the team's answers on
tickets are read and applied *before* the rules run, so a pair marked "not a duplicate" on Monday is
not flagged again in the same cycle. ``refinebot/cycle.py`` keeps the pure vocabulary (cycle ids, the
``DigestPoster`` port) that ``slack.actions`` imports; this module is the part that touches the store and
the trackers, so that pure module stays free of them.

Writes and their safety:
- Each write to a tracker goes through a ``TicketWriter``: the connector, or in ``--dry-run`` a
  ``RecordingWriter`` that records what would be posted. The store is swapped the same way: a dry run
  runs inside one transaction that is rolled back (``rehearsal``), so nothing it wrote survives.
- Crash safety: before a first POST the ledger records the ticket as *pending*, committed. A process
  killed after the tracker accepted the POST but before the ledger commit leaves that pending row, and
  the rerun looks for the bot's marker (one comment listing) instead of posting again. A ticket never
  posted on needs no lookup, so a first digest costs one request per flagged ticket.
- The Slack agenda comes last, through the ``DigestPoster`` the caller gives (``poster_for``, built by
  the CLI from ``refinebot.slack``, which this module may not import) and rendered by ``render``. It is
  built from the run with the stored suppressions and last cycle's readiness; the readiness it shows
  is the one recorded for the cycle. A Slack failure fails the project after everything else committed.
- The bot's own activity: Jira and Azure DevOps bump ``updated`` when the bot comments. After each write
  the cycle remembers (in sync state) the ticket's ``updated`` as the team left it and when the bot
  wrote; an ``updated`` no later than that write (+ ``BOT_WRITE_SLACK``) is the bot's, and the rules see
  the team's time instead, so ``stale-item`` is never reset by refinebot itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from connectors.base import (
    CommentGoneError,
    CommentingConnector,
    Connector,
    ConnectorError,
    ProgressCallback,
    no_progress,
)
from refinebot.agenda import Agenda, AgendaSettings, build_agenda
from refinebot.comments.commands import (
    Command,
    Ignore,
    Malformed,
    NotDuplicate,
    ParseContext,
    Recheck,
    Snooze,
    parse_comment,
)
from refinebot.comments.compose import (
    MARKER,
    compose_findings,
    compose_ready,
    content_hash,
    describe_suppression,
    unknown_command_note,
)
from refinebot.config import LoadedConfig
from refinebot.cycle import (
    DigestAction,
    DigestPoster,
    DigestPostError,
    RecordingPoster,
    current_cycle,
    project_cycle,
    project_zone,
)
from refinebot.document import Document
from refinebot.faults import fault_point
from refinebot.models import Finding, Issue
from refinebot.pipeline import ProjectInputs, ProjectResult, evaluate_project
from refinebot.sources import connector_for
from refinebot.store import BotComment, Store, StoreError
from refinebot.store.claims import claim_cycle
from refinebot.store.readiness import ReadinessRecord
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource
from rules.registry import RuleRegistry

logger = logging.getLogger(__name__)

PENDING = "pending"  # a ledger row's content hash while its first POST may or may not have landed
BOT_WRITE_SLACK = timedelta(seconds=60)  # tracker clock vs ours: an update this close to our write is ours
ACTIVITY_KEY = "refinebot:bot-activity:{project}"


class TicketWriter(Protocol):
    """The writing half of a commenting connector (what ``--dry-run`` swaps for a recorder)."""

    def add_comment(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Post the comment; its id."""
        ...

    def update_comment(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Replace the comment's body (``known_ours``: no author check; ``CommentGoneError`` if deleted)."""
        ...


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """A write a dry run would have made."""

    issue: str
    action: str  # "post" or "edit"
    document: Document


@dataclass
class RecordingWriter:
    """A ``TicketWriter`` that writes nothing and remembers what it was asked to write."""

    writes: list[PlannedWrite] = field(default_factory=list)

    def add_comment(self, issue_key: str, document: Document, *, marker: str) -> str:
        """Record a post; a made-up id."""
        self.writes.append(PlannedWrite(issue_key, "post", document))
        return f"dry-run-{len(self.writes)}"

    def update_comment(
        self, issue_key: str, comment_id: str, document: Document, *, marker: str, known_ours: bool = False
    ) -> None:
        """Record an edit."""
        self.writes.append(PlannedWrite(issue_key, "edit", document))


class _RollbackError(Exception):
    """Ends a rehearsal's transaction without committing it."""


@contextmanager
def rehearsal(store: Store) -> Iterator[None]:
    """Everything the store is asked inside happens in one transaction that is then rolled back.

    A dry run sees its own writes (a suppression a reply would add hides its finding) and leaves the
    database exactly as it was. On SQLite it holds the write lock for the run.
    """
    try:
        with store.transaction():
            yield
            raise _RollbackError
    except _RollbackError:
        logger.debug("dry run: store changes rolled back")


class ReadThroughRuleCache:
    """A ``RuleCache`` that reads the store's and keeps new values in memory (``scan`` writes no records)."""

    def __init__(self, below: Any) -> None:
        self._below = below
        self._mine: dict[str, object] = {}

    def after_fork(self) -> None:
        """In a forked child (``refinebot.rule_fork``): the store below reads through its own connections."""
        after_fork = getattr(self._below, "after_fork", None)
        if after_fork is not None:
            after_fork()

    def get(self, key: str) -> object | None:
        """This run's value, else the stored one."""
        return self._mine[key] if key in self._mine else self._below.get(key)

    def put(self, key: str, value: object) -> None:
        """Keep ``value`` for this run only."""
        self._mine[key] = value

    def delete(self, key: str) -> None:
        """Forget ``key`` for this run (the stored value stays: ``scan`` writes no records)."""
        self._mine[key] = None


# --- the bot's own activity ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotTouch:
    """The bot wrote on a ticket at ``at``; before that the team had last updated it at ``team_updated``."""

    at: datetime
    team_updated: datetime | None


def load_touches(store: Store, project: str) -> dict[str, BotTouch]:
    """The bot's last write per ticket of ``project`` (kept with the sync state: it corrects synced data)."""
    raw = store.sync_state.load(ACTIVITY_KEY.format(project=project)) or {}
    touches: dict[str, BotTouch] = {}
    for key, value in raw.items() if isinstance(raw, dict) else ():
        try:
            team = value.get("team_updated")
            touches[key] = BotTouch(
                datetime.fromisoformat(value["at"]), datetime.fromisoformat(team) if team else None
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            logger.warning("ignoring an unreadable bot-activity entry for %s", key)
    return touches


def save_touches(store: Store, project: str, touches: dict[str, BotTouch]) -> None:
    """Keep the bot's last write per ticket."""
    store.sync_state.save(
        ACTIVITY_KEY.format(project=project),
        {
            key: {
                "at": t.at.isoformat(),
                "team_updated": t.team_updated.isoformat() if t.team_updated else None,
            }
            for key, t in sorted(touches.items())
        },
    )


def without_bot_activity(issues: Sequence[Issue], touches: dict[str, BotTouch]) -> list[Issue]:
    """``issues`` with every ``updated`` the bot caused replaced by the team's own last update."""
    out: list[Issue] = []
    for issue in issues:
        touch = touches.get(issue.key)
        if touch is not None and issue.updated is not None and issue.updated <= touch.at + BOT_WRITE_SLACK:
            issue = replace(issue, updated=touch.team_updated or issue.created)
        out.append(issue)
    return out


def scan_inputs(store: Store, project: str) -> ProjectInputs:
    """What ``scan`` gives a project: the store's sync state, suppressions, cache (read only) and the
    bot-activity correction, so scan and digest agree on what is shown."""
    touches = load_touches(store, project)
    return ProjectInputs(
        state=store.sync_state,
        suppressions=store.suppressions.list_suppressions(project),
        cache=ReadThroughRuleCache(store.rule_cache(project)),
        prepare=lambda issues: without_bot_activity(issues, touches),
    )


# --- one project's cycle ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommentAction:
    """What the cycle did (or, in a dry run, would do) on one ticket's bot comment."""

    issue: str
    action: str  # posted | edited | ready | recovered
    document: Document


@dataclass(frozen=True, slots=True)
class AppliedReply:
    """A command read from a ticket and what became of it."""

    issue: str
    author: str
    line: str
    outcome: str  # the words the bot comment shows


@dataclass(frozen=True, slots=True)
class CycleReport:
    """One project's cycle: the run, what was answered and what was written."""

    project: str
    cycle: str
    result: ProjectResult
    replies: tuple[AppliedReply, ...] = ()
    comments: tuple[CommentAction, ...] = ()
    unchanged: int = 0  # bot comments left alone (same content hash: no request)
    comment_reads: int = 0  # tickets whose new comments were read
    digest: str = ""  # what happened to the Slack digest
    digest_error: str | None = None  # the Slack digest failed (the rest of the cycle was done)
    agenda: Agenda | None = None
    skipped: str | None = None  # another process holds the project's cycle: why this one did nothing

    @property
    def ok(self) -> bool:
        """True when the project ran to the end, its Slack digest included."""
        return self.result.ok and self.digest_error is None

    @property
    def error(self) -> str | None:
        """Why the project failed, or None."""
        return self.result.error or self.digest_error


PosterFor = Callable[[str], DigestPoster | None]  # project -> its Slack poster, or None (not configured)
Renderer = Callable[[Agenda], dict[str, Any]]  # the agenda as the poster's payload (Slack's Block Kit)


@dataclass
class DigestCycle:
    """The digest cycle of one project over a store; ``writer_for`` is the swap point for dry runs."""

    loaded: LoadedConfig
    store: Store
    registry: RuleRegistry
    writer_for: Callable[[CommentingConnector], TicketWriter] = lambda connector: connector
    poster_for: PosterFor | None = None
    render: Renderer | None = None
    progress: ProgressCallback = no_progress
    connector_factory: Callable[[str], Connector] | None = None
    exclusive: bool = True  # claim the project in the database first (a dry run, which writes nothing, not)

    def run(self, project: str, now: datetime | None = None, *, full: bool = False) -> CycleReport:
        """Run ``project``'s cycle; a failure is the report's error, never an exception.

        Replicas on one database: the project's cycle is claimed first (``refinebot.store.claims``); when
        another process holds it, nothing is done and the report says so (``skipped``, still ok).
        """
        now = now or datetime.now(UTC)
        cycle = self.cycle_of(project, now)
        if not self.exclusive:
            return self._guarded(project, cycle, now, full)
        try:
            with claim_cycle(self.store.engine, project, cycle) as claim:
                if not claim.won:
                    return CycleReport(project, cycle, ProjectResult(project=project), skipped=claim.message)
                fault_point("claimed")
                report = self._guarded(project, cycle, now, full)
                if report.ok:
                    claim.finish()
                return report
        except StoreError as exc:
            logger.info("project %s failed: %s", project, exc)
            return CycleReport(project, cycle, ProjectResult(project=project, error=str(exc)))

    def cycle_of(self, project: str, now: datetime) -> str:
        """``project``'s cycle at ``now`` (a week an older release began in this period goes on)."""
        cycle = current_cycle(self.loaded.config, project, now, self.store.cycle_last_run)
        if cycle != project_cycle(self.loaded.config, project, now):
            logger.info("project %s: cycle %s, begun before cycles followed the schedule, goes on", project,
                        cycle, extra={"project": project, "cycle": cycle})  # fmt: skip
        return cycle

    def _guarded(self, project: str, cycle: str, now: datetime, full: bool) -> CycleReport:
        try:
            return self._run(project, cycle, now, full)
        except ConnectorError as exc:
            logger.info("project %s failed: %s", project, exc)
            return CycleReport(project, cycle, ProjectResult(project=project, error=str(exc)))

    def _connector(self, project: str) -> Connector:
        if self.connector_factory is not None:
            return self.connector_factory(project)
        source = self.loaded.config.projects[project].source
        return connector_for(self.loaded, source, state=self.store.sync_state, progress=self.progress)

    def _run(self, project: str, cycle: str, now: datetime, full: bool) -> CycleReport:
        settings = self.loaded.config.projects[project]
        zone = project_zone(self.loaded.config, project)
        connector = self._connector(project)
        fetched = connector.fetch(project, settings.query, full=full)
        fault_point("sync")
        touches = load_touches(self.store, project)
        seen = {issue.key: issue for issue in without_bot_activity(fetched.issues, touches)}
        commenting = isinstance(connector, CommentingConnector) and settings.comment_on_tickets
        replies: list[AppliedReply] = []
        notes: dict[str, list[str]] = {}
        reads = 0
        if commenting:
            assert isinstance(connector, CommentingConnector)
            reads = self._read_replies(connector, project, seen, now, zone, replies, notes)
        inputs = ProjectInputs(
            suppressions=self.store.suppressions.list_suppressions(project),
            cache=self.store.rule_cache(project),
            prepare=lambda issues: without_bot_activity(issues, touches),
        )
        result = evaluate_project(self.loaded, project, fetched, inputs, registry=self.registry, now=now)
        agenda = None
        previous = self.store.readiness.previous(project, cycle)

        def make_agenda(suppressions: Sequence[Suppression]) -> Agenda:
            return build_agenda(
                project,
                cycle,
                result.issues,
                result.all_findings,
                suppressions,
                now,
                AgendaSettings.from_project(settings),
                previous_share=previous.share if previous is not None else None,
            )

        if result.summary is not None:
            agenda = make_agenda(inputs.suppressions)
        with self.store.transaction():  # the project's findings and readiness commit together
            self.store.findings.record(project, cycle, result.all_findings, result.decisions, now)
            self.store.issues.save(project, result.issues)  # what Slack buttons rebuild the agenda from
            if result.summary is not None and agenda is not None:
                # The readiness the digest shows (a snoozed item is deferred, not ready), so that next
                # cycle's "up from" compares like with like; the backlog counts come from the run.
                summary = result.summary
                self.store.readiness.record(
                    ReadinessRecord(
                        project,
                        cycle,
                        agenda.readiness.ready,
                        agenda.readiness.top_n,
                        agenda.readiness.share,
                        summary.open_items,
                        summary.ready_items,
                        now,
                    )
                )
        fault_point("store")
        actions: list[CommentAction] = []
        unchanged = 0
        if commenting:
            assert isinstance(connector, CommentingConnector)
            unchanged = self._comment(connector, project, result, seen, notes, touches, now, zone, actions)
            save_touches(self.store, project, touches)
        if agenda is not None:
            # A Slack button pressed while this run synced (a snooze on last run's message) must not be
            # undone by this run's post: the agenda is rebuilt if the suppressions changed meanwhile.
            fresh = self.store.suppressions.list_suppressions(project)
            if fresh != list(inputs.suppressions):
                agenda = make_agenda(fresh)
        digest, digest_error = self._digest(project, agenda)
        return CycleReport(
            project,
            cycle,
            result,
            tuple(replies),
            tuple(actions),
            unchanged,
            reads,
            digest,
            digest_error,
            agenda,
        )

    # --- replies -----------------------------------------------------------------------------------

    def _read_replies(
        self,
        connector: CommentingConnector,
        project: str,
        seen: dict[str, Issue],
        now: datetime,
        zone: Any,
        replies: list[AppliedReply],
        notes: dict[str, list[str]],
    ) -> int:
        """Read new comments on tickets carrying a bot comment that changed since; apply their commands.

        One listing per such ticket (Jira: 100 comments a page; Azure DevOps: 200), none for the rest.
        """
        reads = 0
        rule_names = frozenset(rule.name for rule in self.registry)
        for recorded in self.store.ledger.comments(project):
            issue = seen.get(recorded.issue)
            if recorded.marker != MARKER or not recorded.comment_id or issue is None:
                continue
            since = recorded.replies_read_at
            if since is not None and (issue.updated is None or issue.updated <= since):
                continue  # nothing happened on the ticket (the bot's own edits are taken out)
            reads += 1
            ctx = ParseContext(recorded.issue, rule_names, now, zone)
            # Read before the transaction: no database lock is held while the tracker answers.
            comments = [c for c in connector.comments_since(recorded.issue, since) if not c.by_bot]
            # The bot's own words (its usage hint, say) are never commands. The ticket's commands and its
            # read mark commit together: a process killed in between leaves neither, and the rerun reads
            # the same comments again and applies them once.
            with self.store.transaction():
                for comment in comments:
                    for command in parse_comment(comment.text, ctx):
                        outcome = self._apply(project, recorded.issue, command, comment.author, now, zone)
                        line = command.line if isinstance(command, Malformed) else type(command).__name__
                        replies.append(AppliedReply(recorded.issue, comment.author, line, outcome))
                        if isinstance(command, Malformed | Recheck):
                            notes.setdefault(recorded.issue, []).append(outcome)
                if comments:
                    fault_point("reply-applied")
                self.store.ledger.mark_replies_read(project, recorded.issue, MARKER, now)
        return reads

    def _apply(
        self, project: str, issue: str, command: Command | Malformed, author: str, now: datetime, zone: Any
    ) -> str:
        """Apply one command through the suppression API; the words that acknowledge it."""

        def add(kind: SuppressionKind, **values: Any) -> str:
            made = Suppression(
                kind=kind, project=project, issue=issue, created=now, by=author,
                source=SuppressionSource.TICKET, **values,
            )  # fmt: skip
            return describe_suppression(self.store.suppressions.add(made), zone)

        if isinstance(command, Malformed):
            return unknown_command_note(command.line, command.problem, author)
        if isinstance(command, Snooze):
            return add(SuppressionKind.SNOOZE, until=command.until, reason="snoozed on the ticket")
        if isinstance(command, Ignore):
            return add(SuppressionKind.IGNORE, rule=command.rule, reason=command.reason)
        if isinstance(command, NotDuplicate):
            return add(SuppressionKind.NOT_DUPLICATE, other_issue=command.other, reason="said on the ticket")
        lifted = 0
        for suppression in self.store.suppressions.list_suppressions(project, active_at=now):
            if suppression.issue == issue and suppression.kind is not SuppressionKind.NOT_DUPLICATE:
                assert suppression.id is not None
                lifted += self.store.suppressions.lift(suppression.id, now)
        return f"Rechecked by {author}: {lifted} snooze{'s' if lifted != 1 else ''} or ignore{'s' if lifted != 1 else ''} lifted"

    # --- comments ----------------------------------------------------------------------------------

    def _comment(
        self,
        connector: CommentingConnector,
        project: str,
        result: ProjectResult,
        seen: dict[str, Issue],
        notes: dict[str, list[str]],
        touches: dict[str, BotTouch],
        now: datetime,
        zone: Any,
        actions: list[CommentAction],
    ) -> int:
        """Post, edit or leave alone each ticket's one bot comment; how many were left alone."""
        writer = self.writer_for(connector)
        shown: dict[str, list[Finding]] = {}
        for finding, decision in zip(result.all_findings, result.decisions, strict=True):
            if decision.shown:
                shown.setdefault(finding.issue, []).append(finding)
        # What people answered shows on the ticket while it is in force, whether or not a finding is
        # hidden by it (a pair marked "not a duplicate" is not even produced by the rule any more).
        answers: dict[str, set[str]] = {}
        for suppression in self.store.suppressions.list_suppressions(project, active_at=now):
            for key in (suppression.issue, suppression.other_issue):
                if key:
                    answers.setdefault(key, set()).add(describe_suppression(suppression, zone))
        recorded = {c.issue: c for c in self.store.ledger.comments(project) if c.marker == MARKER}
        unchanged = 0
        for key in sorted(set(shown) | set(recorded)):
            issue = seen.get(key)
            if issue is None or not issue.is_open:
                continue  # closed or gone: its comment stays as it was
            answered = sorted(answers.get(key, ()))
            ready = key not in shown
            if not ready or (key in recorded and answered):
                document = compose_findings(
                    key, shown.get(key, []), answered=answered, notes=notes.get(key, ())
                )
                ready = False
            elif key in recorded:
                document = compose_ready(key, notes=notes.get(key, ()))
            else:
                continue
            digest = content_hash(document)
            previous = recorded.get(key)
            if previous is not None and previous.content_hash == digest:
                unchanged += 1
                continue
            action = self._write(
                connector, writer, project, key, previous, document, digest, now, ready=ready
            )
            # ``issue`` is already corrected for earlier bot writes: its updated is the team's own.
            touches[key] = BotTouch(datetime.now(UTC), issue.updated)
            actions.append(CommentAction(key, action, document))
        return unchanged

    def _write(
        self,
        connector: CommentingConnector,
        writer: TicketWriter,
        project: str,
        key: str,
        previous: BotComment | None,
        document: Document,
        digest: str,
        now: datetime,
        *,
        ready: bool,
    ) -> str:
        """Post or edit one ticket's comment and record it; what was done."""
        comment_id = previous.comment_id if previous is not None else ""
        recovered = False
        if previous is not None and previous.content_hash == PENDING:
            # A run died between a POST and its ledger commit: the comment may be there already.
            comment_id = connector.find_comment(key, MARKER) or ""
            recovered = bool(comment_id)
        if comment_id:
            try:
                # The ledger's ids come from the bot's own posts (or find_comment, which checks the
                # author), so the connector need not read each comment's author again before editing.
                writer.update_comment(key, comment_id, document, marker=MARKER, known_ours=True)
                fault_point("comment-edit")
                action = "recovered" if recovered else ("ready" if ready else "edited")
            except CommentGoneError:
                logger.info("project %s: the bot's comment on %s was deleted; posting it again", project, key)
                comment_id = ""
        if not comment_id:
            self.store.ledger.save_comment(BotComment(project, key, MARKER, "", PENDING, now, now))
            comment_id = writer.add_comment(key, document, marker=MARKER)
            fault_point("comment-post")
            action = "posted"
        read_at = previous.replies_read_at if previous is not None and previous.replies_read_at else now
        self.store.ledger.save_comment(BotComment(project, key, MARKER, comment_id, digest, now, read_at))
        fault_point("comment-ledger")
        return action

    def _digest(self, project: str, agenda: Agenda | None) -> tuple[str, str | None]:
        """Post (or edit) the project's agenda in its Slack channel, and as a DM to its ``pm_slack_user``;
        what happened, and the error if any.

        Last in the cycle: the findings, readiness and ticket comments are committed whatever Slack says.
        """
        settings = self.loaded.config.projects[project]
        targets = [t for t in (settings.slack_channel, settings.pm_slack_user) if t]
        if not targets:
            return "no slack_channel", None
        poster = self.poster_for(project) if self.poster_for is not None else None
        if poster is None or self.render is None:
            logger.info("project %s: Slack digest skipped (no Slack poster or token configured)", project)
            return "skipped: no Slack bot token configured", None
        if agenda is None:
            return "skipped: no agenda", None
        payload = self.render(agenda)
        done: list[str] = []
        for target in targets:
            dm = target == settings.pm_slack_user and target != settings.slack_channel
            try:
                outcome = poster.post(agenda, payload, target)
            except DigestPostError as exc:
                logger.info("project %s: Slack digest to %s failed: %s", project, target, exc)
                return "; ".join([*done, "failed"]), f"Slack digest{f' DM to {target}' if dm else ''}: {exc}"
            if outcome.action is DigestAction.SKIPPED:
                return f"skipped: {outcome.note}", None
            fault_point("digest-commit")  # the poster has saved the digest's ledger row
            items = f"{len(agenda.items)} agenda item{'s' if len(agenda.items) != 1 else ''}"
            if isinstance(poster, RecordingPoster) or outcome.action is DigestAction.PLANNED:
                said = f"would post {items} to {target}"
            else:
                said = f"{outcome.action.value} in {outcome.channel} ({items})"
            done.append(f"DM to {target}: {said}" if dm else said)
        return "; ".join(done), None
