"""Shared terms of many reported pairs at once: each document analysed once, each term hashed once.

``Vectoriser.shared_terms`` explains one pair: it analyses both documents, hashes every shared term
and weighs it with numpy scalars, about 600 us a pair, 64 s of a 100k-item duplicate-heavy scan.
``SharedTerms`` gives the same lists (same weights, same order, same ties) for a batch of pairs:
a document's terms become a sorted array of term ids and counts the first time a pair needs it,
a term's hash column and squared IDF are looked up once per run, and a pair's shared terms come
from an array intersection. Imports numpy and scikit-learn: load it only when the rule runs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

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
# Documents analysed between two hashing calls (one FeatureHasher call for the new terms of them all).
_CHUNK = 2_000
_Terms = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]


class SharedTerms:
    """``Vectoriser.shared_terms`` for many pairs of one index's documents."""

    def __init__(self, vectoriser: Vectoriser, documents: Sequence[Document]) -> None:
        self._vectoriser = vectoriser
        self._documents = documents
        self._id_of: dict[str, int] = {}
        self._names: list[str] = []
        self._bigram: list[bool] = []
        self._idf2: npt.NDArray[np.float64] = np.zeros(0)
        # 1 + np.log(count), as the scalar expression computes it, by count.
        self._log: npt.NDArray[np.float64] = np.zeros(1)
        self._rows: dict[int, _Terms] = {}

    def _log_table(self, top: int) -> None:
        if top < len(self._log):
            return
        size = max(top + 1, 2 * len(self._log))
        # np.log of one Python int at a time: the exact values the per-pair code multiplied.
        extra = [float(1 + np.log(count)) for count in range(len(self._log), size)]
        self._log = np.concatenate([self._log, np.asarray(extra, dtype=np.float64)])

    def prepare(self, rows: Iterable[int]) -> None:
        """Analyse the documents of ``rows`` not analysed yet."""
        wanted = [row for row in dict.fromkeys(rows) if row not in self._rows]
        for start in range(0, len(wanted), _CHUNK):
            self._analyse(wanted[start : start + _CHUNK])

    def _analyse(self, rows: Sequence[int]) -> None:
        first_new = len(self._names)
        id_of, names, bigram = self._id_of, self._names, self._bigram
        top = 0
        for row in rows:
            counts = word_terms(self._documents[row].word_text)
            ids = [id_of.get(term, -1) for term in counts]
            if -1 in ids:
                for position, term in enumerate(counts):
                    if ids[position] == -1:
                        ids[position] = id_of[term] = len(names)
                        names.append(term)
                        bigram.append(" " in term)
            values = list(counts.values())
            if values:
                top = max(top, max(values))
            id_array = np.asarray(ids, dtype=np.int32)
            order = np.argsort(id_array)
            self._rows[row] = (id_array[order], np.asarray(values, dtype=np.int64)[order])
        self._log_table(top)
        new_terms = names[first_new:]
        if new_terms:
            columns = sp.csr_matrix(_TERM_HASHER.transform([[t] for t in new_terms])).indices
            idf = self._vectoriser.word_idf[columns]
            # float(w) ** 2 per term, as the per-pair code squares it.
            squared = np.asarray([float(w) ** 2 for w in idf], dtype=np.float64)
            self._idf2 = np.concatenate([self._idf2, squared])

    def release(self, row: int) -> None:
        """Forget a document's terms (no later pair needs them)."""
        self._rows.pop(row, None)

    def of(self, first: int, second: int, limit: int = LIMIT) -> list[str]:
        """The word terms documents ``first`` and ``second`` share, strongest first (analysed on demand)."""
        self.prepare((first, second))
        ids_a, counts_a = self._rows[first]
        ids_b, counts_b = self._rows[second]
        common, in_a, in_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        if not len(common):
            return []
        weights = self._log[counts_a[in_a]] * self._log[counts_b[in_b]] * self._idf2[common]
        is_bigram = np.asarray([self._bigram[t] for t in common.tolist()], dtype=bool)
        bigrams = self._top(common[is_bigram], weights[is_bigram], limit)
        # Chosen: the best ``limit`` bigrams and unigrams not in them, in rank order; at most
        # 2 * limit unigrams are covered by the bigrams, so 3 * limit unigrams always suffice.
        unigrams = self._top(common[~is_bigram], weights[~is_bigram], 3 * limit)
        covered = {word for _, term in bigrams for word in term.split()}
        ranked = sorted(bigrams + unigrams)
        chosen = [term for _, term in ranked if " " in term or term not in covered]
        return chosen[:limit]

    def _top(
        self, ids: npt.NDArray[np.int32], weights: npt.NDArray[np.float64], k: int
    ) -> list[tuple[float, str]]:
        """The ``k`` best terms by (-weight, term) as (-weight, term), ties resolved by the term."""
        if len(ids) > k:
            kth = -np.partition(-weights, k - 1)[k - 1]
            keep = weights >= kth  # every term tied with the k-th competes for the last places
            ids, weights = ids[keep], weights[keep]
        names = self._names
        pairs = sorted(zip((-weights).tolist(), [names[t] for t in ids.tolist()], strict=True))
        return pairs[:k]
