"""``refinebot scan`` end to end against the fake Azure DevOps: config, CLI process, SDK, HTTP."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.connectors.azure_devops.fake_org import PAT, TOKEN_ENV
from tests.fakes.ado_server import FakeAzureDevOps

ROOT = Path(__file__).resolve().parents[3]
GOOD_DESCRIPTION = (
    "<h2>Why</h2><p>Shoppers abandon carts when PayPal is missing; we lose about 4% of orders.</p>"
)


def run_scan(config: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEBOT_")}
    env.update(
        {
            TOKEN_ENV: PAT,
            "AZURE_DEVOPS_CACHE_DIR": str(cache),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "refinebot", "scan", "-c", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_scan_reports_findings_from_azure_devops(
    ado: FakeAzureDevOps, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    project = unique_name("Scan")
    other = unique_name("ScanOther")
    ado.add_project(project, "Scrum")
    ado.add_project(other)
    blocker = ado.add_item(other, "Payment provider contract", state="Active")
    ready = ado.add_item(
        project,
        "Pay with PayPal",
        fields={
            "System.Description": GOOD_DESCRIPTION,
            "Microsoft.VSTS.Common.AcceptanceCriteria": "<ul><li>Given a cart, I pay</li></ul>",
            "Microsoft.VSTS.Scheduling.Effort": 3,
        },
    )
    bare = ado.add_item(project, "Improve search", fields={"Microsoft.VSTS.Scheduling.Effort": 2})
    blocked = ado.add_item(
        project,
        "Refund via PayPal",
        fields={
            "System.Description": GOOD_DESCRIPTION,
            "Microsoft.VSTS.Common.AcceptanceCriteria": "<p>Given a paid order, when refunded</p>",
            "Microsoft.VSTS.Scheduling.Effort": 3,
        },
        relations=[("System.LinkTypes.Dependency-Reverse", blocker)],
    )
    config = tmp_path / "refinebot.toml"
    config.write_text(
        f"""
[sources.ado]
kind = "azure_devops"
url = "{ado.url}"
token_env = "{TOKEN_ENV}"
backoff_base_seconds = 0.01
cache_dir = "cache"

[projects."{project}"]
source = "ado"
""",
        encoding="utf-8",
    )

    done = run_scan(config, tmp_path / "sdk", "--format", "json", "--now", "2026-11-05T09:00:00+00:00")

    assert done.returncode == 0, done.stderr
    findings = {(f["issue"], f["code"]) for f in json.loads(done.stdout)}
    assert (str(bare), "RB101") in findings  # no acceptance criteria
    assert (str(blocked), "RB401") in findings  # predecessor in another project is still active
    assert not {code for issue, code in findings if issue == str(ready)} & {
        "RB101",
        "RB102",
        "RB401",
    }
    assert PAT not in done.stdout + done.stderr
    # The sync state (process discovery included) now lives in the store beside the config (issue 11:
    # one store interface instead of cache_dir files), so the next scan or digest syncs incrementally.
    with sqlite3.connect(tmp_path / "refinebot.db") as connection:
        keys = [row[0] for row in connection.execute("SELECT key FROM sync_state")]
    assert any("process" in key for key in keys), keys


def test_scan_reports_a_bad_token_clearly(
    ado: FakeAzureDevOps, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    project = unique_name("ScanAuth")
    ado.add_project(project)
    config = tmp_path / "refinebot.toml"
    config.write_text(
        f"""
[sources.ado]
kind = "azure_devops"
url = "{ado.url}"
token_env = "{TOKEN_ENV}"

[projects."{project}"]
source = "ado"
""",
        encoding="utf-8",
    )
    env_pat = "not-the-right-token"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEBOT_")}
    env.update({TOKEN_ENV: env_pat, "AZURE_DEVOPS_CACHE_DIR": str(tmp_path / "sdk"), "COLUMNS": "200"})

    done = subprocess.run(
        [sys.executable, "-m", "refinebot", "scan", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert "authentication failed (HTTP 401)" in done.stderr
    assert TOKEN_ENV in done.stderr
    assert env_pat not in done.stdout + done.stderr
