"""Shared terms of many reported pairs at once, in numpy: the words each finding names.

``Vectoriser.shared_terms`` explains one pair: it analyses both documents, hashes every shared term
and weighs it with numpy scalars, about 600 us a pair. ``SharedTerms.of_pairs`` gives the same lists
(same weights, same order, same ties) for a batch of pairs, in chunks of pairs that keep the
near-copies of one item together (connected components of the pairs' documents):

- each title and description is tokenised once per run (a description several documents share,
  once), each token mapped to a vocabulary id in one C-level ``map``; a chunk's counts of unigrams
  and of bigrams (pairs of consecutive ids) come from one sort of (document, term) keys, as a
  sparse count matrix of ``1 + log(count)``;
- the shared terms of all the chunk's pairs are one elementwise product of two row selections of
  that matrix; only terms some pair shares are hashed (``murmurhash3_32``, the term hasher's
  function; a unigram once per run, a bigram once per chunk) and their squared IDF taken per
  distinct IDF value;
- each pair's candidates (its best ``limit`` bigrams and ``3 * limit`` unigrams by weight, with
  every term tied with the last) come from one sort of packed integer keys; ranking their names
  once per chunk breaks ties by the term as the per-pair code does, and two more sorts pick the
  bigrams, the unigrams none of them holds, and the first ``limit``.

A batch of at least ``PARALLEL_MIN_PAIRS`` pairs can be split over forked workers (slices of whole
chunks; the terms come back pickled). Imports numpy and scipy: load it only when the rule
runs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from rules.duplicates.hashing import murmurhash3_32
from rules.duplicates.search import THREADS
from rules.duplicates.stopwords import ENGLISH_STOP_WORDS
from rules.duplicates.text import Document
from rules.duplicates.vectors import TOKEN_PATTERN, WORD_FEATURES, Vectoriser

_TOKENS = re.compile(TOKEN_PATTERN).findall
# The same tokens as TOKEN_PATTERN (``\b\w[\w.]*\w\b|\b\w\b``: a run of word characters and dots
# without its leading and trailing dots), found without backtracking: about a third faster.
_FAST_TOKENS = re.compile(r"\w+(?:\.+\w+)*+").findall
_STOP_WORDS = ENGLISH_STOP_WORDS


def word_terms(text: str) -> Counter[str]:
    """The word 1- and 2-grams of ``text`` with their counts, as the word hasher's analyser finds them.

    The same tokens, stop words and bigrams (of the tokens left after dropping stop words) as
    scikit-learn's analyser, which builds them in a slower Python loop.
    """
    tokens = [token for token in _TOKENS(text) if token not in _STOP_WORDS]
    counts = Counter(tokens)
    counts.update([f"{a} {b}" for a, b in pairwise(tokens)])
    return counts


LIMIT = 5  # terms shown per finding, as ``Vectoriser.shared_terms``
# Pairs explained together: their documents are tokenised and their terms sorted in one batch
# (a few MB of arrays each).
_CHUNK = 2_000
# Keys packed into one int64 (numpy sorts int64 values far faster than it argsorts anything);
# wider keys fall back to a lexsort.
_KEY_BITS = 62


class _Vocabulary(dict[str, int]):
    """Token -> id, new tokens numbered on first sight (``map(vocab.__getitem__, tokens)`` stays in C)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__((name, number) for number, name in enumerate(names))
        self.names = names

    def __missing__(self, token: str) -> int:
        number = self[token] = len(self.names)
        self.names.append(token)
        return number


def _squared_idf(vectoriser: Vectoriser, terms: Sequence[str]) -> npt.NDArray[np.float64]:
    """``float(idf) ** 2`` of each term's hash column, as the per-pair code squares it.

    The column is the term hasher's (``FeatureHasher``, no alternate sign: ``abs(murmurhash3_32)``
    modulo the width), computed without its per-term generators, about 7 times faster.
    """
    if not terms:
        return np.zeros(0)
    hashes = murmurhash3_32(terms).astype(np.int64)
    idf = vectoriser.word_idf[np.abs(hashes) % WORD_FEATURES]
    values = np.unique(idf)
    squares = np.asarray([float(value) ** 2 for value in values], dtype=np.float64)
    result: npt.NDArray[np.float64] = squares[np.searchsorted(values, idf)]
    return result


