"""The shortcuts of a second scan (an index update) give what the whole-index computations give.

Each fast path is compared with the plain computation it replaces, array for array: the search of
a few query rows with the corpus cut to their columns, the kept rows copied in runs, the merge of
sorted pairs, the falling-score order, the exact-title pairs of a few rows, and the neighbour lists
cut to what a finding shows.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp

from rules.duplicates import search
from rules.duplicates.index import _merge_pairs, _rows_and_block
from rules.duplicates.ranking import _falling
from rules.duplicates.rule import _shown_neighbours
from rules.duplicates.text import Document
from rules.duplicates.vectors import Vectoriser


def _corpus(count: int, seed: int = 1) -> tuple[list[Document], sp.csr_matrix]:
    rng = random.Random(seed)
    words = [f"w{n}" for n in range(300)] + ["error", "page", "user", "login", "fails"]
    documents = [
        Document(
            title=" ".join(rng.choice(words[-5:] + words[:20]) for _ in range(rng.randint(2, 5))),
            body=" ".join(rng.choice(words) for _ in range(rng.randint(5, 40))),
        )
        for _ in range(count)
    ]
    # Near-copies, so that pairs tie and score high.
    documents += [Document(d.title, d.body + " again") for d in documents[:40]]
    _, matrix = Vectoriser.fit(documents)
    return documents, matrix


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for left, right in zip(a, b, strict=True):
        assert left.dtype == right.dtype
        assert left.tolist() == right.tolist()


@pytest.mark.parametrize("max_df", [3, 40, 10_000])
def test_a_search_of_a_few_rows_on_the_columns_they_use_is_the_whole_search(
    monkeypatch: pytest.MonkeyPatch, max_df: int
) -> None:
    # A low cap holds common features back (the split product); a high one gives the plain product.
    monkeypatch.setattr(search, "SEARCH_MAX_DF", max_df)
    _, matrix = _corpus(400)
    rows = np.asarray([0, 5, 17, 250, 399, 401, 439], dtype=np.int64)
    queries = matrix[rows]
    restricted = search._top_pairs_split(queries, matrix, search.TOP_K)
    whole = search._top_pairs_split(queries, matrix, search.TOP_K, restrict=False)
    assert len(whole[0]) > len(rows)
    _same(restricted, whole)


def test_the_search_of_query_rows_is_unchanged_by_the_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "SEARCH_MAX_DF", 5)
    documents, matrix = _corpus(300, seed=4)
    rows = np.arange(280, len(documents), dtype=np.int64)
    fast = search.search(matrix, documents, rows)
    original = search._top_pairs_split

    def uncut(queries: sp.csr_matrix, corpus: sp.csr_matrix, top_k: int) -> tuple[np.ndarray, ...]:
        return original(queries, corpus, top_k, restrict=False)

    monkeypatch.setattr(search, "_top_pairs_split", uncut)
    _same(fast, search.search(matrix, documents, rows))


def test_exact_title_pairs_of_some_rows_are_those_of_all_rows_touching_them() -> None:
    rng = random.Random(2)
    documents = [Document(rng.choice(["a b", "c d", "", "e f", "g"]), "") for _ in range(200)]
    rows = [3, 50, 51, 199]
    every = search._exact_title_pairs(documents)
    assert search._exact_title_pairs(documents, rows) == [pair for pair in every if pair[0] in rows]


def test_kept_rows_and_a_block_are_the_stacked_fancy_index() -> None:
    _, matrix = _corpus(200)
    _, block = _corpus(7, seed=9)
    rng = np.random.default_rng(0)
    for rows in (
        np.arange(matrix.shape[0], dtype=np.int64),
        np.sort(rng.choice(matrix.shape[0], 150, replace=False)).astype(np.int64),
        np.asarray([0, 1, 2, 100, 239], dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    ):
        expected = sp.csr_matrix(sp.vstack([matrix[rows], block], format="csr"))
        got = _rows_and_block(matrix, rows, block)
        assert got.shape == expected.shape
        _same((got.data, got.indices, got.indptr), (expected.data, expected.indices, expected.indptr))


def test_merging_pairs_keeps_the_first_score_as_one_unique_of_all() -> None:
    rng = np.random.default_rng(5)
    base = np.unique(rng.integers(0, 10_000, 3000))
    base_scores = rng.random(len(base)).astype(np.float32)
    extra = np.concatenate([rng.integers(0, 10_000, 200), base[:50], base[:10]])
    extra_scores = rng.random(len(extra)).astype(np.float32)
    merged, first = np.unique(np.concatenate([base, extra]), return_index=True)
    expected = (merged, np.concatenate([base_scores, extra_scores])[first])
    _same(_merge_pairs(base, base_scores, extra, extra_scores), expected)
    # Unsorted pairs (never the case for an index) still merge right, through the slow path.
    _same(_merge_pairs(base[::-1].copy(), base_scores[::-1].copy(), extra, extra_scores)[:1], expected[:1])


def test_falling_order_is_the_stable_argsort_of_negated_scores() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(5000).astype(np.float32) + np.float32(0.01)
    scores[::3] = scores[1]  # ties keep their order
    assert _falling(scores).tolist() == np.argsort(-scores, kind="stable").tolist()
    assert _falling(np.zeros(0, dtype=np.float32)).tolist() == []


def test_shown_neighbours_are_the_findings_sorted_cut_lists() -> None:
    rng = random.Random(11)
    keys = [f"K-{n}" for n in range(60)]
    pairs = sorted({tuple(sorted(rng.sample(range(60), 2))) for _ in range(400)})
    first = np.asarray([a for a, _ in pairs], dtype=np.int64)
    second = np.asarray([b for _, b in pairs], dtype=np.int64)
    scores = np.asarray([rng.choice([0.3, 0.4, 0.5, 0.61]) for _ in pairs], dtype=np.float64)
    ranks = np.asarray([rng.choice([0.5, 0.6, 0.7]) for _ in pairs], dtype=np.float64)
    partner = {keys[n]: (rng.choice([0.3, 0.6, 0.9]), keys[n + 1], 0.0) for n in range(0, 60, 3)}
    share, limit = 0.4, 3
    # The per-candidate lists and the selection a finding lists from them (as ``_finding`` once made it).
    lists: dict[str, list[tuple[float, str, float]]] = defaultdict(list)
    for a, b, score, rank in zip(
        first.tolist(), second.tolist(), scores.tolist(), ranks.tolist(), strict=True
    ):
        if keys[a] in partner:
            lists[keys[a]].append((score, keys[b], rank))
        if keys[b] in partner:
            lists[keys[b]].append((score, keys[a], rank))
    expected = {}
    for key, found in lists.items():
        floor = min(partner[key][0], share)
        kept = sorted((p for p in found if p[0] >= floor), key=lambda p: (-p[2], p[1]))[:limit]
        if kept:
            expected[key] = kept
    assert dict(_shown_neighbours(keys, partner, first, second, scores, ranks, share, limit)) == expected
