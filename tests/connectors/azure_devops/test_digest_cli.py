"""``refinebot digest`` end to end against the fake Azure DevOps and the fake Slack: the real CLI in a
subprocess, the SDK over HTTP, SQLite. First digest: one bot comment per flagged work item and one agenda
post; rerun unchanged: not one write request to either."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli_process import CliResult, run_cli
from tests.connectors.azure_devops.fake_org import PAT, TOKEN_ENV
from tests.fakes.ado_server import BOT, FakeAzureDevOps, RecordedRequest
from tests.fakes.slack_server import TOKEN, running

SLACK_ENV = "REFINEBOT_FAKE_SLACK_ADO_TOKEN"
GOOD_DESCRIPTION = "<h2>Why</h2><p>Shoppers abandon carts when PayPal is missing; we lose 4% of orders.</p>"
GOOD_CRITERIA = "<ul><li>Given a cart, when I choose PayPal, then I can pay</li></ul>"


def _writes(requests: list[RecordedRequest]) -> list[str]:
    """Requests that change something (WIQL and the batch read are POSTs that change nothing)."""
    return [
        f"{r.method} {r.path}"
        for r in requests
        if r.method in ("PATCH", "PUT", "DELETE") or (r.method == "POST" and "/comments" in r.path)
    ]


def _digest(config: Path, *args: str) -> CliResult:
    return run_cli(["digest", "--config", str(config), *args], env={TOKEN_ENV: PAT, SLACK_ENV: TOKEN})


def test_digest_comments_once_per_flagged_item_then_stays_quiet(
    ado: FakeAzureDevOps, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    project = unique_name("Digest")
    ado.add_project(project, "Scrum")
    ready = ado.add_item(
        project,
        "Pay with PayPal",
        fields={
            "System.Description": GOOD_DESCRIPTION,
            "Microsoft.VSTS.Common.AcceptanceCriteria": GOOD_CRITERIA,
            "Microsoft.VSTS.Scheduling.Effort": 3,
        },
    )
    bare = ado.add_item(project, "Improve search", fields={"Microsoft.VSTS.Scheduling.Effort": 2})
    huge = ado.add_item(
        project,
        "Rewrite the warehouse sync",
        fields={
            "System.Description": "<p>The nightly export to the warehouse takes six hours; make it fast.</p>",
            "Microsoft.VSTS.Common.AcceptanceCriteria": "<ul><li>Given a night, the export ends by 2am</li></ul>",
            "Microsoft.VSTS.Scheduling.Effort": 40,
        },
    )
    with running() as (slack, base_url):
        config = tmp_path / "refinebot.toml"
        config.write_text(
            f"""
[slack]
bot_token_env = "{SLACK_ENV}"
base_url = "{base_url}"

[sources.ado]
kind = "azure_devops"
url = "{ado.url}"
token_env = "{TOKEN_ENV}"
backoff_base_seconds = 0.01

[rules.stale-item]
enabled = false

[projects."{project}"]
source = "ado"
slack_channel = "C0SHOP"
comment_on_tickets = true
""",
            encoding="utf-8",
        )
        mark = len(ado.requests)
        first = _digest(config, "--format", "json")
        assert first.code == 0, first.stderr
        (report,) = json.loads(first.stdout)
        flagged = {int(w["issue"]) for w in report["written"]}
        assert flagged == {bare, huge}
        posts = [w for w in _writes(ado.requests_since(mark)) if w.startswith("POST")]
        assert len(posts) == 2 and len(_writes(ado.requests_since(mark))) == 2  # one comment each, no edit
        for item in (bare, huge):
            (comment,) = ado.comments[item]
            assert comment["createdBy"]["id"] == BOT["id"] and "refinebot" in comment["text"]
        assert ready not in ado.comments or ado.comments[ready] == []
        assert "acceptance criteria" in ado.comments[bare][0]["text"].lower()
        assert "refinebot snooze" in ado.comments[bare][0]["text"]  # how to answer
        assert slack.methods().count("chat.postMessage") == 1

        mark, slack_mark = len(ado.requests), len(slack.calls)
        again = _digest(config)
        assert again.code == 0, again.stderr
        assert _writes(ado.requests_since(mark)) == []  # unchanged: not one write request
        assert "2 unchanged" in again.stdout and "slack: unchanged" in again.stdout
        assert [m for m in slack.methods()[slack_mark:] if m.startswith("chat.")] == []
        assert PAT not in first.stdout + first.stderr + again.stdout + again.stderr