def _runs(
    major: npt.NDArray[np.int64], minor: npt.NDArray[np.int64], minor_bits: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The distinct (major, minor) pairs sorted, and how often each occurs."""
    if not len(major) or int(major.max()).bit_length() + minor_bits <= _KEY_BITS:
        keys = (major << minor_bits) | minor
        keys.sort()
        major, minor = keys >> minor_bits, keys & ((1 << minor_bits) - 1)
    else:
        order = np.lexsort((minor, major))
        major, minor = major[order], minor[order]
    first = np.ones(len(major), dtype=bool)
    first[1:] = (major[1:] != major[:-1]) | (minor[1:] != minor[:-1])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(major)))
    return major[starts], minor[starts], counts


# Pairs explained in forked workers from this many on (under it the fork costs more than it saves).
PARALLEL_MIN_PAIRS = 20_000
# What forked workers explain from: set before the pool forks, so they share it copy-on-write.
_JOB: tuple[Vectoriser, Sequence[Document], Sequence[tuple[int, int]], int] | None = None


def workers() -> int:
    """Processes for a big batch: as many as the search's threads and the CPUs allow (the cleaning
    in ``index`` uses as many); 1 where processes cannot fork (spawned ones would re-import all)."""
    if "fork" not in mp.get_all_start_methods():
        return 1
    return max(1, min(THREADS, os.cpu_count() or 1))


def _explain_slice(bounds: tuple[int, int]) -> tuple[list[list[str]], float]:
    """In a forked worker: the shared terms of the job's pairs ``start:stop``, and the CPU time spent."""
    assert _JOB is not None, "set by SharedTerms.of_pairs before the pool forks"
    vectoriser, documents, pairs, limit = _JOB
    cpu = time.process_time()
    explained = SharedTerms(vectoriser, documents)._in_chunks(pairs[bounds[0] : bounds[1]], limit)
    return explained, time.process_time() - cpu


def components(ends: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.int64]:
    """Each of ``size`` nodes' connected component under the edges ``ends`` (n x 2), named by its
    smallest node: labels ordered as scipy's ``connected_components`` numbers them (by the
    smallest node), without importing ``scipy.sparse.csgraph`` (it loads scipy.linalg, a tenth of
    a second of every scan). Each round lowers both ends of every edge to the smaller of their
    labels, then follows labels to their own labels (pointer jumping).
    """
    label = np.arange(size, dtype=np.int64)
    first, second = ends[:, 0], ends[:, 1]
    while True:
        low = np.minimum(label[first], label[second])
        lowered = label.copy()
        np.minimum.at(lowered, first, low)
        np.minimum.at(lowered, second, low)
        lowered = lowered[lowered]
        if np.array_equal(lowered, label):
            return label
        label = lowered


