"""The agenda's choice, order, time budget, reasons and readiness, as tables of small backlogs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from refinebot.agenda import (
    REMOVED_REASON,
    AgendaReadiness,
    AgendaSettings,
    build_agenda,
    readiness_words,
    reason_and_preparation,
    render_text,
)
from refinebot.cycle import cycle_ends, cycle_of
from refinebot.models import Finding, Issue, IssueType, Link, LinkKind, Severity, SourceKind, StatusCategory
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def issue(key: str, rank: str | None = None, **fields: Any) -> Issue:
    """An open story of project P; ``rank`` defaults to the key's number so keys sort as ranked."""
    number = key.rpartition("-")[2]
    return Issue(
        key=key,
        project="P",
        source_kind=SourceKind.FILE,
        title=fields.pop("title", f"Story {key}"),
        rank=rank if rank is not None else f"{int(number):04d}",
        url=f"https://t.example/browse/{key}",
        **fields,
    )


RULE_SEVERITY = {
    "missing-acceptance-criteria": Severity.ERROR,
    "missing-description": Severity.ERROR,
    "blocked-dependency": Severity.ERROR,
    "missing-estimate": Severity.WARNING,
    "oversized-story": Severity.WARNING,
    "duplicate-candidate": Severity.WARNING,
    "stale-item": Severity.INFO,
}


def finding(key: str, rule: str, **details: Any) -> Finding:
    subject = "|".join(sorted((key, str(details["duplicate_of"])))) if rule == "duplicate-candidate" else ""
    return Finding("P", key, rule, "RB000", RULE_SEVERITY[rule], f"{rule} message: advice", details, subject)


def snooze(key: str, *, reason: str = "", days: int = 7, rule: str | None = None) -> Suppression:
    return Suppression(
        SuppressionKind.SNOOZE,
        "P",
        key,
        NOW - timedelta(days=1),
        "maya",
        SuppressionSource.SLACK,
        rule=rule,
        until=NOW + timedelta(days=days),
        reason=reason,
    )


def agenda_keys(
    issues: Sequence[Issue],
    findings: Sequence[Finding],
    suppressions: Sequence[Suppression] = (),
    **settings: int,
) -> list[str]:
    agenda = build_agenda("P", "2026-W49", issues, findings, suppressions, NOW, AgendaSettings(**settings))
    return [item.issue for item in agenda.items]


AC = "missing-acceptance-criteria"
EST = "missing-estimate"
STALE = "stale-item"


