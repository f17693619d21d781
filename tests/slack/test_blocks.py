"""Block Kit of the digest and of Documents: golden payloads, Slack's limits on huge hostile backlogs, escaping.

Golden files live in tests/slack/golden/; after an intended change rewrite them with
``REFINEBOT_UPDATE_GOLDEN=1 python -m pytest tests/slack/test_blocks.py`` and read the diff.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from refinebot.agenda import REMOVED_REASON, AgendaSettings, build_agenda
from refinebot.cli.agenda import agendas
from refinebot.cli.console import load, registry
from refinebot.cli.scan import DEMO_AS_OF, demo_config_path
from refinebot.document import Document, Link, bullets, heading, paragraph
from refinebot.models import Finding, Issue, Severity, SourceKind
from refinebot.pipeline import run
from refinebot.slack.blocks import digest_payload, document_blocks, escape, limit_problems
from refinebot.suppressions import Suppression, SuppressionKind, SuppressionSource
from tests.fakes.slack_server import block_errors

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HOSTILE = [
    "Fix <b> & <!channel>",
    "<@U0ADMIN> please look *now* _urgently_ ~really~ `rm -rf`",
    "@here @channel @everyone <!here> <!subteam^S123>",
    "<https://evil.example|Click me> > quoted & more",
    "Ünïcødé 🚀 " + "very long title " * 40,
    "line one\nline two\ttabbed | piped",
]


def check_golden(name: str, payload: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("REFINEBOT_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} changed; see this module's docstring"


def all_text(payload: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload)
    return found


def assert_inert(payload: dict[str, Any]) -> None:
    """No text can notify anyone or link anywhere but a ticket URL."""
    for text in all_text(payload):
        assert not re.search(r"<[!@#]", text), text
        assert not re.search(
            r"(?<!\u2060)@?(?<![\w@])@(here|channel|everyone)\b", text.replace("@\u2060", "")
        ), text
        for target in re.findall(r"<([^|>]*)\|", text):
            assert target.startswith(("https://t.example/", "https://shop-demo")), text


def demo_payload() -> dict[str, Any]:
    rules = registry()
    loaded = load(demo_config_path(), rules)
    results = run(loaded, registry=rules, now=DEMO_AS_OF)
    (agenda,) = agendas(loaded, results, DEMO_AS_OF, previous_shares={"SHOP": 0.4})
    return digest_payload(agenda, backlog_url="https://shop-demo.atlassian.net")


def hostile_backlog(size: int) -> tuple[list[Issue], list[Finding], list[Suppression]]:
    issues, findings, suppressions = [], [], []
    for n in range(1, size + 1):
        key = f"P-{n}"
        issues.append(
            Issue(key=key, project="P", source_kind=SourceKind.FILE, title=HOSTILE[n % len(HOSTILE)],
                  rank=f"{n:05d}", url=f"https://t.example/browse/{key}?a=1&b=<2>", story_points=21.0)
        )  # fmt: skip
        findings.append(Finding("P", key, "missing-acceptance-criteria", "RB101", Severity.ERROR, "m"))
        findings.append(
            Finding("P", key, "oversized-story", "RB201", Severity.WARNING, "m", {"points": 21.0})
        )
        if n % 3 == 0:
            findings.append(
                Finding("P", key, "duplicate-candidate", "RB501", Severity.WARNING, "m",
                        {"duplicate_of": f"P-{n - 1}"}, subject=f"P-{n - 1}|{key}")
            )  # fmt: skip
        if n % 7 == 0:
            reason = REMOVED_REASON if n % 2 else "later"
            suppressions.append(
                Suppression(SuppressionKind.SNOOZE, "P", key, NOW, "maya <!channel>", SuppressionSource.SLACK,
                            until=NOW + timedelta(days=3), reason=reason)
            )  # fmt: skip
    return issues, findings, suppressions


def test_golden_small_backlog_is_the_demo() -> None:
    payload = demo_payload()
    assert limit_problems(payload) == []
    assert block_errors(payload["blocks"]) == []
    assert_inert(payload)
    check_golden("demo_digest.json", payload)


@pytest.mark.parametrize("agenda_size", [8, 20])
def test_a_500_item_hostile_backlog_stays_within_limits(agenda_size: int) -> None:
    issues, findings, suppressions = hostile_backlog(500)
    settings = AgendaSettings(size=agenda_size, session_minutes=480, top_n=40)
    agenda = build_agenda("P", "2026-W49", issues, findings, suppressions, NOW, settings)
    payload = digest_payload(agenda, backlog_url="https://t.example/backlog")
    assert limit_problems(payload) == []
    assert block_errors(payload["blocks"]) == []  # the fake's own reading of Slack's limits
    assert_inert(payload)
    assert len(payload["blocks"]) <= 50
    footer = payload["blocks"][-2]["elements"][0]["text"]
    shown = sum(
        1
        for b in payload["blocks"]
        if b["type"] == "actions" and b["elements"][0]["text"]["text"] == "Snooze 1 week"
    )
    assert (
        f"and {agenda.more + agenda_size - shown} more not-ready items: <https://t.example/backlog|open the backlog>"
        in footer
    )
    if agenda_size == 20:
        check_golden("hostile_500_digest.json", payload)


def test_items_are_dropped_to_fit_50_blocks_and_counted_as_more() -> None:
    issues, findings, suppressions = hostile_backlog(500)
    settings = AgendaSettings(size=30, session_minutes=480)  # more than 50 blocks' worth
    agenda = build_agenda("P", "c", issues, findings, suppressions, NOW, settings)
    assert len(agenda.items) == 30
    payload = digest_payload(agenda)
    numbered = [
        b for b in payload["blocks"] if b["type"] == "section" and re.match(r"\*\d+\.\*", b["text"]["text"])
    ]
    assert len(payload["blocks"]) <= 50
    assert 20 <= len(numbered) < 30
    footer = payload["blocks"][-2]["elements"][0]["text"]
    assert footer.startswith(f"and {agenda.more + 30 - len(numbered)} more not-ready items")


def test_the_fallback_text_names_project_cycle_and_readiness() -> None:
    issues, findings, _ = hostile_backlog(3)
    agenda = build_agenda("P", "2026-W49", issues, findings, [], NOW, AgendaSettings(top_n=3))
    assert (
        digest_payload(agenda)["text"] == "P refinement agenda 2026-W49: 3 items; 0 of the top 3 ready (0%)"
    )


def test_item_buttons() -> None:
    issues, findings, _ = hostile_backlog(3)
    agenda = build_agenda("P", "c", issues, findings, [], NOW)
    actions = [b for b in digest_payload(agenda)["blocks"] if b["type"] == "actions"]
    labels = [[e["text"]["text"] for e in block["elements"]] for block in actions]
    assert labels[0] == ["Snooze 1 week", "Snooze 2 weeks", "Remove from agenda", "Open ticket"]
    assert labels[2] == [
        "Snooze 1 week",
        "Snooze 2 weeks",
        "Not a duplicate",
        "Remove from agenda",
        "Open ticket",
    ]
    assert actions[2]["elements"][2]["value"] == "v1|not_duplicate|P-3|P-2"
    assert actions[0]["elements"][3]["url"] == "https://t.example/browse/P-1?a=1&b=<2>"


def test_an_empty_agenda_says_so() -> None:
    agenda = build_agenda("P", "c", [], [], [], NOW)
    payload = digest_payload(agenda)
    assert "Nothing to refine" in payload["blocks"][2]["elements"][0]["text"]
    assert limit_problems(payload) == []


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("ping @here and @Channel", "ping @\u2060here and @\u2060Channel"),
        ("mail maya@example.com", "mail maya@example.com"),
        ("&amp;", "&amp;amp;"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


def test_a_document_renders_as_block_kit() -> None:
    document = Document(
        (
            heading("Ready <now>", level=1),
            heading("What is missing"),
            paragraph("Add ", Link("acceptance criteria & scope", "https://t.example/x?a=1&b=2"), " <!here>"),
            bullets(["one *star*", "two"]),
        )
    )
    blocks = document_blocks(document)
    assert blocks == [
        {"type": "header", "text": {"type": "plain_text", "text": "Ready <now>", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*What is missing*"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Add <https://t.example/x?a=1&amp;b=2|acceptance criteria &amp; scope> &lt;!here&gt;",
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "• one *star*\n• two"}},
    ]


def test_a_huge_document_is_split_and_capped() -> None:
    document = Document(tuple(paragraph("x" * 7000) for _ in range(30)))
    blocks = document_blocks(document)
    assert len(blocks) == 50
    assert all(
        len(b["elements"][0]["text"] if b["type"] == "context" else b["text"]["text"]) <= 3000 for b in blocks
    )
    assert block_errors(blocks) == []
