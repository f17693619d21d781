"""Run the real ``refinebot`` CLI in a subprocess, as a user would, and capture what it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    """What a CLI run printed and returned."""

    code: int
    stdout: str
    stderr: str


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a CLI run gets: ours without any ``REFINEBOT_*`` variable, a wide plain terminal, ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEBOT_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    full_env.update(env or {})
    return full_env


def run_cli(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """Run ``python -m refinebot`` in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "refinebot", *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        cwd=cwd or ROOT,
        timeout=120,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def start_cli(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m refinebot`` without waiting (several at once); ``finish_cli`` collects it."""
    return subprocess.Popen(
        [sys.executable, "-m", "refinebot", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
        cwd=cwd or ROOT,
    )


def finish_cli(proc: subprocess.Popen[str], timeout: float = 120) -> CliResult:
    """Wait for a started CLI (killed if it overruns ``timeout``) and what it printed."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return CliResult(proc.returncode, stdout, stderr)
