"""The public YAML case loader (rules.testing): reading case files and reporting mismatches."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules.hygiene import StaleItem
from rules.size import OversizedStory
from rules.testing import DEFAULT_NOW, CaseFileError, CaseMismatchError, check_case, load_cases

CASE_FILE = """
rule: oversized-story
cases:
  - name: big_story
    options: {max_points: 5}
    issues:
      - {key: T-1, title: Big, story_points: 8}
      - {key: T-2, title: Small, story_points: 3}
      - {key: T-3, title: Done, story_points: 40, status_category: done}
    expect:
      - issue: T-1
        details: {points: 8.0, max_points: 5.0}
        message_contains: OVER THE LIMIT OF 5
        severity: warning
        subject: ""
  - name: all_fine
    now: "2026-01-02T03:04:05"
    project: OPS
    issues: [{key: T-4, title: Small, story_points: 1}]
"""


def _write(tmp_path: Path, text: str, name: str = "oversized-story.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_cases_load_with_defaults_and_pass(tmp_path: Path) -> None:
    cases = load_cases(_write(tmp_path, CASE_FILE).parent)
    assert [str(case) for case in cases] == ["oversized-story::big_story", "oversized-story::all_fine"]
    assert cases[0].now == DEFAULT_NOW and cases[0].project == "TEST"
    assert cases[1].now.isoformat() == "2026-01-02T03:04:05+00:00" and cases[1].project == "OPS"
    findings = check_case(cases[0], OversizedStory)
    assert [(f.project, f.issue, f.rule) for f in findings] == [("TEST", "T-1", "oversized-story")]
    assert check_case(cases[1], OversizedStory) == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_points: 5}", "max_points: 10}", r"expected findings on \['T-1'\], found \[\]"),
        ("severity: warning", "severity: error", r"no finding matches .*'severity': 'error'"),
        ("OVER THE LIMIT OF 5", "under the limit", r"no finding matches"),
        ('subject: ""', "subject: T-1|T-2", r"no finding matches"),
    ],
)
def test_a_mismatch_names_the_case_and_what_was_found(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    case = load_cases(_write(tmp_path, CASE_FILE.replace(old, new)))[0]
    with pytest.raises(CaseMismatchError, match=r"oversized-story::big_story: " + message):
        check_case(case, OversizedStory)


def test_a_case_checked_against_another_rule_is_refused(tmp_path: Path) -> None:
    case = load_cases(_write(tmp_path, CASE_FILE))[0]
    with pytest.raises(CaseMismatchError, match="the case is for 'oversized-story', not 'stale-item'"):
        check_case(case, StaleItem)


@pytest.mark.parametrize(
    "text",
    [
        "rule: stale-item\n",
        "cases: []\n",
        "rule: stale-item\ncases:\n  - {name: a, issues: []}\n  - {name: a, issues: []}\n",
    ],
)
def test_malformed_case_files_are_refused_with_their_path(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CaseFileError, match=str(path)):
        load_cases(path)
