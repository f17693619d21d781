"""Pin a rule with YAML cases: input issues and options in, the exact findings expected out.

Every built-in rule has one case file in ``tests/rules/cases/``; a plugin's rules can be pinned the
same way. A case file names one rule and lists its cases::

    rule: wip-label
    cases:
      - name: labelled_item_is_flagged       # unique within the file; the test id is rule::name
        options: {severity: error}           # optional: the rule's options, validated strictly
        now: "2026-11-20T09:00:00+00:00"     # optional: the run's time (default DEFAULT_NOW)
        project: TEST                        # optional (default TEST)
        issues:
          - key: T-1                         # key and title are required; any other Issue field
            title: Spike the payment API     # may be given (type, status_category, created,
            labels: [wip]                    # story_points, parent, links...)
            description: "h3. Notes"         # converted from description_format (default text)
            description_format: wiki
          - key: T-2
            title: Done properly
            description: {repeat: "word ", times: 40}   # long text without storing it
        expect:                              # exactly these findings, in any order
          - issue: T-1
            message_contains: labelled wip   # optional, case-insensitive
            severity: error                  # optional
            details: {}                      # optional: these keys must equal the finding's JSON details
            subject: ""                      # optional: the finding's subject (a pair for duplicates)

Links are mappings of ``kind``, ``target`` and optionally ``target_status_category``. The plugin's
test module is then one parametrised test::

    from pathlib import Path

    import pytest

    from my_plugin.rules import WipLabel
    from rules.testing import RuleCase, check_case, load_cases


    @pytest.mark.parametrize("case", load_cases(Path(__file__).parent / "cases"), ids=str)
    def test_rule_case(case: RuleCase) -> None:
        check_case(case, WipLabel)

``check_case`` runs the rule as the pipeline does (an issue-level rule on each open item it applies
to, a backlog rule once on all items) and raises ``CaseMismatchError`` (an ``AssertionError``, so pytest
shows it as a failure) naming the expectation that no finding met and listing what was found.
Reading the files needs PyYAML (``pip install pyyaml``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from refinebot.markup import to_text
from refinebot.models import Finding, Issue, IssueType, Link, LinkKind, SourceKind, StatusCategory
from rules.base import BacklogRule, IssueRule, Rule, RuleContext

DEFAULT_NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DEFAULT_PROJECT = "TEST"


class CaseFileError(ValueError):
    """A case file that cannot be read as cases (bad YAML shape, repeated case names)."""


class CaseMismatchError(AssertionError):
    """A rule's findings differ from what its case expects."""


@dataclass(frozen=True, slots=True)
class RuleCase:
    """One case of a case file: what goes into the rule and what must come out."""

    rule: str
    name: str
    issues: tuple[Mapping[str, Any], ...]
    expect: tuple[Mapping[str, Any], ...]
    options: Mapping[str, Any]
    project: str
    now: datetime
    source: Path

    def __str__(self) -> str:
        """``rule::name``, the case's test id."""
        return f"{self.rule}::{self.name}"


def load_cases(path: Path) -> list[RuleCase]:
    """The cases of one ``.yml`` file, or of every ``*.yml`` in a directory (by file name)."""
    try:
        import yaml
    except ImportError as exc:  # a dev dependency, not needed by refinebot itself
        raise ImportError("rules.testing reads YAML: pip install pyyaml") from exc
    files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
    cases: list[RuleCase] = []
    for file in files:
        cases.extend(_cases_of(file, yaml.safe_load(file.read_text(encoding="utf-8"))))
    return cases


