"""Candidate search: each item's best-scoring partners by a sparse top-k product, plus exact titles.

A multi-threaded sparse top-k matrix product (``sparse_dot_topn``) finds every item's ``TOP_K``
best partners, never a Python loop over pairs (on big backlogs words used by many items are held
back from the product and added to the candidates' scores, ``SEARCH_MAX_DF``); every pair with identical normalised titles joins
them. A pair of rows travels as one int64 (``low << 32 | high``). Imports numpy, scipy and
sparse_dot_topn: load it only when the rule runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul_topn, zip_sp_matmul_topn

from rules.duplicates.templates import PENALTY_FLOOR, penalise
from rules.duplicates.text import Document
from rules.duplicates.vectors import FLOAT

logger = logging.getLogger(__name__)

TOP_K = 20
# Threads of the sparse product, and processes of the parallel cleaning in ``index``: the scale
# figures in benchmarks/README.md were measured on 2 cores.
THREADS = 2
PAIR_SHIFT = 32  # a pair of rows is one int64: low << 32 | high
# The process that last ran the product on threads. sparse_dot_topn's threads are OpenMP's, whose
# pool does not survive ``fork``: a forked child (the pipeline runs backlog rules in one, see
# refinebot/rule_fork.py) asking for threads again after its parent used them hangs for ever.
_THREADED_IN: int | None = None


def _threads() -> int:
    """``THREADS``, or 1 in a process forked after its parent ran the product on threads."""
    global _THREADED_IN
    pid = os.getpid()
    if _THREADED_IN not in (None, pid):
        return 1
    _THREADED_IN = pid
    return THREADS


def _top_pairs(
    queries: sp.csr_matrix, corpus: sp.csr_matrix, top_k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(query row, corpus row, score) of each query's ``top_k`` best positive-score matches."""
    if queries.shape[0] == 0 or corpus.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, FLOAT)
    # top_k + 1: a query that is also in the corpus finds itself first.
    product = sp.csr_matrix(
        sp_matmul_topn(queries, corpus.T, top_n=top_k + 1, threshold=0.0, n_threads=_threads())
    )
    rows = np.repeat(np.arange(product.shape[0], dtype=np.int64), np.diff(product.indptr))
    return rows, product.indices.astype(np.int64), product.data.astype(FLOAT)


# The sparse product costs the sum over features of (items using it) squared: a word in 1,000
# items costs a million multiplies, and on a big backlog most of the product's work goes to words
# in a few hundred to a thousand items (at 200k items, words of 300-1,000 items are the generic
# ones: "error", "page", "user"). Such words still score (``vectors.MAX_WORD_DF`` drops only those
# in more than 1,000), but they no longer propose candidates: each item's candidates come from the
# features used by at most this many items (all character 4-grams: ``vectors.MAX_CHAR_DF`` is 300),
# and the common words' share is added to their score afterwards. Backlogs up to about 10k items
# have no such word (3 % of the items is the cap), so their search is the plain product.
SEARCH_MAX_DF = 300
# With common words held back, each item's ``TOP_K`` best candidates by the rest of its features
# are not exactly its best by the whole score: this many times as many are fetched, scored in full,
# and the best ``TOP_K`` kept.
SEARCH_WIDEN = 2


def _keep_entries(matrix: sp.csr_matrix, keep: npt.NDArray[np.bool_]) -> sp.csr_matrix:
    """``matrix`` (same shape) with only the stored entries marked in ``keep``."""
    positions = np.flatnonzero(keep)
    # Kept entries before each row's start: a search of the row starts, not a cumulative sum over
    # every entry (a bool cumsum into int64 was a second at 200k items).
    indptr = np.searchsorted(positions, matrix.indptr).astype(np.int64)
    return sp.csr_matrix((matrix.data[positions], matrix.indices[positions], indptr), shape=matrix.shape)


def _split_columns(matrix: sp.csr_matrix, held: npt.NDArray[np.bool_]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``matrix`` without the columns marked in ``held``, and those columns alone (same shape)."""
    marked = held[matrix.indices]
    return _keep_entries(matrix, ~marked), _keep_entries(matrix, marked)


def _pair_dots(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    chunk: int = 50_000,
) -> npt.NDArray[np.float32]:
    """Dot products of the rows ``left[first[i]]`` and ``right[second[i]]``."""
    dots = np.zeros(len(first), dtype=FLOAT)
    for start in range(0, len(first), chunk):
        stop = start + chunk
        product = left[first[start:stop]].multiply(right[second[start:stop]])
        dots[start:stop] = np.asarray(product.sum(axis=1)).ravel()
    return dots


def _best_per_row(
    shape: tuple[int, int],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    keep: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(row, col, score) of each row's ``keep`` best scores in a ``shape`` matrix; ``rows`` must be
    sorted."""
    n_rows = shape[0]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    scored = sp.csr_matrix((scores, cols, indptr), shape=shape)
    # sparse_dot_topn's merge of per-block results is a per-row top-n selection in C++: ten
    # times faster than a lexsort of the pairs.
    best = sp.csr_matrix(zip_sp_matmul_topn(keep, [scored]))
    best_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(best.indptr))
    return best_rows, best.indices.astype(np.int64), best.data.astype(FLOAT)


