"""Run refinebot over configured projects: fetch each backlog, evaluate the rules, collect findings.

One failing project is reported in its result and the others still run.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import attrgetter

from connectors.base import (
    Connector,
    ConnectorError,
    FetchResult,
    ProgressCallback,
    SyncStateStore,
    no_progress,
)
from refinebot.config import LoadedConfig
from refinebot.models import Finding, Issue
from refinebot.readiness import ReadinessSummary, summarize
from refinebot.rule_fork import ForkedBacklogRules, can_fork
from refinebot.sources import connector_for
from refinebot.suppressions import Decision, Suppression, Verdict, decide, suppressed_pairs
from rules.base import BacklogRule, IssueRule, Rule, RuleCache, RuleContext, RuleOptions
from rules.registry import RuleRegistry, default_registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """A rule that raised: which rule, on which issue (None for a backlog rule), and the error."""

    rule: str
    issue: str | None
    error: str
    count: int = 1  # issues it failed on (an issue rule keeps running on the others)

    def describe(self) -> str:
        """One line for a person: ``rule missing-x crashed on PAY-7 (and 3 more): ValueError: ...``."""
        where = f" on {self.issue}" if self.issue else ""
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return f"rule {self.rule} crashed{where}{more}: {self.error}; its other findings are kept"


@dataclass(frozen=True, slots=True)
class ProjectResult:
    """What one project's run produced, or why it failed."""

    project: str
    issues: Sequence[Issue] = ()
    findings: Sequence[Finding] = ()
    summary: ReadinessSummary | None = None
    error: str | None = None
    skipped: Sequence[str] = field(default_factory=tuple)
    rule_failures: Sequence[RuleFailure] = ()
    # decisions[i] is decide(all_findings[i], ...); ``findings`` keeps only the shown ones.
    all_findings: Sequence[Finding] = ()
    decisions: Sequence[Decision] = ()
    fetch: FetchResult | None = None

    @property
    def ok(self) -> bool:
        """True when the project ran to the end."""
        return self.error is None

    @property
    def hidden(self) -> int:
        """How many findings suppressions hid."""
        return sum(1 for decision in self.decisions if not decision.shown)


@dataclass(frozen=True, slots=True)
class ProjectInputs:
    """What a run of one project is given besides the config: its state, what people decided, and hooks.

    ``suppressions`` are every not-lifted suppression of the project (``decide`` wants expired snoozes
    too); ``prepare`` turns the fetched issues into the ones the rules see (the cycle uses it to take the
    bot's own comment bumps out of ``updated``).
    """

    state: SyncStateStore | None = None
    suppressions: Sequence[Suppression] = ()
    cache: RuleCache | None = None
    prepare: Callable[[Sequence[Issue]], Sequence[Issue]] | None = None


def build_rules(registry: RuleRegistry, options: Mapping[str, RuleOptions]) -> list[Rule]:
    """Instances of every enabled rule with its resolved options (defaults where none are configured)."""
    rules: list[Rule] = []
    for rule_class in registry:
        rule_options = options.get(rule_class.name) or rule_class.Options()
        if rule_options.enabled:
            rules.append(rule_class(rule_options))
    return rules


@contextmanager
def settled_objects() -> Iterator[Callable[[], None]]:
    """Objects alive now, and whenever the yielded ``settle`` is called, are left out of the cyclic
    garbage collector's passes until the block ends (``gc.freeze``).

    Rules allocate millions of objects (the duplicate index, half a million findings on a 200k
    backlog), and each burst set off a full collection that walked every live object, the backlog
    included, and found nothing to free: 7 s of a 200k scan. Reference counting frees as usual;
    cycles among the frozen objects wait until the block ends. Nothing is frozen when a caller
    already froze objects (their ``gc.unfreeze`` is theirs to call).
    """
    if gc.get_freeze_count():
        yield lambda: None
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


# What the caller gives this process to do while a forked child runs the backlog rules
# (``while_waiting``): None, nothing.
_WHILE_WAITING: ContextVar[Callable[[Sequence[Finding]], None] | None] = ContextVar(
    "refinebot_while_waiting", default=None
)


@contextmanager
def while_waiting(work: Callable[[Sequence[Finding]], None]) -> Iterator[None]:
    """Within the block, a project whose backlog rules run in a forked child (``rule_fork``) hands
    its issue rules' findings to ``work`` once they are in and before it waits for the child: on a
    second 200k scan this process then had 3-4 s with nothing to do. The same objects end up in the
    project's findings (with the backlog rules', sorted), unless a suppression hides them."""
    token = _WHILE_WAITING.set(work)
    try:
        yield
    finally:
        _WHILE_WAITING.reset(token)


