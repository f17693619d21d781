"""docs/digest.md shows what ``refinebot agenda`` prints for the demo backlog: its text preview and Block Kit
JSON are compared with the real CLI's output, so the page cannot drift from the product.

After an intended change, regenerate both fences with the commands the page names and read the diff.
"""

from __future__ import annotations

import json
import re

from tests.cli_process import ROOT, run_cli

DOC = ROOT / "docs" / "digest.md"
ARGS = [
    "agenda",
    "-c",
    str(ROOT / "refinebot" / "demo" / "config.toml"),
    "--now",
    "2026-11-20T09:00:00+00:00",
]


def _fence(kind: str) -> str:
    found = re.search(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert found, f"docs/digest.md has no ```{kind} block"
    return found.group(1)


def test_the_text_preview_is_what_refinebot_agenda_prints() -> None:
    printed = run_cli(ARGS)
    assert printed.code == 0, printed.stderr
    assert _fence("text") == printed.stdout


def test_the_block_kit_json_is_what_refinebot_agenda_prints() -> None:
    printed = run_cli([*ARGS, "--format", "blocks"])
    assert printed.code == 0, printed.stderr
    assert json.loads(_fence("json")) == json.loads(printed.stdout)
