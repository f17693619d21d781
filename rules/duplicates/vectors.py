"""Score vectors: hashed word and character TF-IDF, stacked so one sparse dot product is the score.

Feature hashing needs no vocabulary to hold, and new words need no refit: word 1-2-gram TF-IDF over
the title twice plus the body, and character 4-gram TF-IDF over the title plus the body's first 300
characters. Features used by very many items are dropped (like ``max_df``), words used by one item
only are damped. Each space is L2-normalised and the two are stacked with weight 1/2 each, so the
dot product of two rows is a cosine in 0-1. Imports numpy and scipy: load it only when the rule
runs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from rules.duplicates.hashing import (
    encode,
    hash_spans,
    joined_pairs,
    murmur_packed3,
    murmur_packed4,
    murmurhash3_32,
    spans,
)
from rules.duplicates.stopwords import ENGLISH_STOP_WORDS
from rules.duplicates.text import Document
from rules.duplicates.tokens import TokenTable, token_table

WORD_FEATURES = 2**21
CHAR_FEATURES = 2**20
WORD_WEIGHT = 0.5
CHAR_WEIGHT = 0.5
# Terms only one item uses cannot match anything; at full weight they mostly punish long
# descriptions.
SINGLETON_WEIGHT = 0.3
TOKEN_PATTERN = r"(?u)\b\w[\w.]*\w\b|\b\w\b"
FLOAT = np.float32

# scikit-learn's ``HashingVectorizer`` of words (1-2-grams, English stop words, TOKEN_PATTERN,
# no lowercasing, no alternate sign, no norm) and of ``char_wb`` 4-grams define the features
# (``sklearn_hashers`` builds them, for the tests and ``Vectoriser.shared_terms``); ``word_counts``
# and ``char_counts`` compute their matrices (identical, entry for entry) without scikit-learn.


def raw_counts(docs: Sequence[Document]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Raw word and character n-gram counts of ``docs``, one row each."""
    words, chars, _ = document_counts(docs)
    return words, chars


def document_counts(docs: Sequence[Document]) -> tuple[sp.csr_matrix, sp.csr_matrix, TokenTable]:
    """Raw word and character n-gram counts of ``docs``, and the word tokens found on the way.

    The word counts are ``word_counts`` of each document's ``word_text`` (title, title,
    description): no token spans a space, so its tokens are the title's twice and then the
    description's, and each title is tokenised once.
    """
    if not docs:
        empty = sp.csr_matrix((0, WORD_FEATURES), dtype=FLOAT), sp.csr_matrix((0, CHAR_FEATURES), dtype=FLOAT)
        return *empty, TokenTable.joined([])
    vocabulary = _Vocabulary()
    ids, lengths = _kept_ids([text for doc in docs for text in (doc.title, doc.body)], vocabulary)
    encoded = encode(vocabulary.names)
    hashes = hash_spans(*encoded)
    table = token_table(encoded, hashes, ids, lengths)
    starts = np.stack([table.title_starts, table.title_starts, table.body_starts], axis=1).ravel()
    sizes = np.stack([table.title_lengths, table.title_lengths, table.body_lengths], axis=1).ravel()
    words = _hashed_word_counts(
        encoded, hashes, ids[spans(starts, starts + sizes)[1]], sizes.reshape(-1, 3).sum(axis=1)
    )
    chars = char_counts([d.char_text for d in docs])
    return words, chars, table


# The same tokens as TOKEN_PATTERN (a run of word characters and dots without its leading and
# trailing dots), found without backtracking.
_FAST_TOKENS = re.compile(r"\w+(?:\.+\w+)*+").findall
_STOP_WORDS = ENGLISH_STOP_WORDS


class _Vocabulary(dict[str, int]):
    """Token -> id, new tokens numbered on first sight (``map(vocab.__getitem__, tokens)`` stays in C)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __missing__(self, token: str) -> int:
        number = self[token] = len(self.names)
        self.names.append(token)
        return number


def _kept_ids(
    texts: Sequence[str], vocabulary: _Vocabulary
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The token ids of ``texts`` one after another (numbered in ``vocabulary``), stop words
    dropped, and how many each text kept."""
    lookup = vocabulary.__getitem__
    lengths = np.empty(len(texts), dtype=np.int64)
    flat: list[int] = []
    for number, text in enumerate(texts):
        before = len(flat)
        flat.extend(map(lookup, _FAST_TOKENS(text)))
        lengths[number] = len(flat) - before
    names = vocabulary.names
    # Stop words dropped by id, in numpy: bigrams then join the tokens on either side, as in scikit-learn.
    stop = np.fromiter((name in _STOP_WORDS for name in names), dtype=bool, count=len(names))
    ids = np.array(flat, dtype=np.int64)
    kept = ~stop[ids]
    ends = np.concatenate([[0], np.cumsum(kept)])[np.cumsum(np.concatenate([[0], lengths]))]
    return ids[kept], np.diff(ends)


