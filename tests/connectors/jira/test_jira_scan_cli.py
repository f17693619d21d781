"""``refinebot scan`` end to end: config -> Jira connector -> fake Jira over HTTP -> rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.base import FetchResult, MemorySyncStateStore
from refinebot.cli import app
from refinebot.config import load_config
from refinebot.sources import connector_for
from rules.registry import build_registry
from tests.fakes.jira_data import adf, link, make_issue, para
from tests.fakes.jira_server import Site


def _config(tmp_path: Path, site: Site, env: str) -> Path:
    path = tmp_path / "refinebot.toml"
    email = f'email = "{site.email}"\n' if site.cloud else ""
    path.write_text(
        f"""
[sources.jira]
kind = "jira"
url = "{site.url}"
{email}token_env = "{env}"
backoff_base_seconds = 0.01

[projects.SHOP]
source = "jira"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("cloud", [True, False])
def test_scan_reads_the_backlog_from_jira_and_reports_findings(
    fake_jira, tmp_path: Path, cloud: bool
) -> None:
    site = fake_jira.new_site(cloud=cloud)
    make_issue(site, 1)  # ready: description with acceptance criteria, 3 points
    make_issue(
        site,
        2,
        description=adf(para("Make it faster.")) if cloud else "Make it faster.",
        points=21.0,
        links=[link(site, "Blocker", "inward", "SHOP-1", "To Do")],
    )
    make_issue(site, 3, status_name="Done")
    env = "REFINEBOT_FAKE_JIRA_SCAN_TOKEN"
    secret = site.token if cloud else site.pat

    result = CliRunner().invoke(
        app,
        [
            "scan",
            "--config",
            str(_config(tmp_path, site, env)),
            "--format",
            "json",
            "--now",
            "2025-02-01T00:00:00",
        ],
        env={env: secret},
    )

    assert result.exit_code == 0, result.output
    findings = json.loads(result.stdout)
    by_issue = {(f["issue"], f["rule"]) for f in findings}
    assert ("SHOP-2", "missing-acceptance-criteria") in by_issue
    assert ("SHOP-2", "oversized-story") in by_issue
    assert ("SHOP-2", "blocked-dependency") in by_issue
    assert not any(issue == "SHOP-1" for issue, _ in by_issue)
    assert not any(issue == "SHOP-3" for issue, _ in by_issue)
    assert secret not in result.output
    assert site.requests(path=r"/rest/api/\d/search(/jql)?")


def test_scan_reports_bad_credentials_as_a_failed_project(fake_jira, tmp_path: Path) -> None:
    site = fake_jira.new_site(cloud=True)
    env = "REFINEBOT_FAKE_JIRA_SCAN_TOKEN"

    result = CliRunner().invoke(
        app, ["scan", "--config", str(_config(tmp_path, site, env))], env={env: "not-the-token"}
    )

    assert result.exit_code == 2
    assert "HTTP 401" in result.output
    assert env in result.output
    assert "not-the-token" not in result.output


def test_connectors_built_on_one_state_store_sync_incrementally_and_full_forces_a_full_sync(
    fake_jira, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fake_jira.new_site(cloud=True)
    for number in range(1, 4):
        make_issue(site, number)
    env = "REFINEBOT_FAKE_JIRA_REPEAT_TOKEN"
    monkeypatch.setenv(env, site.token)
    loaded = load_config(_config(tmp_path, site, env), build_registry(plugins=False))
    store = MemorySyncStateStore()

    def sync(*, full: bool = False) -> FetchResult:
        # A new connector each time, as each run builds one: the store carries the state.
        return connector_for(loaded, "jira", state=store).fetch("SHOP", None, full=full)

    runs = [sync(), sync(), sync(full=True)]

    assert [len(r.issues) for r in runs] == [3, 3, 3]
    assert [r.incremental for r in runs] == [False, True, False]
    searches = [
        e.query["jql"][0].lower() for e in site.requests("GET", "/rest/api/3/search/jql") if "jql" in e.query
    ]
    assert len(searches) == 4
    assert "updated" not in searches[0]
    assert "updated >=" in searches[1]  # the source's state remembered the first sync
    assert "updated" not in searches[2]  # ...then asked which ids the query matches now
    assert site.requests("GET", "/rest/api/3/search/jql")[2].query["fields"] == ["id"]
    assert "updated" not in searches[3]
    assert len(site.requests("GET", "/rest/api/3/field")) == 1  # discovery cached for the source


@pytest.mark.parametrize("caller_froze", [False, True])
def test_an_in_process_scan_leaves_the_collectors_freeze_as_it_found_it(
    fake_jira, tmp_path: Path, caller_froze: bool
) -> None:
    # ``scan`` keeps the heap out of the collector's passes while it prints; run from code (tests,
    # an embedding app) it must neither leave objects frozen nor unfreeze what its caller froze.
    import gc

    site = fake_jira.new_site(cloud=True)
    make_issue(site, 1, description=adf(para("Make it faster.")))
    env = "REFINEBOT_FAKE_JIRA_FREEZE_TOKEN"
    config = str(_config(tmp_path, site, env))
    gc.unfreeze()
    if caller_froze:
        gc.freeze()
    try:
        result = CliRunner().invoke(
            app,
            ["scan", "--config", config, "--format", "json", "--now", "2025-02-01T00:00:00"],
            env={env: site.token},
        )
        after = gc.get_freeze_count()
    finally:
        gc.unfreeze()

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)  # it did scan and print
    # Frozen objects that die are dropped from the count, so it can only say frozen or not.
    assert (after > 0) is caller_froze
