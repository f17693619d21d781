"""Shared terms of many reported pairs at once, in numpy: the words each finding names.

``Vectoriser.shared_terms`` explains one pair: it analyses both documents, hashes every shared term
and weighs it with numpy scalars, about 600 us a pair. ``SharedTerms.of_pairs`` gives the same lists
(same weights, same order, same ties) for a batch of pairs, in chunks of pairs:

- a chunk's documents are tokenised once (a description shared by several of them once), each
  token mapped to a vocabulary id in one C-level ``map``; counts of unigrams and of bigrams (pairs of
  consecutive ids) come from one sort of (document, term) keys, as a sparse count matrix;
- the shared terms of all the chunk's pairs are one elementwise product of two row selections of
  that matrix, whose values are the pairs' ``(1 + log count)`` products;
- only the terms some pair shares are hashed (a unigram once per run, a bigram once per chunk),
  and their squared IDF taken per distinct IDF value;
- the candidates of each pair (the best ``limit`` bigrams and ``3 * limit`` unigrams by weight,
  with every term tied with the last) come from one sort of packed integer keys; only they reach
  Python, where ties are broken by the term as the per-pair code does.

Imports numpy and scikit-learn: load it only when the rule runs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.utils import murmurhash3_32

from rules.duplicates.text import Document
from rules.duplicates.vectors import _TERM_HASHER, TOKEN_PATTERN, Vectoriser

_TOKENS = re.compile(TOKEN_PATTERN).findall
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
    hashes = np.fromiter(map(murmurhash3_32, terms), dtype=np.int64, count=len(terms))
    idf = vectoriser.word_idf[np.abs(hashes) % _TERM_HASHER.n_features]
    values = np.unique(idf)
    squares = np.asarray([float(value) ** 2 for value in values], dtype=np.float64)
    result: npt.NDArray[np.float64] = squares[np.searchsorted(values, idf)]
    return result


def _segments(starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The positions ``starts[i] .. starts[i] + lengths[i] - 1`` of every segment, in order."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    positions: npt.NDArray[np.int64] = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return positions


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

    def of_pairs(self, pairs: Sequence[tuple[int, int]], limit: int = LIMIT) -> list[list[str]]:
        """The shared terms of each pair of document rows, in the order of ``pairs``."""
        results: list[list[str]] = [[] for _ in pairs]
        # Pairs with a document in common are explained in one chunk where possible (it is then
        # tokenised once): near-copies of one item sort next to each other by their lower row.
        order = sorted(range(len(pairs)), key=lambda n: min(pairs[n]))
        for start in range(0, len(order), _CHUNK):
            chunk = order[start : start + _CHUNK]
            for number, terms in zip(chunk, self._chunk([pairs[n] for n in chunk], limit), strict=True):
                results[number] = terms
        return results

    def _counts(self, rows: Sequence[int]) -> tuple[sp.csr_matrix, int]:
        """Counts of the word terms of ``rows`` (one matrix row each), as ``1 + log(count)``.

        Returns the matrix and ``bits``: column ``id`` is a unigram, column
        ``(first id + 1) << bits | second id`` a bigram (every id is under ``1 << bits``).
        """
        vocab = self._vocab
        documents = self._documents
        # word_text is "title title body"; its tokens are the title's twice, then the body's (no
        # token spans a space). A description several documents share is tokenised once.
        tokens: list[str] = []
        text_start: dict[str, tuple[int, int]] = {}
        segments: list[int] = []  # (start, length) of each document's title, title, body

        def span(text: str) -> tuple[int, int]:
            found = text_start.get(text)
            if found is None:
                start = len(tokens)
                tokens.extend(_TOKENS(text))
                found = text_start[text] = (start, len(tokens) - start)
            return found

        for row in rows:
            document = documents[row]
            title, body = span(document.title), span(document.body)
            segments.extend((*title, *title, *body))
        ids = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        parts = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
        sequence = ids[_segments(parts[:, 0], parts[:, 1])]
        lengths = parts[:, 1].reshape(-1, 3).sum(axis=1)
        document_of = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        kept = sequence >= self._stop
        sequence, document_of = sequence[kept], document_of[kept]
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
        candidates = self._candidates(pair_of, is_bigram, weight, limit)
        # Python from here on: only the candidates, with their names, unigrams and bigrams apart.
        picked_bigram = is_bigram[candidates]
        unigram, bigram = candidates[~picked_bigram], candidates[picked_bigram]
        unigram_names = list(map(names.__getitem__, column[unigram].tolist()))
        bigram_picked = np.searchsorted(bigram_columns, column[bigram]).tolist()
        bigram_picked_names = list(map(bigram_names.__getitem__, bigram_picked))
        unigram_weights, bigram_weights = (-weight[unigram]).tolist(), (-weight[bigram]).tolist()
        everyone = np.arange(len(pairs) + 1)
        unigram_bounds = np.searchsorted(pair_of[unigram], everyone).tolist()
        bigram_bounds = np.searchsorted(pair_of[bigram], everyone).tolist()
        results: list[list[str]] = []
        for number in range(len(pairs)):
            u0, u1 = unigram_bounds[number], unigram_bounds[number + 1]
            b0, b1 = bigram_bounds[number], bigram_bounds[number + 1]
            # As ``Vectoriser.shared_terms``: the best ``limit`` bigrams and the unigrams not in
            # them, in rank order (ties by the term); at most 2 * limit unigrams are covered by
            # the bigrams, so 3 * limit unigrams always suffice.
            bigrams = sorted(zip(bigram_weights[b0:b1], bigram_picked_names[b0:b1], strict=True))[:limit]
            unigrams = sorted(zip(unigram_weights[u0:u1], unigram_names[u0:u1], strict=True))[: 3 * limit]
            if bigrams:
                covered = {word for _, term in bigrams for word in term.split()}
                ranked = sorted(bigrams + unigrams)
                chosen = [term for _, term in ranked if " " in term or term not in covered]
                results.append(chosen[:limit])
            else:
                results.append([term for _, term in unigrams[:limit]])
        return results

    @staticmethod
    def _candidates(
        pair_of: npt.NDArray[np.int64],
        is_bigram: npt.NDArray[np.bool_],
        weight: npt.NDArray[np.float64],
        limit: int,
    ) -> npt.NDArray[np.int64]:
        """Entries that can be among a pair's best ``limit`` bigrams or ``3 * limit`` unigrams.

        The ``k`` heaviest of each (pair, kind) group and every entry tied with the ``k``-th, as
        positions sorted by pair, kind (unigrams first) and falling weight.
        """
        if not len(weight):
            return np.zeros(0, dtype=np.int64)
        values = np.unique(weight)
        falling = (len(values) - 1) - np.searchsorted(values, weight).astype(np.int64)
        group = pair_of * 2 + is_bigram
        entries = len(weight)
        entry_bits = entries.bit_length()
        rank_bits = len(values).bit_length()
        if entry_bits + rank_bits + int(group.max()).bit_length() <= _KEY_BITS:
            keys = (group << (rank_bits + entry_bits)) | (falling << entry_bits) | np.arange(entries)
            keys.sort()
            order = keys & ((1 << entry_bits) - 1)
        else:
            order = np.lexsort((falling, group))
        group, falling = group[order], falling[order]
        new = np.ones(entries, dtype=bool)
        new[1:] = group[1:] != group[:-1]
        group_start = np.maximum.accumulate(np.where(new, np.arange(entries), 0))
        place = np.arange(entries) - group_start
        k = np.where(group & 1, limit, 3 * limit)
        kth = np.minimum(group_start + k - 1, entries - 1)
        keep = (place < k) | (falling == falling[kth])
        result: npt.NDArray[np.int64] = order[keep]
        return result