def word_counts(texts: Sequence[str]) -> sp.csr_matrix:
    """The word hasher's ``transform(texts)`` exactly (same indices, data, canonical CSR), faster.

    The same tokens, stop words and 1-2-grams as scikit-learn's analyser (bigrams of the tokens left
    after dropping stop words), but each distinct token and bigram of the batch is hashed once, and
    bigram strings are built only for distinct pairs of token ids.
    """
    vocabulary = _Vocabulary()
    ids, lengths = _kept_ids(texts, vocabulary)
    encoded = encode(vocabulary.names)
    return _hashed_word_counts(encoded, hash_spans(*encoded), ids, lengths)


def _hashed_word_counts(
    encoded: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    hashes: npt.NDArray[np.int32],
    ids: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
) -> sp.csr_matrix:
    """The word count matrix of documents whose kept token ids are ``ids`` one after another,
    ``lengths`` long each; the ids number names whose UTF-8 ``encode`` is ``encoded`` and whose
    ``murmurhash3_32`` is ``hashes``."""
    n_docs, n_names = len(lengths), len(hashes)
    token_columns = hash_columns(hashes, WORD_FEATURES)
    rows = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    # Bigrams: consecutive tokens of one document.
    follows = np.flatnonzero(rows[1:] == rows[:-1]) if ids.shape[0] > 1 else np.empty(0, np.int64)
    pairs = ids[follows] * max(n_names, 1) + ids[follows + 1]
    distinct, which = np.unique(pairs, return_inverse=True)
    firsts, seconds = np.divmod(distinct, max(n_names, 1))
    # Bigram "a b" hashed from the tokens' bytes: no string per bigram.
    bigram_columns = hash_columns(hash_spans(*joined_pairs(*encoded, firsts, seconds)), WORD_FEATURES)
    return _count_matrix(
        np.concatenate([rows, rows[follows]]),
        np.concatenate([token_columns[ids], bigram_columns[which.ravel()]]),
        n_docs,
        WORD_FEATURES,
    )


_SPACE = ord(" ")
_ASCII_MAX = 0x7F


def hash_columns(hashes: npt.NDArray[np.int32], n_features: int) -> npt.NDArray[np.int64]:
    """FeatureHasher's column of each signed 32-bit hash: ``abs(h) % n_features``.

    In int64, ``abs(-2**31) % n`` equals scikit-learn's special case ``(2**31 - 1 - (n - 1)) % n``.
    """
    columns: npt.NDArray[np.int64] = np.abs(hashes.astype(np.int64)) % n_features
    return columns