# Issues between two ``settle`` calls of the issue rules: a few thousand findings each time.
_SETTLE_EVERY = 4096


def evaluate(
    issues: Sequence[Issue],
    rules: Iterable[Rule],
    ctx: RuleContext,
    *,
    failures: list[RuleFailure] | None = None,
) -> list[Finding]:
    """Run every rule; issue-level rules see open items they apply to, backlog rules see everything.

    A rule that raises (a plugin, say) is logged with its name and the issue key, its findings on
    that issue (or, for a backlog rule, that run) are dropped, and every other finding is kept;
    the failures are appended to ``failures`` when given.
    """
    with settled_objects() as settle:
        return _evaluate(issues, rules, ctx, failures, settle)


def _evaluate(
    issues: Sequence[Issue],
    rules: Iterable[Rule],
    ctx: RuleContext,
    failures: list[RuleFailure] | None,
    settle: Callable[[], None],
) -> list[Finding]:
    issue_rules = [r for r in rules if isinstance(r, IssueRule)]
    backlog_rules = [r for r in rules if isinstance(r, BacklogRule)]
    # On a big backlog the backlog rules run in a forked child meanwhile (rule_fork.py: a second 200k
    # scan's duplicate rule and issue rules took 5 s and 3 s one after the other on two cores).
    # Otherwise they run first: the duplicate rule's index is the run's memory peak, and on a big
    # backlog the issue rules' findings (half a million on 200k items) held meanwhile were a few
    # hundred MiB more of it. Their findings still go after the issue rules' in the list, and
    # issue rules' failures before theirs, so the sorted result is the same either way.
    forked = (
        ForkedBacklogRules(issues, backlog_rules, ctx, run_backlog_rules)
        if issue_rules and can_fork(issues, backlog_rules, ctx)
        else None
    )
    if forked is None:
        backlog_findings, backlog_failures = run_backlog_rules(issues, backlog_rules, ctx)
        settle()  # the backlog rules' findings too: the issue rules add half a million more
    try:
        findings, crashed = _run_issue_rules(issues, issue_rules, ctx, settle)
        if forked is not None and (work := _WHILE_WAITING.get()) is not None:
            work(findings)
    except BaseException:
        if forked is not None:
            forked.stop()  # nobody will read what it sends
        raise
    if forked is not None:
        backlog_findings, backlog_failures = forked.result()
    findings.extend(backlog_findings)
    del backlog_findings
    crashed.update((failure.rule, failure) for failure in backlog_failures)
    for failure in crashed.values():
        if failure.count > 1:
            logger.error("project %s: %s", ctx.project, failure.describe())
    if failures is not None:
        failures.extend(crashed.values())
    positions = dict(zip(map(attrgetter("key"), issues), range(len(issues)), strict=True))
    position_of, unknown = positions.get, len(positions)
    findings.sort(key=lambda f: (position_of(f.issue, unknown), f.code))
    return findings


