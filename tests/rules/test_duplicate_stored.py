"""The duplicate index stored in parts in the real store (SQLite): it reads back as it was written, an
update writes only its changed rows, and an unreadable or old-format entry is rebuilt, never a crash."""

from __future__ import annotations

import logging
import pickle
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from refinebot.models import Finding, Issue, SourceKind, StatusCategory
from refinebot.store import Store
from refinebot.store.schema import rule_cache
from rules.base import RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateIndex, build_index, stored, update_index
from rules.duplicates.stored import load_index, save_index

NOW = datetime(2026, 11, 20, tzinfo=UTC)
KEY = "duplicate-candidate:T:window=180"
TOPICS = ["payment", "search", "export", "login", "avatar", "invoice", "shipping", "catalog"]
VERBS = ["fails", "is slow", "shows wrong totals", "times out", "crashes", "ignores filters"]


def _backlog(n: int) -> list[Issue]:
    issues = []
    for number in range(n):
        topic, verb = TOPICS[number % len(TOPICS)], VERBS[(number // len(TOPICS)) % len(VERBS)]
        issues.append(
            Issue(
                key=f"T-{number + 1}",
                project="T",
                source_kind=SourceKind.FILE,
                title=f"{topic} {verb} in region {number}",
                description=f"Customer {number}: the {topic} page {verb} since release {number % 7}. Ünïcode ✓",
                status="To Do",
                status_category=StatusCategory.TODO,
                created=datetime(2026, 10, 1 + number % 28, tzinfo=UTC),
            )
        )
    # Two near-copies, so there is a finding to explain and keep terms of.
    issues.append(replace(issues[3], key=f"T-{n + 1}", title=issues[3].title + " again"))
    return issues


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened  # type: ignore[misc]


def _rows(store: Store) -> dict[str, bytes]:
    with store.engine.connect() as connection:
        found = connection.execute(select(rule_cache.c.key, rule_cache.c.value)).all()
    return dict(found)


def _same(a: DuplicateIndex, b: DuplicateIndex) -> None:
    assert a.keys == b.keys and a.fingerprints == b.fingerprints and a.documents == b.documents
    assert (a.matrix != b.matrix).nnz == 0 and a.matrix.shape == b.matrix.shape
    assert np.array_equal(a.pairs, b.pairs) and np.array_equal(a.scores, b.scores)
    for name in ("word_idf", "char_idf", "word_df", "char_df"):
        assert np.array_equal(getattr(a.vectoriser, name), getattr(b.vectoriser, name))
    assert a.vectoriser.n_docs == b.vectoriser.n_docs and a.boilerplate == b.boilerplate
    assert a.terms == b.terms and a.updates == b.updates and a.penalty_floor == b.penalty_floor
    assert a.changed_since_build == b.changed_since_build


def _findings(store: Store, issues: list[Issue]) -> list[Finding]:
    return list(DuplicateCandidate().check(issues, RuleContext("T", NOW, cache=store.rule_cache("T"))))


def test_the_index_round_trips_through_the_store(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stored, "SEGMENT_ROWS", 25)  # several segments
    index = build_index(_backlog(80))
    index.terms[("T-1", "T-2")] = ["payment", "fails"]
    save_index(store.rule_cache("T"), KEY, index)
    loaded = load_index(store.rule_cache("T"), KEY)
    assert isinstance(loaded, DuplicateIndex)
    _same(index, loaded)
    assert len(loaded.segments) == 4
    # Saving what was just read writes nothing.
    assert save_index(store.rule_cache("T"), KEY, loaded) == 0


def test_an_update_writes_one_new_segment_and_the_manifest_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored, "SEGMENT_ROWS", 25)
    issues = _backlog(80)
    save_index(store.rule_cache("T"), KEY, build_index(issues))
    before = _rows(store)
    edited = [*issues[:10], replace(issues[10], description="A new text about the login page."), *issues[11:]]
    cached = load_index(store.rule_cache("T"), KEY)
    assert isinstance(cached, DuplicateIndex)
    updated = update_index(cached, edited)
    save_index(store.rule_cache("T"), KEY, updated)
    after = _rows(store)
    rewritten = {k for k in after if k in before and after[k] != before[k]}
    assert rewritten == {KEY}  # old segments untouched; their changed row is marked dead
    assert len(set(after) - set(before)) == 1  # the one new segment
    again = load_index(store.rule_cache("T"), KEY)
    assert isinstance(again, DuplicateIndex)
    _same(updated, again)
    assert again.keys[-1] == "T-11" and again.updates == 1


def test_a_rebuild_deletes_the_old_segments(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stored, "SEGMENT_ROWS", 25)
    issues = _backlog(80)
    save_index(store.rule_cache("T"), KEY, build_index(issues))
    old = set(_rows(store))
    cached = load_index(store.rule_cache("T"), KEY)
    assert isinstance(cached, DuplicateIndex)
    # Most items changed: rebuilt from scratch.
    edited = [replace(issue, description=issue.description + " Edited.") for issue in issues]
    save_index(store.rule_cache("T"), KEY, update_index(cached, edited))
    now = set(_rows(store))
    assert old & now == {KEY}
    assert len(now) == 1 + 4


def test_a_second_scan_of_the_same_backlog_gives_the_findings_of_the_first(store: Store) -> None:
    issues = _backlog(60)
    first = _findings(store, issues)
    assert first
    second = _findings(store, issues)
    assert [f.to_json() for f in second] == [f.to_json() for f in first]
    fresh = list(DuplicateCandidate().check(issues, RuleContext("T", NOW)))
    assert [f.to_json() for f in fresh] == [f.to_json() for f in first]


@pytest.mark.parametrize(
    "damage", ["truncated-manifest", "truncated-segment", "missing-segment", "old-pickle"]
)
def test_an_unreadable_or_old_entry_is_rebuilt_not_a_crash(
    store: Store, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    issues = _backlog(60)
    expected = [f.to_json() for f in _findings(store, issues)]
    rows = _rows(store)
    segment = next(k for k in rows if ":segment:" in k)
    with store.engine.begin() as connection:
        if damage == "truncated-manifest":
            blob = rows[KEY]
            connection.execute(update(rule_cache).where(rule_cache.c.key == KEY).values(value=blob[:200]))
        elif damage == "truncated-segment":
            blob = rows[segment]
            connection.execute(
                update(rule_cache).where(rule_cache.c.key == segment).values(value=blob[: len(blob) // 2])
            )
        elif damage == "missing-segment":
            connection.execute(rule_cache.delete().where(rule_cache.c.key == segment))
    if damage == "old-pickle":
        # What earlier versions kept under the key: the whole index, pickled by the store.
        store.rule_cache("T").put(KEY, {"keys": ["T-1"], "pickled": pickle.dumps(1)})
    with caplog.at_level(logging.WARNING):
        assert [f.to_json() for f in _findings(store, issues)] == expected
    assert "rebuilt" in caplog.text
    rebuilt = load_index(store.rule_cache("T"), KEY)
    assert isinstance(rebuilt, DuplicateIndex) and rebuilt.updates == 0