def _cases_of(file: Path, document: Any) -> list[RuleCase]:
    if not isinstance(document, Mapping) or not isinstance(document.get("cases"), list):
        raise CaseFileError(f"{file}: expected a mapping with 'rule' and a list of 'cases'")
    rule = str(document.get("rule", ""))
    names = [str(case.get("name", "")) for case in document["cases"]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if not rule or "" in names or repeated:
        raise CaseFileError(f"{file}: needs a rule name and unique case names (repeated: {repeated})")
    return [
        RuleCase(
            rule=rule,
            name=str(case["name"]),
            issues=tuple(case.get("issues") or ()),
            expect=tuple(case.get("expect") or ()),
            options=case.get("options") or {},
            project=str(case.get("project", DEFAULT_PROJECT)),
            now=_datetime(case.get("now")) or DEFAULT_NOW,
            source=file,
        )
        for case in document["cases"]
    ]


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _expand(value: Any) -> Any:
    """``{repeat: "text", times: N, suffix: "..."}`` builds long inputs without storing them in the YAML."""
    if isinstance(value, Mapping) and {"repeat", "times"} <= set(value) <= {"repeat", "times", "suffix"}:
        return str(value["repeat"]) * int(value["times"]) + str(value.get("suffix", ""))
    if isinstance(value, Mapping) and set(value) == {"json"}:
        return json.loads(value["json"])
    return value


def build_issue(raw: Mapping[str, Any], project: str = DEFAULT_PROJECT) -> Issue:
    """An ``Issue`` from a case's YAML mapping."""
    data = {k: _expand(v) for k, v in raw.items()}
    fmt = data.pop("description_format", "text")
    ac_fmt = data.pop("acceptance_criteria_format", "text")
    description = to_text(data.pop("description", ""), fmt)
    ac = data.pop("acceptance_criteria", None)
    links = tuple(
        Link(
            LinkKind(link["kind"]),
            str(link["target"]),
            StatusCategory(link["target_status_category"]) if link.get("target_status_category") else None,
        )
        for link in data.pop("links", [])
    )
    return Issue(
        key=str(data.pop("key")),
        project=str(data.pop("project", project)),
        source_kind=SourceKind(data.pop("source_kind", "file")),
        title=str(data.pop("title")),
        type=IssueType(data.pop("type", "story")),
        raw_type=str(data.pop("raw_type", "Story")),
        description=description,
        acceptance_criteria=to_text(ac, ac_fmt) if ac is not None else None,
        status_category=StatusCategory(data.pop("status_category", "todo")),
        created=_datetime(data.pop("created", None)),
        updated=_datetime(data.pop("updated", None)),
        labels=tuple(data.pop("labels", ())),
        links=links,
        **data,
    )


def run_case(case: RuleCase, rule_class: type[Rule]) -> list[Finding]:
    """The findings of ``rule_class`` with the case's options on the case's issues, in issue order."""
    rule = rule_class(rule_class.Options.model_validate(case.options))
    issues = [build_issue(raw, case.project) for raw in case.issues]
    ctx = RuleContext(project=case.project, now=case.now)
    # As refinebot.pipeline.evaluate runs rules (rules may not import the pipeline).
    findings: list[Finding] = []
    if isinstance(rule, IssueRule):
        for issue in issues:
            if rule.applies_to(issue):
                findings.extend(rule.check(issue, ctx))
    elif isinstance(rule, BacklogRule):
        findings.extend(rule.check(issues, ctx))
    order = {issue.key: index for index, issue in enumerate(issues)}
    findings.sort(key=lambda f: order.get(f.issue, len(order)))
    return findings


def _matches(finding: Finding, want: Mapping[str, Any]) -> bool:
    details = finding.to_json()["details"]
    return (
        finding.issue == str(want["issue"])
        and all(details.get(k) == v for k, v in (want.get("details") or {}).items())
        and str(want.get("message_contains", "")).lower() in finding.message.lower()
        and (want.get("severity") is None or finding.severity.value == want["severity"])
        and (want.get("subject") is None or finding.subject == str(want["subject"]))
    )


def check_case(case: RuleCase, rule_class: type[Rule]) -> list[Finding]:
    """Run the case and return its findings; ``CaseMismatchError`` unless they are exactly the expected ones."""
    if rule_class.name != case.rule:
        raise CaseMismatchError(f"{case}: the case is for {case.rule!r}, not {rule_class.name!r}")
    findings = run_case(case, rule_class)
    found = [f.to_json() for f in findings]
    expected_keys = sorted(str(want["issue"]) for want in case.expect)
    if sorted(f.issue for f in findings) != expected_keys:
        raise CaseMismatchError(f"{case}: expected findings on {expected_keys}, found {found}")
    remaining = list(findings)
    for want in case.expect:
        match = next((f for f in remaining if _matches(f, want)), None)
        if match is None:
            raise CaseMismatchError(f"{case}: no finding matches {dict(want)}: {found}")
        remaining.remove(match)
        if (match.rule, match.code) != (rule_class.name, rule_class.code):
            raise CaseMismatchError(f"{case}: finding names rule {match.rule} {match.code}")
    return findings


__all__ = [
    "DEFAULT_NOW",
    "CaseFileError",
    "CaseMismatchError",
    "RuleCase",
    "build_issue",
    "check_case",
    "load_cases",
    "run_case",
]
