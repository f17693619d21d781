"""Run every data-driven rule case in ``tests/rules/cases/*.yml`` (format: ``rules/testing.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.registry import build_registry
from rules.testing import RuleCase, check_case, load_cases

CASES_DIR = Path(__file__).parent / "cases"
REGISTRY = build_registry(plugins=False)


@pytest.mark.parametrize("case", load_cases(CASES_DIR), ids=str)
def test_rule_case(case: RuleCase) -> None:
    rule_class = REGISTRY.get(case.rule)
    assert rule_class is not None, f"{case.source.name}: unknown rule {case.rule!r}"
    check_case(case, rule_class)


def test_every_builtin_rule_has_a_case_file() -> None:
    files = {path.stem for path in CASES_DIR.glob("*.yml")}
    missing = [rule.name for rule in REGISTRY if rule.name not in files]
    assert not missing, f"rules without a case file in {CASES_DIR}: {missing}"
