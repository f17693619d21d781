"""The batch explanations and vectorised ranks give what the per-pair code gives, term for term and bit for bit."""

from __future__ import annotations

import csv
import pickle
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from rules.duplicates.explain import SharedTerms, word_terms
from rules.duplicates.ranking import ScoredPair, pair_ranks, ranking_score
from rules.duplicates.text import Document, clean_body, normalise_title
from rules.duplicates.vectors import _WORD_ANALYZER, Vectoriser
from tests.shared_data import SHARED, require_shared


def _real_documents(limit: int) -> list[Document]:
    data = require_shared(SHARED / "data" / "jira-storypoints")
    csv.field_size_limit(sys.maxsize)
    documents: list[Document] = []
    for path in sorted(data.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                documents.append(
                    Document(normalise_title(row["title"]), clean_body(row["description"] or ""))
                )
    rng = random.Random(3)
    rng.shuffle(documents)
    return documents[:limit]


def test_word_terms_are_the_hashers_analyser_terms_on_real_text() -> None:
    for document in _real_documents(3000):
        assert word_terms(document.word_text) == Counter(_WORD_ANALYZER(document.word_text))


def test_shared_terms_in_batch_equal_the_per_pair_explanation_on_real_text() -> None:
    real = _real_documents(1500)
    # Near-copies (a suffix, a dropped sentence) share many terms and tie often; random pairs share few.
    copies = [Document(f"{d.title} again", d.body[: len(d.body) // 2]) for d in real[:300]]
    documents = real + copies
    vectoriser, _ = Vectoriser.fit(documents)
    rng = random.Random(5)
    pairs = [(row, len(real) + row) for row in range(300)]
    pairs += [(rng.randrange(len(real)), rng.randrange(len(real))) for _ in range(700)]
    explainer = SharedTerms(vectoriser, documents)
    explainer.prepare(row for pair in pairs for row in pair)
    for first, second in pairs:
        expected = vectoriser.shared_terms(documents[first], documents[second])
        assert explainer.of(first, second) == expected, (documents[first], documents[second])


def test_ties_are_broken_by_the_term_and_bigrams_replace_their_words() -> None:
    documents = [
        Document("zeta alpha beta gamma delta", "omega"),
        Document("zeta alpha beta gamma delta", "omega"),
        Document("unrelated words only", ""),
    ]
    vectoriser, _ = Vectoriser.fit(documents)
    explainer = SharedTerms(vectoriser, documents)
    assert explainer.of(0, 1) == vectoriser.shared_terms(documents[0], documents[1])
    assert "alpha beta" in explainer.of(0, 1)
    assert explainer.of(0, 2) == [] == vectoriser.shared_terms(documents[0], documents[2])
    explainer.release(0)
    assert explainer.of(0, 1) == vectoriser.shared_terms(documents[0], documents[1])  # analysed again


def test_vectorised_ranks_equal_the_scalar_ranking_score() -> None:
    options: Any = SimpleNamespace(recency_weight=0.2, recency_days=365.0)
    rng = random.Random(9)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    created: list[datetime | None] = [
        start + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(10**6)) for _ in range(400)
    ]
    created[3] = None  # undated: no preference
    created[4] = datetime(2024, 5, 1, 12, 0)  # naive: read as UTC
    created[5] = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    pairs = [
        ScoredPair(rng.randrange(400), rng.randrange(400), s, s) for s in (rng.random() for _ in range(3000))
    ]
    pairs += [ScoredPair(3, 7, 0.8, 0.8), ScoredPair(4, 5, 0.6, 0.6), ScoredPair(1, 2, 0.9995, 0.9995)]
    ranks = pair_ranks(pairs, created, options).tolist()

    def aware(moment: datetime | None) -> datetime | None:
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)

    for pair, rank in zip(pairs, ranks, strict=True):
        a, b = aware(created[pair.first]), aware(created[pair.second])
        days = float("inf") if a is None or b is None else abs((a - b).total_seconds()) / 86_400.0
        assert rank == float(ranking_score(pair.score, days, options))
    assert ranks[-2] == pytest.approx(0.6 * 1.2)  # 14:00+02:00 is 12:00 UTC: the same moment


class _PicklingCache:
    """A cache that keeps a copy made at ``put``, as the store's does (a later change is not kept)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def get(self, key: str) -> object | None:
        blob = self.blobs.get(key)
        return None if blob is None else pickle.loads(blob)

    def put(self, key: str, value: object) -> None:
        self.blobs[key] = pickle.dumps(value)

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)


def test_the_cached_index_keeps_the_shared_terms_of_the_findings() -> None:
    from refinebot.models import Issue, SourceKind
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate, DuplicateIndex
    from rules.duplicates.stored import load_index

    titles = [
        "Checkout fails when a coupon code is applied",
        "Coupon code breaks the checkout",
        "Add dark mode",
    ]
    issues = [
        Issue(key=f"T-{n}", project="T", source_kind=SourceKind.FILE, title=title, description=f"{title}.")
        for n, title in enumerate(titles, start=1)
    ]
    cache = _PicklingCache()
    ctx = RuleContext("T", datetime(2026, 11, 20, tzinfo=UTC), cache=cache)
    (finding,) = DuplicateCandidate().check(issues, ctx)
    index = load_index(cache, "duplicate-candidate:T:window=180")
    assert isinstance(index, DuplicateIndex)
    assert index.terms[("T-1", "T-2")] == finding.details["shared_terms"] != []
