"""The PostgreSQL half of the store suite skips on a laptop without a server, but fails under ``CI=true``."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cli_process import ROOT
from tests.store.conftest import POSTGRES_ENV


def run_postgres_case(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (POSTGRES_ENV, "CI")}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/store/test_readiness.py",
            "-k",
            "postgresql",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_without_a_server_the_postgresql_cases_skip() -> None:
    result = run_postgres_case(ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout
    assert f"{POSTGRES_ENV} is not set" in result.stdout


def test_under_ci_a_missing_server_fails_the_run() -> None:
    result = run_postgres_case(ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped" not in result.stdout
    assert "must run" in result.stdout