def _run_issue_rules(
    issues: Sequence[Issue], issue_rules: Sequence[IssueRule], ctx: RuleContext, settle: Callable[[], None]
) -> tuple[list[Finding], dict[str, RuleFailure]]:
    """Every issue rule on every issue it applies to; a rule's failures are counted, its other
    findings kept."""
    findings: list[Finding] = []
    crashed: dict[str, RuleFailure] = {}
    started, cpu = time.perf_counter(), time.process_time()
    # Each rule's two methods looked up once, not for each of the backlog's items.
    checks = [(rule, rule.applies_to, rule.check) for rule in issue_rules]
    for position, issue in enumerate(issues, 1):
        for rule, applies_to, check in checks:
            try:
                if applies_to(issue):
                    found = check(issue, ctx)
                    # A list or tuple is complete once returned; a generator is drained first, so
                    # that a crash half-way drops all of the rule's findings on this issue.
                    findings.extend(found if type(found) is list or type(found) is tuple else list(found))
            except Exception as exc:
                first = crashed.get(rule.name)
                if first is None:
                    logger.exception("project %s: rule %s crashed on %s", ctx.project, rule.name, issue.key)
                    crashed[rule.name] = RuleFailure(rule.name, issue.key, _error_text(exc))
                else:
                    crashed[rule.name] = replace(first, count=first.count + 1)
        if not position % _SETTLE_EVERY:
            settle()  # the findings so far stay: full collections would walk them again and again
    logger.debug(
        "phase issue-rules: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    return findings, crashed


def run_backlog_rules(
    issues: Sequence[Issue], rules: Sequence[BacklogRule], ctx: RuleContext
) -> tuple[list[Finding], list[RuleFailure]]:
    """Every backlog rule's findings, and a failure for each rule that raised (its findings dropped)."""
    findings: list[Finding] = []
    failures: list[RuleFailure] = []
    for rule in rules:
        try:
            findings.extend(list(rule.check(issues, ctx)))
        except Exception as exc:
            logger.exception("project %s: rule %s crashed on the backlog", ctx.project, rule.name)
            failures.append(RuleFailure(rule.name, None, _error_text(exc)))
    return findings, failures


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def run_project(
    loaded: LoadedConfig,
    project: str,
    *,
    registry: RuleRegistry | None = None,
    now: datetime | None = None,
    full: bool = False,
    state: SyncStateStore | None = None,
    progress: ProgressCallback = no_progress,
    inputs: ProjectInputs | None = None,
    connector: Connector | None = None,
) -> ProjectResult:
    """Fetch one project's backlog and evaluate its rules; failures become the result's ``error``."""
    inputs = inputs or ProjectInputs(state=state)
    settings = loaded.config.projects[project]
    try:
        connector = connector or connector_for(
            loaded, settings.source, state=inputs.state or state, progress=progress
        )
        fetched = connector.fetch(project, settings.query, full=full)
    except ConnectorError as exc:
        # The result carries the error and the caller reports it once (the CLI prints it, serve logs it).
        logger.info("project %s failed: %s", project, exc)
        return ProjectResult(project=project, error=str(exc))
    return evaluate_project(loaded, project, fetched, inputs, registry=registry, now=now)


def evaluate_project(
    loaded: LoadedConfig,
    project: str,
    fetched: FetchResult,
    inputs: ProjectInputs,
    *,
    registry: RuleRegistry | None = None,
    now: datetime | None = None,
) -> ProjectResult:
    """Run the project's rules on a fetched backlog and ``decide`` every finding against its suppressions."""
    registry = registry or default_registry()
    settings = loaded.config.projects[project]
    now = now or datetime.now(UTC)
    for skipped in fetched.skipped:
        logger.info("project %s: skipped %s: %s", project, skipped.key, skipped.reason)  # the CLI prints them
    issues = inputs.prepare(fetched.issues) if inputs.prepare else fetched.issues
    rules = build_rules(registry, loaded.rule_options.get(project, {}))
    failures: list[RuleFailure] = []
    ctx = RuleContext(
        project=project,
        now=now,
        suppressed_pairs=suppressed_pairs(inputs.suppressions, now),
        cache=inputs.cache,
    )
    # The decisions and the summary too: once the block ends, the collector's first full pass walks
    # every object left (the backlog, the findings), and it came during ``summarize`` (0.5 s at 200k).
    with settled_objects() as settle:
        found = _evaluate(issues, rules, ctx, failures, settle)
        if inputs.suppressions:
            decisions = [decide(finding, inputs.suppressions, now) for finding in found]
            shown = [f for f, d in zip(found, decisions, strict=True) if d.shown]
        else:
            # Nothing suppressed: every finding is shown, and one (frozen) decision says so for all
            # of them, not one object per finding (half a million on a 200k-item backlog).
            decisions = [Decision(Verdict.SHOWN)] * len(found)
            shown = list(found)
        started, cpu = time.perf_counter(), time.process_time()
        summary = summarize(issues, shown, top_n=settings.ready_top_n)
        logger.debug(
            "phase summarize: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
        )
    return ProjectResult(
        project=project,
        issues=issues,
        findings=shown,
        summary=summary,
        skipped=tuple(f"{s.key}: {s.reason}" for s in fetched.skipped),
        rule_failures=tuple(failures),
        all_findings=tuple(found),
        decisions=tuple(decisions),
        fetch=fetched,
    )


def run(
    loaded: LoadedConfig,
    projects: Sequence[str] | None = None,
    *,
    registry: RuleRegistry | None = None,
    now: datetime | None = None,
    full: bool = False,
    state: SyncStateStore | None = None,
    progress: ProgressCallback = no_progress,
    inputs_for: Callable[[str], ProjectInputs] | None = None,
) -> list[ProjectResult]:
    """Run every selected project (all configured ones by default); one failure never stops the rest."""
    selected = list(projects) if projects else list(loaded.config.projects)
    results = []
    for project in selected:
        try:
            results.append(
                run_project(
                    loaded,
                    project,
                    registry=registry,
                    now=now,
                    full=full,
                    state=state,
                    progress=progress,
                    inputs=inputs_for(project) if inputs_for else None,
                )
            )
        except Exception as exc:  # one project's bug must not take the others down
            logger.exception("project %s failed", project)
            results.append(ProjectResult(project=project, error=f"{type(exc).__name__}: {exc}"))
    return results
