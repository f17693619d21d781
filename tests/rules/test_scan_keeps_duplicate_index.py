"""``refinebot scan`` keeps the duplicate index in the store, so the next scan only re-vectorises what changed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from refinebot.store import Store
from rules.duplicates import DuplicateIndex
from rules.duplicates.stored import load_index
from tests.cli_process import run_cli

NOW = "2026-11-20T09:00:00+00:00"
INDEX_KEY = "duplicate-candidate:SHOP:window=180"
TITLES = [
    "Checkout fails when a coupon code is applied",
    "Coupon code breaks the checkout",
    "Add dark mode to the settings page",
    "Export invoices as PDF from the billing page",
    "Billing page: export invoices to PDF",
    "Search results ignore the category filter",
]


def _write(tmp: Path, database: str, titles: list[str]) -> Path:
    with (tmp / "export.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Issue key", "Summary", "Status", "Created", "Description"])
        for n, title in enumerate(titles):
            writer.writerow([f"SHOP-{n + 1}", title, "To Do", f"2026-09-{n + 1:02d}T10:00:00", f"{title}."])
    config = tmp / f"{database}.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp / database}.db"\n'
        '[sources.export]\nkind = "file"\npath = "export.csv"\n'
        '[projects.SHOP]\nsource = "export"\n',
        encoding="utf-8",
    )
    return config


def _scan(config: Path) -> list[dict[str, object]]:
    result = run_cli(["scan", "-c", str(config), "--format", "json", "--now", NOW])
    assert result.code == 0, result.stderr
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return [f for f in findings if f["rule"] == "duplicate-candidate"]


def _index(tmp: Path, database: str) -> DuplicateIndex:
    with Store.open(f"sqlite:///{tmp / database}.db") as store:
        index = load_index(store.rule_cache("SHOP"), INDEX_KEY)
    assert isinstance(index, DuplicateIndex)
    return index


def test_a_second_scan_updates_the_stored_index_and_finds_what_a_fresh_scan_finds(tmp_path: Path) -> None:
    config = _write(tmp_path, "kept", TITLES)
    first = _scan(config)
    assert first and _index(tmp_path, "kept").updates == 0
    changed = [*TITLES[:-1], "Search results ignore the category and price filters"]
    _write(tmp_path, "kept", changed)
    second = _scan(config)
    index = _index(tmp_path, "kept")
    assert index.updates == 1  # updated in place, not rebuilt
    assert index.documents[-1].title == "search results ignore the category and price filters"
    assert second == _scan(_write(tmp_path, "fresh", changed))
