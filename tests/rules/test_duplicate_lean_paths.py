"""The duplicate rule's memory- and object-lean paths give what the plain ones gave.

The index is fitted chunk by chunk (the raw counts never stacked) and, when nothing is linked or
dismissed, candidates stay arrays with mutual top-1 read in numpy: vectors, pairs and findings must
be those of the whole-matrix fit and the list of pair objects.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

import rules.duplicates.index as index_module
from refinebot.models import Issue, SourceKind
from rules.base import RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateOptions, documents_and_counts
from rules.duplicates.ranking import CandidateArrays, mutual_best, score_candidates
from rules.duplicates.vectors import Vectoriser

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_TOPICS = ["payment", "search", "export", "login", "avatar", "invoice", "shipping", "catalog"]
_VERBS = ["fails", "is slow", "shows wrong totals", "times out", "crashes", "ignores filters"]


def _backlog(n: int) -> list[Issue]:
    issues: list[Issue] = []
    for number in range(n):
        topic, verb = _TOPICS[number % len(_TOPICS)], _VERBS[(number // len(_TOPICS)) % len(_VERBS)]
        title = f"{topic} {verb} in region {number}"
        description = f"Customer {number}: the {topic} page {verb} since release {number % 7}."
        if number % 5 == 4:  # a near-copy of an earlier item: pairs to flag
            earlier = issues[number - 3]
            title, description = f"{earlier.title} again", earlier.description
        issues.append(
            Issue(
                key=f"B-{number}",
                project="TEST",
                source_kind=SourceKind.FILE,
                title=title,
                description=description,
                created=datetime(2026, 9, 1 + number % 28, tzinfo=UTC),
            )
        )
    return issues


def test_index_fitted_in_chunks_has_the_vectors_of_one_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    issues = _backlog(60)
    _, _, words, chars = documents_and_counts(issues)
    expected_vectoriser, expected = Vectoriser.fit_counts(words, chars)
    monkeypatch.setattr(index_module, "_CHUNK_DOCS", 7)  # nine chunks, the last one short
    built = index_module.build_index(issues)
    for name in ("data", "indices", "indptr"):
        ours, theirs = getattr(built.matrix, name), getattr(expected, name)
        assert ours.dtype == theirs.dtype
        assert np.array_equal(ours, theirs)
    assert built.matrix.shape == expected.shape
    for name in ("word_idf", "char_idf", "word_df", "char_df"):
        assert np.array_equal(getattr(built.vectoriser, name), getattr(expected_vectoriser, name))
    assert built.vectoriser.n_docs == expected_vectoriser.n_docs == 60


@pytest.mark.parametrize("mutual", [True, False])
def test_candidate_arrays_hold_the_pairs_and_flags_of_the_list(mutual: bool) -> None:
    rule = DuplicateCandidate(DuplicateOptions(mutual_top1=mutual))
    scan = rule.scan(_backlog(80), RuleContext("TEST", NOW))
    assert scan is not None
    assert isinstance(scan.candidates, CandidateArrays)
    listed = score_candidates(scan.index, 0.5 * 0.55)
    assert list(scan.candidates) == listed
    assert scan.candidates[2:5] == listed[2:5]
    expected = mutual_best(listed, 0.55) if mutual else [p for p in listed if p.score >= 0.55]
    assert expected
    assert scan.flagged == expected


@pytest.mark.parametrize("mutual", [True, False])
def test_findings_are_those_of_the_list_path(mutual: bool) -> None:
    issues = _backlog(80)
    rule = DuplicateCandidate(DuplicateOptions(mutual_top1=mutual))
    lean = [f.to_json() for f in rule.check(issues, RuleContext("TEST", NOW))]
    # A dismissed pair of items that are no candidates: the list path runs, and drops nothing.
    dismissed = RuleContext("TEST", NOW, suppressed_pairs=frozenset({frozenset(("X-1", "X-2"))}))
    listed = [f.to_json() for f in rule.check(issues, dismissed)]
    assert lean
    assert lean == listed
