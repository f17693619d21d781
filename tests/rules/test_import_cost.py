"""Listing rules, checking a config and ``--help`` must not import the duplicate rule's numeric stack,
the store or the vendor SDKs.

scikit-learn, scipy and numpy take about a second to import; only running ``duplicate-candidate``
needs them. SQLAlchemy and Alembic were half of the remaining start-up (1.3 s of CPU before, 0.5 s
after, measured under load on a shared machine); the Slack and tracker SDKs load when a command
talks to them. Each check runs in a fresh interpreter, so what the test process already imported
does not hide an eager import; the test reads ``sys.modules``, never a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.cli_process import ROOT

HEAVY = ("sklearn", "scipy", "numpy", "sparse_dot_topn", "torch", "sentence_transformers")
# What commands that open no store and call no service must not load either.
SERVICES = (
    "sqlalchemy",
    "alembic",
    "slack_bolt",
    "slack_sdk",
    "jira",
    "azure",
    "msrest",
    "requests",
    "apscheduler",
)

_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    {body}
    print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))))
    """
)


def _heavy_modules_after(body: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The top-level packages of ``heavy`` a fresh interpreter holds after running ``body``."""
    code = _PROBE.format(body=textwrap.dedent(body), heavy=heavy)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_building_the_registry_and_reading_options_imports_no_numeric_stack() -> None:
    body = """
    from rules.registry import build_registry
    for rule in build_registry(plugins=False):
        rule.summary(), rule.explanation(), rule.Options().model_dump()
    import rules.duplicates, rules.embeddings
    rules.embeddings.available()
    """
    assert _heavy_modules_after(body) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["rules"],
        ["rules", "duplicate-candidate"],
        ["config", "check", "-c", str(ROOT / "config.example.toml")],
    ],
    ids=" ".join,
)
def test_cli_commands_that_run_no_rule_import_no_numeric_stack_store_or_sdk(args: list[str]) -> None:
    body = f"""
    from refinebot.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main({args!r})
    """
    assert _heavy_modules_after(body, HEAVY + SERVICES) == []


def test_a_scan_loads_the_store() -> None:
    # The probe sees the store load when a command needs it: the test above cannot pass vacuously.
    body = """
    from refinebot.cli.scan import open_store
    from refinebot.config import LoadedConfig, RefinebotConfig
    from pathlib import Path
    open_store(LoadedConfig(Path("refinebot.toml"), RefinebotConfig(database_url="sqlite://"), {})).close()
    """
    assert "sqlalchemy" in _heavy_modules_after(body, SERVICES)


def test_running_the_duplicate_rule_loads_it() -> None:
    # The probe can see a lazy import happen: without this the tests above could pass vacuously.
    body = """
    from datetime import UTC, datetime
    from refinebot.models import Issue, SourceKind
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate
    issues = [Issue(key=f"T-{n}", project="T", source_kind=SourceKind.FILE, title="Checkout fails")
              for n in (1, 2)]
    list(DuplicateCandidate().check(issues, RuleContext("T", datetime(2026, 1, 1, tzinfo=UTC))))
    """
    loaded = set(_heavy_modules_after(body))
    assert {"scipy", "numpy", "sparse_dot_topn"} <= loaded
    # scikit-learn (and the scipy.stats it imports, about a second) is no part of a scan: the rule
    # hashes and drops stop words with its own copies (rules/duplicates/hashing.py, stopwords.py).
    assert "sklearn" not in loaded