def _top_pairs_split(
    queries: sp.csr_matrix, corpus: sp.csr_matrix, top_k: int, *, restrict: bool = True
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """``_top_pairs`` with the features used by more than ``SEARCH_MAX_DF`` corpus rows held back
    from the product (see ``SEARCH_MAX_DF``); the plain product when there is none.

    When ``queries`` are a few rows (an update searches only new or changed items), the corpus is
    first cut to the columns the queries use (``restrict``): a query's products and dot products
    read no other column, so the results are the same entries, scores and order, but the corpus
    is transposed and split at the size of those columns' postings, not of the whole index (that
    was most of a second scan's search at 200k items).
    """
    if queries is corpus or not restrict:
        common = np.bincount(corpus.indices, minlength=corpus.shape[1]) > SEARCH_MAX_DF
        anywhere = bool(common.any())
    else:
        used = np.zeros(corpus.shape[1], dtype=bool)
        used[queries.indices] = True
        whole, corpus = corpus, _keep_entries(corpus, used[corpus.indices])
        # The corpus's document frequency of every column the queries use (the others are moot).
        common = np.bincount(corpus.indices, minlength=corpus.shape[1]) > SEARCH_MAX_DF
        # Whether the whole corpus has a common column decides the path, as without the cut (only
        # counted in full when none of the queries' columns is common).
        anywhere = bool(common.any()) or bool(
            (np.bincount(whole.indices, minlength=whole.shape[1]) > SEARCH_MAX_DF).any()
        )
        del whole
    if not anywhere:
        return _top_pairs(queries, corpus, top_k)
    search_corpus, common_corpus = _split_columns(corpus, common)
    if queries is corpus:
        search_queries, common_queries = search_corpus, common_corpus
    else:
        search_queries, common_queries = _split_columns(queries, common)
    wide = (top_k + 1) * SEARCH_WIDEN - 1
    rows, cols, partial = _top_pairs(search_queries, search_corpus, wide)
    scores = partial + _pair_dots(common_queries, common_corpus, rows, cols)
    if not len(rows):
        return rows, cols, scores
    return _best_per_row((queries.shape[0], corpus.shape[0]), rows, cols, scores, top_k + 1)


def exact_scores(
    matrix: sp.csr_matrix,
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    chunk: int = 20_000,
) -> npt.NDArray[np.float32]:
    """Scores of the row pairs ``(first[i], second[i])`` (dot products of their rows)."""
    return np.clip(_pair_dots(matrix, matrix, first, second, chunk), 0.0, 1.0)


def unique_pairs(
    first: npt.NDArray[np.int64], second: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Unordered pairs (self-pairs dropped) encoded as int64, each once with its score."""
    low, high = np.minimum(first, second), np.maximum(first, second)
    keep = low != high
    codes = (low[keep] << PAIR_SHIFT) | high[keep]
    unique, where = np.unique(codes, return_index=True)
    return unique, np.clip(scores[keep][where], 0.0, 1.0)


def decode_pairs(
    codes: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The (low, high) rows of encoded pairs."""
    return codes >> PAIR_SHIFT, codes & ((1 << PAIR_SHIFT) - 1)


def _exact_title_pairs(
    documents: Sequence[Document], rows: Iterable[int] | None = None
) -> list[tuple[int, int]]:
    """Row pairs with identical non-empty normalised titles (all pairs, or those touching
    ``rows``)."""
    groups: dict[str, list[int]] = defaultdict(list)
    wanted = None if rows is None else set(rows)
    if wanted is None:
        for row, doc in enumerate(documents):
            if doc.title:
                groups[doc.title].append(row)
    else:
        # Only the groups of the wanted rows' titles can give a pair (in the same order: a group's
        # place is where its title first appears).
        titles = {title for row in wanted if (title := documents[row].title)}
        for row, doc in enumerate(documents):
            if doc.title in titles:
                groups[doc.title].append(row)
    pairs: list[tuple[int, int]] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        # Very large identical-title groups are templates or bursts; pair each member with a few
        # neighbours.
        for position, row in enumerate(members):
            if wanted is not None and row not in wanted:
                continue
            for other in members[max(0, position - TOP_K) : position + TOP_K + 1]:
                if other != row:
                    pairs.append((row, other))
    return pairs


def search(
    matrix: sp.csr_matrix,
    documents: Sequence[Document],
    query_rows: npt.NDArray[np.int64] | None,
    penalty_floor: float | None = PENALTY_FLOOR,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Candidate pairs with scores for the query rows (all rows when None) against every row
    (the template penalty checked on pairs scoring at least ``penalty_floor``; None: not applied,
    the caller penalises them with other pairs in one call)."""
    queries = matrix if query_rows is None else matrix[query_rows]
    rows, cols, scores = _top_pairs_split(queries, matrix, TOP_K)
    if query_rows is not None:
        rows = query_rows[rows]
    exact = _exact_title_pairs(documents, None if query_rows is None else query_rows.tolist())
    if exact:
        extra = np.asarray(exact, dtype=np.int64)
        extra_scores = exact_scores(matrix, extra[:, 0], extra[:, 1])
        rows = np.concatenate([rows, extra[:, 0]])
        cols = np.concatenate([cols, extra[:, 1]])
        scores = np.concatenate([scores, extra_scores])
    codes, unique_scores = unique_pairs(rows, cols, scores)
    if penalty_floor is None:
        return codes, unique_scores
    started, cpu = time.perf_counter(), time.process_time()
    penalised = penalise(documents, *decode_pairs(codes), unique_scores, penalty_floor)
    logger.debug(
        "phase dup-penalty: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    return codes, penalised
