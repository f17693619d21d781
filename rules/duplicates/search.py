"""Candidate search: each item's best-scoring partners by a sparse top-k product, plus exact titles.

A multi-threaded sparse top-k matrix product (``sparse_dot_topn``) finds every item's ``TOP_K``
best partners, never a Python loop over pairs; every pair with identical normalised titles joins
them. A pair of rows travels as one int64 (``low << 32 | high``). Imports numpy, scipy and
sparse_dot_topn: load it only when the rule runs.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul_topn

from rules.duplicates.templates import PENALTY_FLOOR, penalise
from rules.duplicates.text import Document
from rules.duplicates.vectors import FLOAT

logger = logging.getLogger(__name__)

TOP_K = 20
# Threads of the sparse product, and processes of the parallel cleaning in ``index``: the scale
# figures in benchmarks/README.md were measured on 2 cores.
THREADS = 2
PAIR_SHIFT = 32  # a pair of rows is one int64: low << 32 | high


def _top_pairs(
    queries: sp.csr_matrix, corpus: sp.csr_matrix, top_k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(query row, corpus row, score) of each query's ``top_k`` best positive-score matches."""
    if queries.shape[0] == 0 or corpus.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, FLOAT)
    # top_k + 1: a query that is also in the corpus finds itself first.
    product = sp.csr_matrix(
        sp_matmul_topn(queries, corpus.T, top_n=top_k + 1, threshold=0.0, n_threads=THREADS)
    )
    rows = np.repeat(np.arange(product.shape[0], dtype=np.int64), np.diff(product.indptr))
    return rows, product.indices.astype(np.int64), product.data.astype(FLOAT)


def exact_scores(
    matrix: sp.csr_matrix,
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    chunk: int = 20_000,
) -> npt.NDArray[np.float32]:
    """Scores of the row pairs ``(first[i], second[i])`` (dot products of their rows)."""
    scores = np.zeros(len(first), dtype=FLOAT)
    for start in range(0, len(first), chunk):
        stop = start + chunk
        left = matrix[first[start:stop]]
        right = matrix[second[start:stop]]
        scores[start:stop] = np.asarray(left.multiply(right).sum(axis=1)).ravel()
    return np.clip(scores, 0.0, 1.0)


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
    for row, doc in enumerate(documents):
        if doc.title:
            groups[doc.title].append(row)
    wanted = None if rows is None else set(rows)
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
    penalty_floor: float = PENALTY_FLOOR,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Candidate pairs with scores for the query rows (all rows when None) against every row
    (the template penalty checked on pairs scoring at least ``penalty_floor``)."""
    queries = matrix if query_rows is None else matrix[query_rows]
    rows, cols, scores = _top_pairs(queries, matrix, TOP_K)
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
    started, cpu = time.perf_counter(), time.process_time()
    penalised = penalise(documents, *decode_pairs(codes), unique_scores, penalty_floor)
    logger.debug(
        "phase dup-penalty: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    return codes, penalised