def char_counts(texts: Sequence[str]) -> sp.csr_matrix:
    """The character hasher's ``transform(texts)`` exactly (same indices, data, canonical CSR), vectorised.

    scikit-learn's char_wb analyser builds every 4-gram as a Python string and hashes it on its own:
    most of the cost of counting. Its 4-grams are the windows of each space-padded word, so of
    ``" " + " ".join(text.split()) + " "``: the windows of 4 whose 2nd and 3rd characters are not
    spaces (one space separates words; the two between documents stop windows crossing them). A
    padded word of 3 characters (a 1-character word) gives itself once. ASCII windows are hashed in
    numpy; the few with other characters (UTF-8 of more than 4 bytes) one by one, as scikit-learn.
    """
    n_docs = len(texts)
    padded = [" " + " ".join(text.split()) + " " for text in texts]
    joined = "".join(padded)
    # surrogatepass: a lone surrogate reaches murmurhash3_32 and fails there as in scikit-learn.
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ends = np.cumsum([len(p) for p in padded], dtype=np.int64)
    size = codes.shape[0]
    space = codes == _SPACE
    wide = codes > _ASCII_MAX

    # 4-grams: windows starting at i with codes[i+1] and codes[i+2] not spaces.
    starts = (
        np.flatnonzero(~(space[1 : size - 2] | space[2 : size - 1])) if size >= 4 else np.empty(0, np.int64)
    )
    grams_wide = wide[starts] | wide[starts + 1] | wide[starts + 2] | wide[starts + 3]
    ascii_starts = starts[~grams_wide]
    keys = (
        codes[ascii_starts]
        | (codes[ascii_starts + 1] << np.uint32(8))
        | (codes[ascii_starts + 2] << np.uint32(16))
        | (codes[ascii_starts + 3] << np.uint32(24))
    )
    hashes = [murmur_packed4(keys).view(np.int32)]
    positions = [ascii_starts]
    wide_starts = starts[grams_wide]
    hashes.append(murmurhash3_32([joined[i : i + 4] for i in wide_starts.tolist()]))
    positions.append(wide_starts)

    # Padded 1-character words: space, non-space, space.
    singles = (
        np.flatnonzero(space[: size - 2] & ~space[1 : size - 1] & space[2:])
        if size >= 3
        else np.empty(0, np.int64)
    )
    singles_wide = wide[singles + 1]
    ascii_singles = singles[~singles_wide]
    keys = (
        codes[ascii_singles]
        | (codes[ascii_singles + 1] << np.uint32(8))
        | (codes[ascii_singles + 2] << np.uint32(16))
    )
    hashes.append(murmur_packed3(keys).view(np.int32))
    positions.append(ascii_singles)
    wide_singles = singles[singles_wide]
    hashes.append(murmurhash3_32([joined[i : i + 3] for i in wide_singles.tolist()]))
    positions.append(wide_singles)

    columns = hash_columns(np.concatenate(hashes), CHAR_FEATURES)
    document_of = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(ends, prepend=0))
    rows = document_of[np.concatenate(positions)]
    return _count_matrix(rows, columns, n_docs, CHAR_FEATURES)


def _count_matrix(
    rows: npt.NDArray[np.int64], columns: npt.NDArray[np.int64], n_rows: int, n_columns: int
) -> sp.csr_matrix:
    """Canonical CSR (sorted, summed) of one count per (row, column) pair, as FeatureHasher builds.

    One sort of row-major keys is about twice as fast as scipy's COO to CSR and per-row index sort.
    """
    keys = np.sort(rows * n_columns + columns)
    first = np.ones(keys.shape[0], dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=keys.shape[0]).astype(FLOAT)
    unique = keys[starts]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique // n_columns, minlength=n_rows), out=indptr[1:])
    # int32 indices and pointers, as scikit-learn's hasher returns below 2**31 entries.
    index_type = np.int32 if unique.shape[0] <= np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix(
        (counts, (unique % n_columns).astype(index_type), indptr.astype(index_type)),
        shape=(n_rows, n_columns),
    )
    matrix.sum_duplicates()  # already canonical: this only records it, as scikit-learn's matrix does
    return matrix


def _document_frequencies(counts: sp.csr_matrix) -> npt.NDArray[np.int64]:
    frequencies: npt.NDArray[np.int64] = np.bincount(counts.indices, minlength=counts.shape[1])
    return frequencies.astype(np.int64)


# Features in more than this share of items are dropped, like scikit-learn's max_df: they say little
# about duplicates and dominate the cost of the sparse product (which grows with the square of a
# feature's document frequency). Character 4-grams are far more common than words, so they are
# capped lower.
COMMON_SHARE = 0.03
_MIN_COMMON_DF = 50
MAX_WORD_DF = 1000
MAX_CHAR_DF = 300


def _idf(df: npt.NDArray[np.int64], n_docs: int, max_df: int) -> npt.NDArray[np.float32]:
    """Smoothed IDF as scikit-learn's (unseen terms weigh most); zero for too common features."""
    idf: npt.NDArray[np.float32] = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(FLOAT)
    idf[df > min(max(_MIN_COMMON_DF, COMMON_SHARE * n_docs), max_df)] = 0.0
    return idf


def _weigh(
    counts: sp.csr_matrix,
    idf: npt.NDArray[np.float32],
    df: npt.NDArray[np.int64],
    weight: float,
) -> sp.csr_matrix:
    """Sublinear TF times IDF, singletons damped, L2-normalised, scaled by sqrt(weight).

    The scaling makes the dot product of two stacked rows the weighted sum of the per-space cosines.
    """
    matrix = counts.copy()
    matrix.data = (1.0 + np.log(matrix.data)) * idf[matrix.indices]
    matrix.data[df[matrix.indices] <= 1] *= SINGLETON_WEIGHT
    matrix.eliminate_zeros()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    scale = np.repeat((np.sqrt(weight) / norms).astype(FLOAT), np.diff(matrix.indptr))
    matrix.data *= scale
    return matrix


