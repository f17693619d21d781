"""Run refinebot over configured projects: fetch each backlog, evaluate the rules, collect findings.

One failing project is reported in its result and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import ConnectorError
from refinebot.config import LoadedConfig
from refinebot.models import Finding, Issue
from refinebot.readiness import ReadinessSummary, summarize
from refinebot.sources import connector_for
from rules.base import BacklogRule, IssueRule, Rule, RuleContext, RuleOptions
from rules.registry import RuleRegistry, default_registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProjectResult:
    """What one project's run produced, or why it failed."""

    project: str
    issues: Sequence[Issue] = ()
    findings: Sequence[Finding] = ()
    summary: ReadinessSummary | None = None
    error: str | None = None
    skipped: Sequence[str] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when the project ran to the end."""
        return self.error is None


def build_rules(registry: RuleRegistry, options: Mapping[str, RuleOptions]) -> list[Rule]:
    """Instances of every enabled rule with its resolved options (defaults where none are configured)."""
    rules: list[Rule] = []
    for rule_class in registry:
        rule_options = options.get(rule_class.name) or rule_class.Options()
        if rule_options.enabled:
            rules.append(rule_class(rule_options))
    return rules


def evaluate(issues: Sequence[Issue], rules: Iterable[Rule], ctx: RuleContext) -> list[Finding]:
    """Run every rule; issue-level rules see open items they apply to, backlog rules see everything."""
    findings: list[Finding] = []
    issue_rules = [r for r in rules if isinstance(r, IssueRule)]
    backlog_rules = [r for r in rules if isinstance(r, BacklogRule)]
    for issue in issues:
        for rule in issue_rules:
            if rule.applies_to(issue):
                findings.extend(rule.check(issue, ctx))
    for backlog_rule in backlog_rules:
        findings.extend(backlog_rule.check(issues, ctx))
    order = {issue.key: index for index, issue in enumerate(issues)}
    findings.sort(key=lambda f: (order.get(f.issue, len(order)), f.code))
    return findings


def run_project(
    loaded: LoadedConfig,
    project: str,
    *,
    registry: RuleRegistry | None = None,
    now: datetime | None = None,
    full: bool = False,
) -> ProjectResult:
    """Fetch one project's backlog and evaluate its rules; failures become the result's ``error``."""
    registry = registry or default_registry()
    settings = loaded.config.projects[project]
    now = now or datetime.now(UTC)
    try:
        connector = connector_for(loaded, settings.source)
        fetched = connector.fetch(project, settings.query, full=full)
    except ConnectorError as exc:
        logger.error("project %s: %s", project, exc)
        return ProjectResult(project=project, error=str(exc))
    for skipped in fetched.skipped:
        logger.warning("project %s: skipped %s: %s", project, skipped.key, skipped.reason)
    rules = build_rules(registry, loaded.rule_options.get(project, {}))
    findings = evaluate(fetched.issues, rules, RuleContext(project=project, now=now))
    summary = summarize(fetched.issues, findings, top_n=settings.ready_top_n)
    return ProjectResult(
        project=project,
        issues=fetched.issues,
        findings=findings,
        summary=summary,
        skipped=tuple(f"{s.key}: {s.reason}" for s in fetched.skipped),
    )


def run(
    loaded: LoadedConfig,
    projects: Sequence[str] | None = None,
    *,
    registry: RuleRegistry | None = None,
    now: datetime | None = None,
    full: bool = False,
) -> list[ProjectResult]:
    """Run every selected project (all configured ones by default); one failure never stops the rest."""
    selected = list(projects) if projects else list(loaded.config.projects)
    results = []
    for project in selected:
        try:
            results.append(run_project(loaded, project, registry=registry, now=now, full=full))
        except Exception as exc:  # one project's bug must not take the others down
            logger.exception("project %s failed", project)
            results.append(ProjectResult(project=project, error=f"{type(exc).__name__}: {exc}"))
    return results