@pytest.mark.parametrize(
    ("case", "issues", "findings", "settings", "expected"),
    [
        (
            "rank order, ready items left out",
            [issue("P-1"), issue("P-2"), issue("P-3")],
            [finding("P-3", AC), finding("P-1", EST)],
            {},
            ["P-1", "P-3"],
        ),
        (
            "rank beats severity",
            [issue("P-1"), issue("P-2")],
            [finding("P-1", EST), finding("P-2", AC)],
            {},
            ["P-1", "P-2"],
        ),
        (
            "severity decides between unranked items",
            [issue("P-1", rank=""), issue("P-2", rank="")],
            [finding("P-1", EST), finding("P-2", AC)],
            {},
            ["P-2", "P-1"],
        ),
        (
            "an info finding alone leaves the item ready",
            [issue("P-1"), issue("P-2")],
            [finding("P-1", STALE), finding("P-2", AC)],
            {},
            ["P-2"],
        ),
        (
            "active sprint, done and epics are not refined",
            [
                issue("P-1", in_active_sprint=True),
                issue("P-2", status_category=StatusCategory.DONE),
                issue("P-3", type=IssueType.EPIC),
                issue("P-4"),
            ],
            [finding(k, AC) for k in ("P-1", "P-2", "P-3", "P-4")],
            {},
            ["P-4"],
        ),
        (
            "agenda_size caps the items",
            [issue(f"P-{n}") for n in range(1, 6)],
            [finding(f"P-{n}", AC) for n in range(1, 6)],
            {"size": 3},
            ["P-1", "P-2", "P-3"],
        ),
        (
            "the session's minutes cap the items",
            [issue(f"P-{n}") for n in range(1, 6)],
            [finding(f"P-{n}", AC) for n in range(1, 6)],
            {"session_minutes": 12, "item_minutes": 5},
            ["P-1", "P-2"],
        ),
        (
            "a long item that does not fit is passed over for a short one",
            [issue("P-1"), issue("P-2", story_points=21), issue("P-3")],
            [finding("P-1", AC), finding("P-2", "oversized-story", points=21), finding("P-3", AC)],
            {"session_minutes": 12, "item_minutes": 5, "large_item_minutes": 10},
            ["P-1", "P-3"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_choice(
    case: str, issues: list[Issue], findings: list[Finding], settings: dict[str, int], expected: list[str]
) -> None:
    assert agenda_keys(issues, findings, (), **settings) == expected, case


def test_minutes_are_larger_for_oversized_and_possible_duplicates() -> None:
    issues = [issue("P-1"), issue("P-2"), issue("P-3")]
    findings = [
        finding("P-1", AC),
        finding("P-2", "oversized-story", points=13),
        finding("P-3", "duplicate-candidate", duplicate_of="P-1"),
    ]
    agenda = build_agenda(
        "P", "c", issues, findings, [], NOW, AgendaSettings(item_minutes=4, large_item_minutes=9)
    )
    assert [item.minutes for item in agenda.items] == [4, 9, 9]
    assert agenda.minutes == 22
    assert agenda.items[2].duplicate_of == "P-1"
    assert agenda.items[0].duplicate_of is None


def test_more_counts_the_not_ready_items_left_off() -> None:
    issues = [issue(f"P-{n}") for n in range(1, 11)]
    findings = [finding(f"P-{n}", AC) for n in range(1, 11)]
    agenda = build_agenda("P", "c", issues, findings, [], NOW, AgendaSettings(size=4))
    assert agenda.more == 6
    assert agenda.to_json()["more"] == 6


def test_snoozed_and_removed_items_are_set_aside_not_discussed() -> None:
    issues = [issue("P-1"), issue("P-2"), issue("P-3")]
    findings = [finding("P-1", AC), finding("P-2", AC), finding("P-3", AC)]
    suppressions = [snooze("P-1"), snooze("P-2", reason=REMOVED_REASON, days=5)]
    agenda = build_agenda("P", "c", issues, findings, suppressions, NOW)
    assert [item.issue for item in agenda.items] == ["P-3"]
    assert [(s.issue, s.removed) for s in agenda.set_aside] == [("P-1", False), ("P-2", True)]
    # A snooze defers: the item is still not ready.
    assert agenda.readiness.ready == 0


def test_an_ended_snooze_brings_the_item_back() -> None:
    ended = Suppression(
        SuppressionKind.SNOOZE, "P", "P-1", NOW - timedelta(days=9), "maya", SuppressionSource.CLI,
        until=NOW - timedelta(days=2),
    )  # fmt: skip
    assert agenda_keys([issue("P-1")], [finding("P-1", AC)], [ended]) == ["P-1"]


def test_a_snooze_of_one_rule_keeps_the_item_for_its_other_findings() -> None:
    issues = [issue("P-1")]
    findings = [finding("P-1", AC), finding("P-1", EST)]
    agenda = build_agenda("P", "c", issues, findings, [snooze("P-1", rule=AC)], NOW)
    assert [item.reasons for item in agenda.items] == [("no estimate",)]


def test_ignored_and_not_duplicate_findings_count_as_met() -> None:
    issues = [issue("P-1"), issue("P-2")]
    findings = [finding("P-1", AC), finding("P-2", "duplicate-candidate", duplicate_of="P-1")]
    suppressions = [
        Suppression(SuppressionKind.IGNORE, "P", "P-1", NOW, "maya", SuppressionSource.CLI, rule=AC),
        Suppression(
            SuppressionKind.NOT_DUPLICATE, "P", "P-1", NOW, "maya", SuppressionSource.SLACK, other_issue="P-2"
        ),
    ]
    agenda = build_agenda("P", "c", issues, findings, suppressions, NOW, AgendaSettings(top_n=2))
    assert agenda.items == ()
    assert agenda.set_aside == ()
    assert (agenda.readiness.ready, agenda.readiness.top_n) == (2, 2)


@pytest.mark.parametrize(
    ("found", "by_key", "expected"),
    [
        (finding("P-1", AC), {}, ("no acceptance criteria", "draft acceptance criteria")),
        (
            finding("P-1", "oversized-story", points=13.0),
            {},
            ("13 points: split it", "a proposal to split it"),
        ),
        (
            finding("P-1", "blocked-dependency", blocked_by=["P-7"]),
            {"P-7": issue("P-7", status="In Progress")},
            ("blocked by P-7 (In Progress)", "news on P-7"),
        ),
        (
            finding("P-1", "blocked-dependency", blocked_by=["X-9"]),
            {},
            ("blocked by X-9 (To Do)", "news on X-9"),
        ),
        (
            finding("P-1", "blocked-dependency", blocked_by=["P-2"], cycle=["P-1", "P-2", "P-3"]),
            {"P-2": issue("P-2", status="To Do")},
            ("blocked by P-2 (To Do) · dependency cycle with P-2, P-3", "news on P-2"),
        ),
        (
            finding("P-1", "blocked-dependency", blocked_by=[], flagged=True),
            {},
            ("flagged as blocked", "what unblocks it"),
        ),
        (
            finding("P-1", "duplicate-candidate", duplicate_of="P-2"),
            {},
            ("possible duplicate of P-2", "duplicate of P-2 or not"),
        ),
        (finding("P-1", STALE, days_since_update=140), {}, ("untouched for 140 days", "is it still wanted?")),
        (
            Finding("P", "P-1", "team-rule", "X1", Severity.ERROR, "Has no owner: assign one."),
            {},
            ("has no owner", "what the finding asks for"),
        ),
    ],
)
def test_reasons_in_a_few_words(found: Finding, by_key: dict[str, Issue], expected: tuple[str, str]) -> None:
    subject = issue(
        "P-1", links=(Link(LinkKind.BLOCKED_BY, "X-9", StatusCategory.TODO), Link(LinkKind.BLOCKED_BY, "P-7"))
    )
    assert reason_and_preparation(found, {"P-1": subject, **by_key}) == expected


def test_an_item_lists_its_reasons_worst_first_and_once() -> None:
    issues = [issue("P-1", story_points=13.0)]
    findings = [
        finding("P-1", "oversized-story", points=13.0),
        finding("P-1", STALE, days_since_update=100),
        finding("P-1", AC),
    ]
    (item,) = build_agenda("P", "c", issues, findings, [], NOW).items
    assert item.reasons == ("no acceptance criteria", "13 points: split it", "untouched for 100 days")
    assert item.prepare[0] == "draft acceptance criteria"


def test_azure_devops_ids_read_as_project_and_number() -> None:
    ado = Issue(key="1211", project="Fabrikam", source_kind=SourceKind.AZURE_DEVOPS, title="T", rank="1")
    (item,) = build_agenda(
        "Fabrikam", "c", [ado], [Finding("Fabrikam", "1211", AC, "X", Severity.ERROR, "m")], [], NOW
    ).items
    assert (item.issue, item.label) == ("1211", "Fabrikam#1211")


@pytest.mark.parametrize(
    ("ready", "top_n", "previous", "words"),
    [
        (5, 10, None, "5 of the top 10 ready (50%)"),
        (5, 10, 0.4, "5 of the top 10 ready (50%), up from 40% last cycle"),
        (3, 10, 0.5, "3 of the top 10 ready (30%), down from 50% last cycle"),
        (5, 10, 0.5, "5 of the top 10 ready (50%), same as last cycle"),
        (0, 0, None, "0 of the top 0 ready (0%)"),
    ],
)
def test_readiness_and_its_change(ready: int, top_n: int, previous: float | None, words: str) -> None:
    readiness = AgendaReadiness(ready, top_n, previous)
    assert readiness_words(readiness) == words


def test_readiness_counts_the_top_n_ranked_items() -> None:
    issues = [issue(f"P-{n}") for n in range(1, 7)]
    findings = [finding("P-1", AC), finding("P-5", AC)]
    agenda = build_agenda("P", "c", issues, findings, [], NOW, AgendaSettings(top_n=4), previous_share=0.5)
    assert agenda.readiness.to_json() == {"ready": 3, "top_n": 4, "share": 0.75, "previous_share": 0.5}


def test_other_findings_count_what_is_not_on_the_agenda_by_rule() -> None:
    issues = [issue(f"P-{n}") for n in range(1, 5)]
    findings = [finding("P-1", AC), finding("P-2", AC), finding("P-3", STALE), finding("P-4", EST)]
    agenda = build_agenda("P", "c", issues, findings, [], NOW, AgendaSettings(size=1))
    assert agenda.other_findings == (
        ("missing-acceptance-criteria", 1),
        ("missing-estimate", 1),
        ("stale-item", 1),
    )


def test_json_contract() -> None:
    issues = [issue("P-1", story_points=3.0, title="Pay & <go>")]
    agenda = build_agenda("P", "2026-W49", issues, [finding("P-1", AC)], [], NOW, AgendaSettings(top_n=2))
    assert agenda.to_json() == {
        "project": "P",
        "cycle": "2026-W49",
        "readiness": {"ready": 0, "top_n": 1, "share": 0.0, "previous_share": None},
        "items": [
            {
                "issue": "P-1",
                "title": "Pay & <go>",
                "url": "https://t.example/browse/P-1",
                "points": 3.0,
                "minutes": 5,
                "reasons": ["no acceptance criteria"],
            }
        ],
        "more": 0,
    }


def test_text_preview_says_the_estimate_once() -> None:
    issues = [issue("P-1", story_points=13.0), issue("P-2", story_points=3.0)]
    findings = [finding("P-1", "oversized-story", points=13.0), finding("P-2", AC)]
    text = render_text(build_agenda("P", "2026-W49", issues, findings, [], NOW))
    assert "   ~10 min · 13 points: split it" in text
    assert "   3 pts · ~5 min · no acceptance criteria" in text


@pytest.mark.parametrize(
    ("when", "zone", "cycle"),
    [
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "Europe/Berlin", "2026-W50"),  # Monday 00:30 in Berlin
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "UTC", "2026-W49"),
        (datetime(2027, 1, 1, 12, 0, tzinfo=UTC), "UTC", "2026-W53"),
    ],
)
def test_a_cycle_is_the_iso_week_in_the_projects_zone(when: datetime, zone: str, cycle: str) -> None:
    assert cycle_of(when, ZoneInfo(zone)) == cycle


def test_a_cycle_ends_at_the_next_monday_midnight_in_its_zone() -> None:
    zone = ZoneInfo("Europe/Berlin")
    assert cycle_ends("2026-W49", zone) == datetime(2026, 12, 7, 0, 0, tzinfo=zone)
    assert cycle_of(cycle_ends("2026-W49", zone), zone) == "2026-W50"
