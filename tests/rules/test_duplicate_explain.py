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
from rules.duplicates.sklearn_hashers import WORD_ANALYZER as _WORD_ANALYZER
from rules.duplicates.text import Document, clean_body, normalise_title
from rules.duplicates.vectors import Vectoriser
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
    explained = SharedTerms(vectoriser, documents).of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        expected = vectoriser.shared_terms(documents[first], documents[second])
        assert terms == expected, (documents[first], documents[second])


def test_shared_terms_over_several_chunks_and_shared_descriptions_equal_the_per_pair_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pairs split over chunks, documents in more than one chunk, descriptions shared by copies
    (tokenised once), a title equal to another item's description, empty texts, a pair of a
    document with itself, and a term counted many times."""
    import rules.duplicates.explain as explain

    monkeypatch.setattr(explain, "_CHUNK", 7)
    real = _real_documents(200)
    documents = list(real)
    documents += [Document(f"{d.title} on staging", d.body) for d in real[:60]]
    documents += [Document(f"{d.title} again", d.body) for d in real[:60]]
    documents += [Document(real[0].body[:80], real[1].body), Document("", ""), Document("", real[2].body)]
    documents += [Document("retry retry retry", " ".join(["retry storm"] * 40))] * 2
    vectoriser, _ = Vectoriser.fit(documents)
    rng = random.Random(8)
    pairs = [(row, 200 + row) for row in range(60)] + [(200 + row, 260 + row) for row in range(60)]
    pairs += [(rng.randrange(len(documents)), rng.randrange(len(documents))) for _ in range(150)]
    pairs += [(320, 1), (321, 322), (322, 2), (323, 324), (5, 5), (324, 323)]
    explained = SharedTerms(vectoriser, documents).of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second]), (first, second)
    assert explained[-3] == ["retry storm", "storm retry", "retry retry"]  # "retry" is in them


def test_ties_are_broken_by_the_term_and_bigrams_replace_their_words() -> None:
    documents = [
        Document("zeta alpha beta gamma delta", "omega"),
        Document("zeta alpha beta gamma delta", "omega"),
        Document("unrelated words only", ""),
    ]
    vectoriser, _ = Vectoriser.fit(documents)
    explainer = SharedTerms(vectoriser, documents)
    assert explainer.of(0, 1) == vectoriser.shared_terms(documents[0], documents[1])
    # The title's bigrams (counted twice: the title is read twice) tie and come in name order, before
    # the body's; their words are not repeated.
    assert explainer.of(0, 1) == ["alpha beta", "beta gamma", "gamma delta", "zeta alpha", "delta omega"]
    assert explainer.of(0, 2) == [] == vectoriser.shared_terms(documents[0], documents[2])
    assert explainer.of_pairs([(0, 2), (1, 0)]) == [[], explainer.of(0, 1)]
    assert explainer.of_pairs([]) == []


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


def _copies_backlog(
    rng: random.Random, bases: int, copies: int
) -> tuple[list[Document], list[tuple[int, int]]]:
    """Real documents, each with near-copies (a suffix on the title, the same description), and
    pairs among each group as the duplicate-heavy backlog reports them."""
    real = _real_documents(bases)
    documents = list(real)
    pairs = []
    for row, document in enumerate(real):
        for copy in range(copies):
            pairs.append((row, len(documents)))
            if copy:
                pairs.append((len(documents) - 1, len(documents)))
            documents.append(
                Document(f"{document.title} {rng.choice(['again', 'on staging'])}", document.body)
            )
    pairs += [(rng.randrange(len(documents)), rng.randrange(len(documents))) for _ in range(100)]
    return documents, pairs


def test_forked_workers_give_the_same_terms_as_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import rules.duplicates.explain as explain

    monkeypatch.setattr(explain, "_CHUNK", 50)
    monkeypatch.setattr(explain, "PARALLEL_MIN_PAIRS", 10)
    documents, pairs = _copies_backlog(random.Random(4), 150, 3)
    vectoriser, _ = Vectoriser.fit(documents)
    alone = SharedTerms(vectoriser, documents)
    expected = alone.of_pairs(pairs)
    assert alone.worker_cpu == 0.0
    forked = SharedTerms(vectoriser, documents)
    assert forked.of_pairs(pairs, workers=2) == expected
    if "fork" in __import__("multiprocessing").get_all_start_methods():
        assert forked.worker_cpu > 0.0  # the workers did the work
    for (first, second), terms in list(zip(pairs, expected, strict=True))[::7]:
        assert terms == vectoriser.shared_terms(documents[first], documents[second])


def test_keys_too_wide_to_pack_are_sorted_by_lexsort_with_the_same_terms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rules.duplicates.explain as explain

    documents, pairs = _copies_backlog(random.Random(6), 80, 2)
    vectoriser, _ = Vectoriser.fit(documents)
    packed = SharedTerms(vectoriser, documents).of_pairs(pairs)
    monkeypatch.setattr(explain, "_KEY_BITS", 8)  # every packed sort falls back to np.lexsort
    assert SharedTerms(vectoriser, documents).of_pairs(pairs) == packed
    for (first, second), terms in zip(pairs, packed, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second])


def test_term_columns_are_the_term_hashers_columns_on_real_text() -> None:
    import numpy as np
    import scipy.sparse as sp

    from rules.duplicates.explain import _squared_idf
    from rules.duplicates.sklearn_hashers import TERM_HASHER as _TERM_HASHER

    documents = _real_documents(2000)
    vectoriser, _ = Vectoriser.fit(documents)
    terms = sorted({term for document in documents for term in word_terms(document.word_text)})
    columns = sp.csr_matrix(_TERM_HASHER.transform([[term] for term in terms])).indices
    expected = [float(w) ** 2 for w in vectoriser.word_idf[columns]]
    assert _squared_idf(vectoriser, terms).tolist() == expected
    assert len(np.unique(columns)) > 1000


def test_the_finding_names_the_terms_the_pair_shares_strongest_first() -> None:
    """Through the rule: a near-copy's finding lists the bigrams both items' titles share (a title
    counts twice), then the descriptions' (ties in name order), and the message names them."""
    from refinebot.models import Issue, SourceKind
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate

    texts = [
        (
            "Checkout fails when a coupon code is applied",
            "The payment page shows error 502 after the coupon.",
        ),
        (
            "Checkout fails when a coupon code is applied again",
            "The payment page shows error 502 after the coupon.",
        ),
        ("Add dark mode", "Users want a dark theme for the settings page."),
    ]
    issues = [
        Issue(
            key=f"T-{n}",
            project="T",
            source_kind=SourceKind.FILE,
            title=title,
            description=body,
            created=datetime(2026, 1, n, tzinfo=UTC),
        )
        for n, (title, body) in enumerate(texts, start=1)
    ]
    (finding,) = DuplicateCandidate().check(issues, RuleContext("T", datetime(2026, 11, 20, tzinfo=UTC)))
    terms = ["checkout fails", "code applied", "coupon code", "fails coupon", "502 coupon"]
    assert finding.issue == "T-2"
    assert finding.details["shared_terms"] == terms
    assert f"; shared terms: {', '.join(terms)})." in finding.message


