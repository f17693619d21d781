"""Run every data-driven rule case in ``tests/rules/cases/*.yml``: input issues + options -> exact findings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from refinebot.markup import to_text
from refinebot.models import Issue, IssueType, Link, LinkKind, SourceKind, StatusCategory
from refinebot.pipeline import evaluate
from rules.base import RuleContext
from rules.registry import build_registry

CASES_DIR = Path(__file__).parent / "cases"
DEFAULT_NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
REGISTRY = build_registry(plugins=False)


def _load_cases() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        rule = document["rule"]
        names = [case["name"] for case in document["cases"]]
        assert len(names) == len(set(names)), f"{path.name}: case names must be unique"
        for case in document["cases"]:
            params.append(pytest.param(rule, case, id=f"{rule}::{case['name']}"))
    return params


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


def build_issue(raw: Mapping[str, Any], project: str) -> Issue:
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


@pytest.mark.parametrize(("rule_name", "case"), _load_cases())
def test_rule_case(rule_name: str, case: Mapping[str, Any]) -> None:
    rule_class = REGISTRY.get(rule_name)
    assert rule_class is not None, f"unknown rule {rule_name!r}"
    options = rule_class.Options.model_validate(case.get("options") or {})
    project = case.get("project", "TEST")
    issues = [build_issue(raw, project) for raw in case["issues"]]
    ctx = RuleContext(project=project, now=_datetime(case.get("now")) or DEFAULT_NOW)

    findings = evaluate(issues, [rule_class(options)], ctx)

    expected = case.get("expect") or []
    got_keys = sorted(f.issue for f in findings)
    assert got_keys == sorted(str(e["issue"]) for e in expected), [f.to_json() for f in findings]
    remaining = list(findings)
    for want in expected:
        match = next(
            (
                f
                for f in remaining
                if f.issue == str(want["issue"])
                and all(f.to_json()["details"].get(k) == v for k, v in (want.get("details") or {}).items())
                and str(want.get("message_contains", "")).lower() in f.message.lower()
                and (want.get("severity") is None or f.severity.value == want["severity"])
            ),
            None,
        )
        assert match is not None, f"no finding matches {want}: {[f.to_json() for f in findings]}"
        remaining.remove(match)
        assert match.rule == rule_name
        assert match.code == rule_class.code


def test_every_builtin_rule_has_a_case_file() -> None:
    files = {path.stem for path in CASES_DIR.glob("*.yml")}
    missing = [rule.name for rule in REGISTRY if rule.name not in files]
    assert not missing, f"rules without a case file in {CASES_DIR}: {missing}"
