"""``refinebot scan`` end to end: config -> Jira connector -> fake Jira over HTTP -> rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_jira import Site
from fake_jira_data import adf, link, make_issue, para
from typer.testing import CliRunner

from refinebot.cli import app


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


def test_projects_sharing_a_source_share_one_connector_and_its_discovery(fake_jira, tmp_path: Path) -> None:
    site = fake_jira.new_site(cloud=True)
    make_issue(site, 1)
    make_issue(site, 2)
    env = "REFINEBOT_FAKE_JIRA_SHARED_TOKEN"
    config = _config(tmp_path, site, env)
    config.write_text(config.read_text() + '\n[projects.SHOP2]\nsource = "jira"\nquery = "project = SHOP"\n')

    result = CliRunner().invoke(
        app, ["scan", "--config", str(config), "--format", "json"], env={env: site.token}
    )

    assert result.exit_code == 0, result.output
    assert {f["project"] for f in json.loads(result.stdout)} <= {"SHOP", "SHOP2"}
    # Field discovery (/field) runs once for both projects: the pipeline reuses the source's connector.
    assert (
        len(site.requests("GET", "/rest/api/3/field")) + len(site.requests("GET", "/rest/api/2/field")) == 1
    )
    assert len([e for e in site.requests("GET", "/rest/api/3/search/jql") if "jql" in e.query]) == 2