def test_the_fast_token_pattern_finds_the_analysers_tokens() -> None:
    """Every string of up to 5 characters over word characters (ASCII, accented, digit, underscore),
    a combining accent, dots, spaces and dashes, and the real texts."""
    import itertools
    import re

    from rules.duplicates.explain import _FAST_TOKENS
    from rules.duplicates.vectors import TOKEN_PATTERN

    tokens = re.compile(TOKEN_PATTERN).findall
    alphabet = "aé1_.\u0301 -"
    for length in range(6):
        for letters in itertools.product(alphabet, repeat=length):
            text = "".join(letters)
            assert _FAST_TOKENS(text) == tokens(text), text
    for document in _real_documents(3000):
        for text in (document.title, document.body, document.word_text):
            assert _FAST_TOKENS(text) == tokens(text)


def test_components_order_the_nodes_as_scipys_connected_components() -> None:
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from rules.duplicates.explain import components

    rng = random.Random(3)
    for size, edges in ((2, 1), (30, 12), (500, 400), (2000, 1800)):
        ends = np.asarray(
            [(rng.randrange(size), rng.randrange(size)) for _ in range(edges)] + [(0, size - 1)],
            dtype=np.int64,
        )
        graph = sp.coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(size, size))
        _, expected = connected_components(graph, directed=False)
        got = components(ends, size)
        # The same partition, and labels in the same order (scipy numbers by smallest node).
        assert (np.unique(got, return_inverse=True)[1] == expected).all()
        assert all(got[node] <= node for node in range(size))