@dataclass(frozen=True, slots=True)
class Vectoriser:
    """Document frequencies and IDF of both feature spaces; turns counts into score vectors."""

    word_idf: npt.NDArray[np.float32]
    char_idf: npt.NDArray[np.float32]
    word_df: npt.NDArray[np.int64]
    char_df: npt.NDArray[np.int64]
    n_docs: int

    @classmethod
    def from_frequencies(
        cls, word_df: npt.NDArray[np.int64], char_df: npt.NDArray[np.int64], n_docs: int
    ) -> Vectoriser:
        """The vectoriser of these document frequencies (its IDF follows from them: a stored index
        keeps only the frequencies)."""
        return cls(
            word_idf=_idf(word_df, n_docs, MAX_WORD_DF),
            char_idf=_idf(char_df, n_docs, MAX_CHAR_DF),
            word_df=word_df,
            char_df=char_df,
            n_docs=n_docs,
        )

    @classmethod
    def fit(cls, docs: Sequence[Document]) -> tuple[Vectoriser, sp.csr_matrix]:
        """Learn IDF from ``docs`` and return it with their vectors."""
        return cls.fit_counts(*raw_counts(docs))

    @classmethod
    def fit_counts(cls, words: sp.csr_matrix, chars: sp.csr_matrix) -> tuple[Vectoriser, sp.csr_matrix]:
        """Learn IDF from raw word and character counts; return it with the documents' vectors."""
        vectoriser = cls.from_frequencies(
            _document_frequencies(words), _document_frequencies(chars), words.shape[0]
        )
        return vectoriser, vectoriser._combine(words, chars)

    def updated(self, removed: sp.csr_matrix, words: sp.csr_matrix, chars: sp.csr_matrix) -> Vectoriser:
        """Document frequencies after dropping the vector rows ``removed`` and adding raw counts.

        New items of one batch that share a new word then weigh it as shared, not as a singleton.
        Features dropped as too common are not in ``removed``; being common, one count more is moot.
        """
        columns = removed.indices
        word_gone = np.bincount(columns[columns < WORD_FEATURES], minlength=WORD_FEATURES)
        char_gone = np.bincount(columns[columns >= WORD_FEATURES] - WORD_FEATURES, minlength=CHAR_FEATURES)
        word_df = np.maximum(self.word_df - word_gone + _document_frequencies(words), 0)
        char_df = np.maximum(self.char_df - char_gone + _document_frequencies(chars), 0)
        return Vectoriser.from_frequencies(
            word_df, char_df, max(self.n_docs - removed.shape[0] + words.shape[0], 1)
        )

    def transform_counts(self, words: sp.csr_matrix, chars: sp.csr_matrix) -> sp.csr_matrix:
        """Vectors from raw word and character counts under this IDF."""
        return self._combine(words, chars)

    def _combine(self, words: sp.csr_matrix, chars: sp.csr_matrix) -> sp.csr_matrix:
        stacked = sp.hstack(
            [
                _weigh(words, self.word_idf, self.word_df, WORD_WEIGHT),
                _weigh(chars, self.char_idf, self.char_df, CHAR_WEIGHT),
            ],
            format="csr",
            dtype=FLOAT,
        )
        return sp.csr_matrix(stacked)

    def shared_terms(self, first: Document, second: Document, limit: int = 5) -> list[str]:
        """The word terms both documents share, strongest contribution to their score first."""
        from rules.duplicates.sklearn_hashers import TERM_HASHER, WORD_ANALYZER

        terms_a = Counter(WORD_ANALYZER(first.word_text))
        terms_b = Counter(WORD_ANALYZER(second.word_text))
        shared = sorted(set(terms_a) & set(terms_b))
        if not shared:
            return []
        indices = sp.csr_matrix(TERM_HASHER.transform([[t] for t in shared])).indices
        idf = self.word_idf[indices]
        weight = [
            (1 + np.log(terms_a[t])) * (1 + np.log(terms_b[t])) * float(w) ** 2
            for t, w in zip(shared, idf, strict=True)
        ]
        ranked = [t for _, t in sorted(zip(weight, shared, strict=True), key=lambda p: (-p[0], p[1]))]
        # A shared bigram says more than its two words; show it instead of them.
        bigrams = [term for term in ranked if " " in term][:limit]
        covered = {word for term in bigrams for word in term.split()}
        chosen = [t for t in ranked if (t in bigrams) or (" " not in t and t not in covered)]
        chosen = chosen[:limit]
        return chosen