class SharedTerms:
    """``Vectoriser.shared_terms`` for many pairs of one index's documents."""

    def __init__(self, vectoriser: Vectoriser, documents: Sequence[Document]) -> None:
        self._vectoriser = vectoriser
        self._documents = documents
        # Stop words take the first ids: a document's ids under ``_stop`` are dropped in one mask.
        self._vocab = _Vocabulary(sorted(_STOP_WORDS))
        self._stop = len(self._vocab.names)
        # Squared IDF of each unigram id hashed so far (stop words never count).
        self._unigram_idf2: npt.NDArray[np.float64] = np.zeros(self._stop)
        # 1 + np.log(count), as the scalar expression computes it, by count.
        self._log: npt.NDArray[np.float64] = np.zeros(1)
        # CPU time forked workers spent in the last ``of_pairs`` (this process's own is not in it).
        self.worker_cpu = 0.0
        # The ids (stop words dropped) of each title and description tokenised so far.
        self._texts: dict[str, npt.NDArray[np.int64]] = {}

    def _log_table(self, top: int) -> None:
        if top < len(self._log):
            return
        size = max(top + 1, 2 * len(self._log))
        # np.log of one Python int at a time: the exact values the per-pair code multiplied.
        extra = [float(1 + np.log(count)) for count in range(len(self._log), size)]
        self._log = np.concatenate([self._log, np.asarray(extra, dtype=np.float64)])

    def of(self, first: int, second: int, limit: int = LIMIT) -> list[str]:
        """The word terms documents ``first`` and ``second`` share, strongest first."""
        return self.of_pairs([(first, second)], limit)[0]

    def of_pairs(
        self, pairs: Sequence[tuple[int, int]], limit: int = LIMIT, *, workers: int = 1
    ) -> list[list[str]]:
        """The shared terms of each pair of document rows, in the order of ``pairs``.

        With ``workers`` > 1 and at least ``PARALLEL_MIN_PAIRS`` pairs, forked processes explain
        slices of them (the same lists: a pair's terms depend on nothing else).
        """
        results: list[list[str]] = [[] for _ in pairs]
        if not pairs:
            return results
        # Pairs with a document in common go to one chunk where possible (its terms are then
        # counted and its bigrams hashed once): pairs in order of their connected component of
        # documents (near-copies of one item), then of their lower row.
        ends = np.asarray(pairs, dtype=np.int64)
        component = components(ends, int(ends.max()) + 1)
        order = np.lexsort((ends.min(axis=1), component[ends[:, 0]])).tolist()
        ordered = [pairs[n] for n in order]
        self.worker_cpu = 0.0
        if workers > 1 and len(pairs) >= PARALLEL_MIN_PAIRS and "fork" in mp.get_all_start_methods():
            # Whole chunks per slice, a few slices per worker (they finish at different times);
            # the workers read the pairs from the forked memory, only the terms come back.
            step = _CHUNK * max(1, -(-len(order) // (_CHUNK * 3 * workers)))
            global _JOB
            _JOB = (self._vectoriser, self._documents, ordered, limit)
            try:
                context = mp.get_context("fork")
                with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                    slices = [(start, start + step) for start in range(0, len(order), step)]
                    explained: list[list[str]] = []
                    for part, cpu in pool.map(_explain_slice, slices):
                        explained += part
                        self.worker_cpu += cpu
            finally:
                _JOB = None
        else:
            explained = self._in_chunks(ordered, limit)
        for number, terms in zip(order, explained, strict=True):
            results[number] = terms
        return results

    def _in_chunks(self, pairs: Sequence[tuple[int, int]], limit: int) -> list[list[str]]:
        """The shared terms of ``pairs`` (in an order that keeps near-copies together), chunk by chunk."""
        results: list[list[str]] = []
        for start in range(0, len(pairs), _CHUNK):
            results += self._chunk(pairs[start : start + _CHUNK], limit)
        return results

    def _counts(self, rows: Sequence[int]) -> tuple[sp.csr_matrix, int]:
        """Counts of the word terms of ``rows`` (one matrix row each), as ``1 + log(count)``.

        Returns the matrix and ``bits``: column ``id`` is a unigram, column
        ``(first id + 1) << bits | second id`` a bigram (every id is under ``1 << bits``).
        """
        vocab, documents, known = self._vocab, self._documents, self._texts
        # word_text is "title title body"; its tokens are the title's twice, then the body's (no
        # token spans a space), so each title and description is tokenised once per run (a
        # description several documents share, once) and kept as its ids without stop words.
        fresh = dict.fromkeys(
            text for row in rows for text in (documents[row].title, documents[row].body) if text not in known
        )
        if fresh:
            tokens: list[str] = []
            ends: list[int] = []
            for text in fresh:
                tokens.extend(_FAST_TOKENS(text))
                ends.append(len(tokens))
            ids = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
            kept = ids >= self._stop
            # Where each text's ids end once stop words are dropped.
            kept_ends = np.concatenate([[0], np.cumsum(kept)])[ends]
            ids = ids[kept]
            begin = 0
            for text, end in zip(fresh, kept_ends.tolist(), strict=True):
                known[text] = ids[begin:end]
                begin = end
        pieces: list[npt.NDArray[np.int64]] = []
        lengths: list[int] = []
        for row in rows:
            document = documents[row]
            title, body = known[document.title], known[document.body]
            pieces += (title, title, body)
            lengths.append(2 * len(title) + len(body))
        sequence = np.concatenate(pieces)
        document_of = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        # Bigrams: consecutive kept tokens of one document.
        same = document_of[:-1] == document_of[1:]
        bits = len(vocab.names).bit_length()
        bigrams = ((sequence[:-1][same] + 1) << bits) | sequence[1:][same]
        columns = np.concatenate([sequence, bigrams])
        document_of = np.concatenate([document_of, document_of[:-1][same]])
        width = (len(vocab.names) + 1) << bits
        document_of, columns, counts = _runs(document_of, columns, width.bit_length())
        if len(counts):
            self._log_table(int(counts.max()))
        matrix = sp.csr_matrix(
            (self._log[counts], columns, np.searchsorted(document_of, np.arange(len(rows) + 1))),
            shape=(len(rows), width),
        )
        matrix.has_sorted_indices = True  # sorted by (document, column), no repeats
        return matrix, bits

    def _chunk(self, pairs: Sequence[tuple[int, int]], limit: int) -> list[list[str]]:
        rows = list(dict.fromkeys(row for pair in pairs for row in pair))
        position = {row: number for number, row in enumerate(rows)}
        counts, bits = self._counts(rows)
        names = self._vocab.names
        if len(self._unigram_idf2) < len(names):
            new = names[len(self._unigram_idf2) :]
            self._unigram_idf2 = np.concatenate([self._unigram_idf2, _squared_idf(self._vectoriser, new)])
        first = counts[[position[a] for a, _ in pairs]]
        second = counts[[position[b] for _, b in pairs]]
        shared = sp.csr_matrix(first.multiply(second))  # (1 + log a) * (1 + log b) per shared term
        shared.sort_indices()
        pair_of = np.repeat(np.arange(len(pairs), dtype=np.int64), np.diff(shared.indptr))
        column = shared.indices.astype(np.int64)
        is_bigram = column >= (1 << bits)
        # Squared IDF per entry: unigrams from the run's table, the chunk's shared bigrams hashed.
        idf2 = np.empty(len(column))
        idf2[~is_bigram] = self._unigram_idf2[column[~is_bigram]]
        bigram_columns = np.unique(column[is_bigram])
        low = (1 << bits) - 1
        bigram_names = [
            f"{names[a]} {names[b]}"
            for a, b in zip(
                ((bigram_columns >> bits) - 1).tolist(), (bigram_columns & low).tolist(), strict=True
            )
        ]
        squared = _squared_idf(self._vectoriser, bigram_names)
        idf2[is_bigram] = squared[np.searchsorted(bigram_columns, column[is_bigram])]
        weight = shared.data * idf2
        values = np.unique(weight)
        falling = (len(values) - 1) - np.searchsorted(values, weight).astype(np.int64)
        group = pair_of * 2 + is_bigram  # a pair's unigrams, then its bigrams
        picked = self._candidates(group, falling, limit)
        # The candidates' names, ranked among themselves as Python orders strings (ties of weight
        # go to the smaller term).
        group, falling, column = group[picked], falling[picked], column[picked]
        bigram = (group & 1).astype(bool)
        unigram_names = list(map(names.__getitem__, column[~bigram].tolist()))
        bigram_at = np.searchsorted(bigram_columns, column[bigram]).tolist()
        picked_bigram_names = list(map(bigram_names.__getitem__, bigram_at))
        distinct = sorted({*unigram_names, *picked_bigram_names})
        rank_of = {name: rank for rank, name in enumerate(distinct)}
        rank = np.empty(len(picked), dtype=np.int64)
        rank[~bigram] = np.fromiter(map(rank_of.__getitem__, unigram_names), np.int64, len(unigram_names))
        rank[bigram] = np.fromiter(map(rank_of.__getitem__, picked_bigram_names), np.int64, len(bigram_at))
        # The best ``limit`` bigrams and ``3 * limit`` unigrams of each pair by (-weight, term).
        order = _order(group, falling, rank)
        group, falling, column, rank = group[order], falling[order], column[order], rank[order]
        best = _place(group) < np.where(group & 1, limit, 3 * limit)
        group, falling, column, rank = group[best], falling[best], column[best], rank[best]
        # As ``Vectoriser.shared_terms``: those bigrams and the unigrams none of them holds, in rank
        # order, the first ``limit``; at most 2 * limit unigrams are covered by the bigrams, so
        # 3 * limit unigrams always suffice.
        pair = group >> 1
        bigram = (group & 1).astype(bool)
        low = (1 << bits) - 1
        words = np.concatenate(
            [
                (pair[bigram] << 32) | ((column[bigram] >> bits) - 1),
                (pair[bigram] << 32) | (column[bigram] & low),
            ]
        )
        shown = bigram | ~np.isin((pair << 32) | column, words)
        pair, falling, rank = pair[shown], falling[shown], rank[shown]
        order = _order(pair, falling, rank)
        pair, rank = pair[order], rank[order]
        first = _place(pair) < limit
        pair, rank = pair[first], rank[first]
        terms = list(map(distinct.__getitem__, rank.tolist()))
        bounds = np.searchsorted(pair, np.arange(len(pairs) + 1)).tolist()
        return [terms[bounds[number] : bounds[number + 1]] for number in range(len(pairs))]

    @staticmethod
    def _candidates(
        group: npt.NDArray[np.int64], falling: npt.NDArray[np.int64], limit: int
    ) -> npt.NDArray[np.int64]:
        """Entries that can be among a pair's best ``limit`` bigrams or ``3 * limit`` unigrams.

        ``group`` is pair * 2 (+ 1 for a bigram), ``falling`` the rank of falling weight: the ``k``
        heaviest of each group and every entry tied with the ``k``-th.
        """
        order = _order(group, falling)
        group, falling = group[order], falling[order]
        place = _place(group)
        k = np.where(group & 1, limit, 3 * limit)
        kth = np.minimum(np.arange(len(group)) - place + k - 1, len(group) - 1)
        keep = (place < k) | (falling == falling[kth])
        result: npt.NDArray[np.int64] = order[keep]
        return result


def _order(*keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Positions sorting non-negative ``keys`` lexicographically (the first most significant).

    Packed with the position into one int64 when they fit: numpy sorts int64 values far faster than
    it argsorts anything.
    """
    size = len(keys[0])
    if not size:
        return np.zeros(0, dtype=np.int64)
    widths = [int(key.max()).bit_length() for key in keys]
    index_bits = size.bit_length()
    if sum(widths) + index_bits > _KEY_BITS:
        return np.lexsort(keys[::-1])
    packed = np.zeros(size, dtype=np.int64)
    for key, width in zip(keys, widths, strict=True):
        packed = (packed << width) | key
    packed = (packed << index_bits) | np.arange(size)
    packed.sort()
    positions: npt.NDArray[np.int64] = packed & ((1 << index_bits) - 1)
    return positions


def _place(group: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each entry's place in its run of equal values of the sorted ``group`` (0 for the first)."""
    size = len(group)
    new = np.ones(size, dtype=bool)
    new[1:] = group[1:] != group[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(size), 0))
    place: npt.NDArray[np.int64] = np.arange(size) - start
    return place
