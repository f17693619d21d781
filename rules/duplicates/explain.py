"""Shared terms of many reported pairs at once, in numpy: the words each finding names.

``Vectoriser.shared_terms`` explains one pair: it analyses both documents, hashes every shared term
and weighs it with numpy scalars, about 600 us a pair. ``SharedTerms.of_pairs`` gives the same lists
(same weights, same order, same ties) for a batch of pairs, in chunks of pairs that keep the
near-copies of one item together (connected components of the pairs' documents):

- each title and description is tokenised once per run (a description several documents share,
  once). With the index's token table (``tokens.TokenTable``: what the word counting found, for an
  index built in this run) nothing is tokenised again: table ids are matched to ids here by their
  names' keys and bytes in numpy, and only new names are spelled. Otherwise a chunk's new texts go
  in one string, split on a translate table (``_SPACED``), each piece mapped to a vocabulary id in
  one C-level ``map`` and to its token in one numpy gather. The ids of all texts are kept in one
  array;
- bigrams' squared IDFs are kept for the run as they are hashed (``_bigram_idf2``);
- pairs of copies with one description (a cloned ticket, a title suffix) take that description's
  terms from one list per description, weighed and sorted once; only the terms their titles touch
  are worked out per pair (``_same_body_candidates``);
- other pairs: a chunk's counts of unigrams and bigrams come from one sort of (document, term)
  keys, as a sparse matrix of ``1 + log(count)``, and the shared terms of all its pairs are one
  elementwise product of two row selections of it; each pair's candidates are its best ``limit``
  bigrams and ``3 * limit`` unigrams by weight, with every term tied with the last;
- terms are hashed as the term hasher does (``murmurhash3_32``; a bigram from its words' bytes),
  their squared IDF taken per distinct IDF value; ties of weight are broken by the term's
  spelling, ranked from the words' order alone (``_ranked``), and only the terms shown are spelled.

The rule shares a big batch with a worker slice by slice (``forked.SharedSlices``; the terms come
back pickled): one forked from it, or, with the token table, one from the fork server sent the word
IDF and the tokens of the pairs' documents (``table_work``). Imports numpy and scipy: load it only
when the rule runs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from rules.duplicates.hashing import encode, hash_spans, joined_pairs, murmurhash3_32, spans
from rules.duplicates.search import THREADS
from rules.duplicates.stopwords import ENGLISH_STOP_WORDS
from rules.duplicates.text import Document
from rules.duplicates.tokens import TokenTable
from rules.duplicates.vectors import TOKEN_PATTERN, WORD_FEATURES, Vectoriser, hash_columns

_TOKENS = re.compile(TOKEN_PATTERN).findall
# The same tokens as TOKEN_PATTERN (``\b\w[\w.]*\w\b|\b\w\b``: a run of word characters and dots
# without its leading and trailing dots), found without backtracking: about a third faster.
_FAST_TOKENS = re.compile(r"\w+(?:\.+\w+)*+").findall
_STOP_WORDS = ENGLISH_STOP_WORDS
# Texts are tokenised in one batch: joined by a separator that is a token of its own, every ASCII
# character that is neither a word character nor a dot turned into a space, then split on spaces.
# A piece is then a maximal run of word characters and dots, which is a token once its leading and
# trailing dots are gone (none when it is only dots): the tokens of _FAST_TOKENS, about twice as
# fast. (``str.translate`` keeps its fast path only while every character maps to one ASCII
# character; a text with non-ASCII characters, or the separator, goes in as its tokens instead.)
_SEPARATOR = "\x01"
_SPACED = str.maketrans(
    {chr(code): " " for code in range(128) if not (chr(code).isalnum() or chr(code) in "_." + _SEPARATOR)}
)


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
# Names sorted as byte strings in numpy up to this many bytes (longer: by Python's sort).
_SORTED_BYTES = 48
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
    return _squares_of(vectoriser, murmurhash3_32(terms))


def _squares_of(vectoriser: Vectoriser, hashes: npt.NDArray[np.int32]) -> npt.NDArray[np.float64]:
    """``float(idf) ** 2`` of the hash column of each term hash (signed ``murmurhash3_32``)."""
    idf = vectoriser.word_idf[hash_columns(hashes, WORD_FEATURES)]
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
# Pairs explained beside a worker from the fork server from this many on (up to
# PARALLEL_MIN_PAIRS), when the token table is at hand: the worker is sent the tokens of the pairs'
# documents, and this process's pages are not shared. From PARALLEL_MIN_PAIRS on the pairs cover
# most of the backlog, and sending that table (pickled while this process ranks) cost more than
# the shared pages: the worker is forked.
SERVED_MIN_PAIRS = 5_000


def workers() -> int:
    """Processes for a big batch, this one included: as many as the search's threads and the CPUs
    allow (the cleaning in ``index`` uses as many); 1 where processes cannot fork (spawned ones
    would re-import all)."""
    if "fork" not in mp.get_all_start_methods():
        return 1
    return max(1, min(THREADS, os.cpu_count() or 1))


def grouped(pairs: Sequence[tuple[int, int]]) -> list[int]:
    """The positions of ``pairs`` in the order that explains them fastest: by connected component
    of their documents (near-copies of one item), then by lower row. Chunks of that order count a
    document's terms and hash its bigrams once, and find the copies of one description together."""
    if not pairs:
        return []
    ends = np.asarray(pairs, dtype=np.int64)
    component = components(ends, int(ends.max()) + 1)
    order: list[int] = np.lexsort((ends.min(axis=1), component[ends[:, 0]])).tolist()
    return order


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

    def __init__(
        self, vectoriser: Vectoriser, documents: Sequence[Document] | None, tokens: TokenTable | None = None
    ) -> None:
        """``documents`` may be None where ``tokens`` has them all (``table_work``)."""
        self._vectoriser = vectoriser
        self._documents: Sequence[Document] = documents if documents is not None else ()
        # The documents' tokens as the word counts found them (an index built in this run), or none:
        # then each text is tokenised here.
        self._table = (
            tokens
            if tokens is not None and (documents is None or tokens.documents == len(documents))
            else None
        )
        if self._table is None and documents is None:
            raise ValueError("documents are needed without a token table")
        size = self._table.documents if self._table is not None else len(self._documents)
        # Each table id's id here (-1: not looked up yet).
        self._id_of = np.full(self._table.names if self._table is not None else 0, -1, dtype=np.int64)
        # The keys (``TokenTable.keys``) of the names numbered from the table, sorted; each one's id
        # here, and the table id that brought it in.
        self._keys = np.zeros(0, dtype=np.int64)
        self._key_ids = np.zeros(0, dtype=np.int64)
        self._key_firsts = np.zeros(0, dtype=np.int64)
        # Stop words take the first ids: a document's ids under ``_stop`` are dropped in one mask.
        self._vocab = _Vocabulary([*sorted(_STOP_WORDS), _SEPARATOR])
        self._stop = len(self._vocab.names)
        # Each name's token (a name with leading or trailing dots is a piece of ``_tokenise``'s
        # split, not a token: its token has them stripped); under ``_stop`` for none.
        self._token_of: npt.NDArray[np.int64] = np.arange(self._stop, dtype=np.int64)
        # Squared IDF of each unigram id hashed so far (stop words never count).
        self._unigram_idf2: npt.NDArray[np.float64] = np.zeros(self._stop)
        # The UTF-8 bytes of the vocabulary's names (``encode`` of them, without its padding): a
        # bigram is hashed from its words' bytes, its name built only if it is shown or ranked.
        # (The stop words too: the ids index it.)
        data, starts, lengths = encode(self._vocab.names)
        self._encoded = (data[:-4], starts, lengths)  # ``encode``'s 4 bytes of padding dropped
        # Squared IDF of each bigram hashed so far, by (first id << 32 | second id), sorted.
        self._bigram_keys: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._bigram_squares: npt.NDArray[np.float64] = np.zeros(0)
        # 1 + np.log(count), as the scalar expression computes it, by count.
        self._log: npt.NDArray[np.float64] = np.zeros(1)
        # Each title and description tokenised so far gets a number (equal texts one); its ids
        # (stop words dropped) are ``_ids[_starts[n] : _starts[n] + _lengths[n]]``.
        self._numbers: dict[str, int] = {}
        # With the table, each description group's number (-1: none yet; ``_number_by_group``).
        self._group_number = np.zeros(0, dtype=np.int64)
        self._ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._used = 0  # of ``_ids``, which has room for more
        self._starts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._lengths: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        # Each document's title and description numbers (-1: not tokenised yet).
        self._title_of = np.full(size, -1, dtype=np.int64)
        self._body_of = np.full(size, -1, dtype=np.int64)

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
        """The shared terms of each pair of document rows, in the order of ``pairs`` (a pair's
        terms depend on nothing else: slices of a batch can go to other processes)."""
        results: list[list[str]] = [[] for _ in pairs]
        order = grouped(pairs)
        explained = self._in_chunks([pairs[n] for n in order], limit)
        for number, terms in zip(order, explained, strict=True):
            results[number] = terms
        return results

    def _in_chunks(self, pairs: Sequence[tuple[int, int]], limit: int) -> list[list[str]]:
        """The shared terms of ``pairs`` (in an order that keeps near-copies together), chunk by chunk."""
        results: list[list[str]] = []
        for start in range(0, len(pairs), _CHUNK):
            results += self._chunk(pairs[start : start + _CHUNK], limit)
        return results

    def _tokenise(self, rows: npt.NDArray[np.int64]) -> None:
        """Number the title and description of each of ``rows`` not seen yet, and keep the ids (stop
        words dropped) of each text not seen yet.

        word_text is "title title body"; its tokens are the title's twice, then the body's (no
        token spans a space), so each title and description is tokenised once per run (a
        description several documents share, once).
        """
        vocab, documents, numbers = self._vocab, self._documents, self._numbers
        new_rows = rows[self._title_of[rows] < 0].tolist()
        if self._table is not None:
            places = self._number_by_group(new_rows)
            fresh = places.tolist()
        else:
            texts = {part: [getattr(documents[row], part) for row in new_rows] for part in ("title", "body")}
            fresh = [text for text in dict.fromkeys(texts["title"] + texts["body"]) if text not in numbers]
            # ASCII texts first, in one string: ``str.translate`` keeps its fast path only on ASCII.
            plain = [text for text in fresh if text.isascii() and _SEPARATOR not in text]
            if len(plain) < len(fresh):
                known = set(plain)
                fresh = plain + [text for text in fresh if text not in known]
            numbers.update(
                zip(fresh, range(len(self._lengths), len(self._lengths) + len(fresh)), strict=True)
            )
            self._title_of[new_rows] = list(map(numbers.__getitem__, texts["title"]))
            self._body_of[new_rows] = list(map(numbers.__getitem__, texts["body"]))
        if fresh:
            if self._table is not None:
                ids, lengths = self._table_ids(np.asarray(new_rows, dtype=np.int64), places)
            else:
                ids, lengths = self._tokenised(plain, fresh)
            self._starts = np.concatenate([self._starts, self._used + np.cumsum(lengths) - lengths])
            self._lengths = np.concatenate([self._lengths, lengths])
            if self._used + len(ids) > len(self._ids):  # grown by doubling: copied O(1) times per id
                grown = np.empty(max(2 * len(self._ids), self._used + len(ids)), dtype=np.int64)
                grown[: self._used] = self._ids[: self._used]
                self._ids = grown
            self._ids[self._used : self._used + len(ids)] = ids
            self._used += len(ids)
        names = vocab.names
        if len(self._unigram_idf2) < len(names):
            more, more_starts, more_lengths = encode(names[len(self._unigram_idf2) :])
            # ``encode``'s 4 bytes of padding dropped.
            self._add_name_bytes(more[:-4], more_lengths, hash_spans(more, more_starts, more_lengths))

    def _add_name_bytes(
        self, data: npt.NDArray[np.uint8], lengths: npt.NDArray[np.int64], hashes: npt.NDArray[np.int32]
    ) -> None:
        """Keep the UTF-8 bytes (``data``: the names one after another, ``lengths`` long each) and
        the squared IDF (from their term ``hashes``) of the names numbered last."""
        self._unigram_idf2 = np.concatenate([self._unigram_idf2, _squares_of(self._vectoriser, hashes)])
        known, starts, known_lengths = self._encoded
        self._encoded = (
            np.concatenate([known, data]),
            np.concatenate([starts, len(known) + np.cumsum(lengths) - lengths]),
            np.concatenate([known_lengths, lengths]),
        )

    def _tokenised(
        self, plain: list[str], fresh: list[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The ids (stop words dropped) of the texts ``fresh``, one after another, and how many each
        has; ``plain`` (its first texts) are ASCII without the separator."""
        tokens = f" {_SEPARATOR} ".join(plain).translate(_SPACED).split()
        if len(plain) < len(fresh):
            others = (" ".join(_FAST_TOKENS(text)) for text in fresh[len(plain) :])
            tokens += ([_SEPARATOR] if plain else []) + f" {_SEPARATOR} ".join(others).split()
        ids = np.fromiter(map(self._vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        ends = np.append(np.flatnonzero(ids == self._stop - 1), len(ids))  # after each text
        ids = self._tokens(ids)
        kept = ids >= self._stop
        # Where each text's ids end once stop words are dropped.
        kept_ends = np.concatenate([[0], np.cumsum(kept)])[np.append(0, ends)]
        return ids[kept], np.diff(kept_ends)

    def _number_by_group(self, new_rows: list[int]) -> npt.NDArray[np.int64]:
        """Number the texts of ``new_rows`` (not numbered yet) for the table: each title a text of
        its own, and each description group (``TokenTable.body_groups``: equal descriptions) once.
        Returns the places of the texts numbered, in the titles then the descriptions of
        ``new_rows`` (``_table_ids``), in the numbers' order."""
        assert self._table is not None
        count, start = len(new_rows), len(self._lengths)
        groups = self._table.body_groups[new_rows]
        if len(self._group_number) < len(self._table.body_groups):
            self._group_number = np.full(len(self._table.body_groups), -1, dtype=np.int64)
        fresh, first = np.unique(groups, return_index=True)
        new = self._group_number[fresh] < 0
        places = np.sort(first[new])
        self._group_number[groups[places]] = start + count + np.arange(len(places))
        self._title_of[new_rows] = np.arange(start, start + count)
        self._body_of[new_rows] = self._group_number[groups]
        return np.concatenate([np.arange(count), count + places])

    def _table_ids(
        self, new_rows: npt.NDArray[np.int64], places: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``_tokenised`` of texts from the table: ``places`` in the titles then the descriptions
        of ``new_rows``.

        Each chunk of the index numbered its own table ids, so a table id met the first time is
        looked up by its name's key (hash and length; ``_keys``, sorted) and its bytes compared
        with those of the id that brought the key in; a key met the first time numbers the name
        here, and its bytes, hash and spelling come from the table. No Python string is built for
        a name but its spelling, once. (A name whose key another name brought in, a hash
        collision, is looked up by its spelling.)
        """
        table = self._table
        assert table is not None
        is_body = places >= len(new_rows)
        row = new_rows[np.where(is_body, places - len(new_rows), places)]
        starts = np.where(is_body, table.body_starts[row], table.title_starts[row])
        lengths = np.where(is_body, table.body_lengths[row], table.title_lengths[row])
        numbers = table.ids[spans(starts, starts + lengths)[1]]
        seen = np.zeros(table.names, dtype=bool)
        seen[numbers] = True
        needed = np.flatnonzero(seen)
        unknown = needed[self._id_of[needed] < 0]
        if len(unknown):
            keys = table.keys(unknown)
            at = np.searchsorted(self._keys, keys)
            known = at < len(self._keys)
            known[known] = self._keys[at[known]] == keys[known]
            # New keys: the first id of each brings it in (numbered here in order of the keys).
            fresh_keys, first, place = np.unique(keys[~known], return_index=True, return_inverse=True)
            leaders = unknown[~known][first]
            number = len(self._vocab.names)
            self._add_names(leaders)
            at[~known] = len(self._keys) + place.ravel()  # placed after the known keys for now
            ids = np.concatenate([self._key_ids, np.arange(number, number + len(leaders))])
            firsts = np.concatenate([self._key_firsts, leaders])
            odd = ~table.same(unknown, firsts[at])
            self._id_of[unknown] = ids[at]
            if odd.any():
                spelled = table.spelled(unknown[odd])
                self._id_of[unknown[odd]] = np.fromiter(
                    map(self._vocab.__getitem__, spelled), np.int64, len(spelled)
                )
                self._tokens(np.zeros(0, dtype=np.int64))  # (``_tokenise`` hashes the new names)
            order = np.argsort(np.concatenate([self._keys, fresh_keys]), kind="stable")
            self._keys = np.concatenate([self._keys, fresh_keys])[order]
            self._key_ids, self._key_firsts = ids[order], firsts[order]
        return self._id_of[numbers], lengths

    def _add_names(self, numbers: npt.NDArray[np.int64]) -> None:
        """Number the names of the table ids ``numbers`` here, in order (they are tokens, and new)."""
        table = self._table
        assert table is not None and len(self._unigram_idf2) == len(self._vocab.names)
        names = self._vocab.names
        before = len(names)
        names += table.spelled(numbers)
        self._token_of = np.concatenate([self._token_of, np.arange(before, len(names))])
        lengths = table.name_lengths[numbers]
        at = spans(table.name_starts[numbers], table.name_starts[numbers] + lengths)[1]
        self._add_name_bytes(table.name_data[at], lengths, table.name_hashes[numbers])

    def _tokens(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The token of each piece id (``_token_of``; under ``_stop`` for none), names of tokens
        met the first time numbered."""
        vocab, names = self._vocab, self._vocab.names
        while len(self._token_of) < len(names):
            new = names[len(self._token_of) :]
            stripped = [name.strip(".") for name in new]
            # A stripped name may be new too: the loop numbers its token next (itself).
            self._token_of = np.concatenate(
                [
                    self._token_of,
                    np.fromiter((vocab[name] if name else 0 for name in stripped), np.int64, len(new)),
                ]
            )
        result: npt.NDArray[np.int64] = self._token_of[ids]
        return result

    def _term_counts(
        self,
        sequence: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
        unigrams: npt.NDArray[np.int64] | None,
        bits: int,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(owner, column, count) of the word terms of token sequences, sorted by owner then column.

        Owner ``i``'s sequence is the next ``lengths[i]`` ids of ``sequence``; its bigrams are its
        consecutive ids, its unigrams the first ``unigrams[i]`` (all, without it). Column ``id`` is
        a unigram, ``(first id + 1) << bits | second id`` a bigram.
        """
        owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        same = owner[:-1] == owner[1:]
        bigrams = ((sequence[:-1][same] + 1) << bits) | sequence[1:][same]
        if unigrams is not None:
            starts = np.zeros(len(lengths), dtype=np.int64)
            np.cumsum(lengths[:-1], out=starts[1:])
            counted = np.arange(len(sequence)) - starts[owner] < unigrams[owner]
            sequence, unigram_owner = sequence[counted], owner[counted]
        else:
            unigram_owner = owner
        columns = np.concatenate([sequence, bigrams])
        owners = np.concatenate([unigram_owner, owner[:-1][same]])
        width = (len(self._vocab.names) + 1) << bits
        owners, columns, counts = _runs(owners, columns, width.bit_length())
        if len(counts):
            self._log_table(int(counts.max()))
        return owners, columns, counts

    def _idf2(self, column: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.float64]:
        """Squared IDF of each term column: unigrams from the run's table, bigrams hashed (each
        distinct one once) from their words' bytes."""
        is_bigram = column >= (1 << bits)
        idf2 = np.empty(len(column))
        idf2[~is_bigram] = self._unigram_idf2[column[~is_bigram]]
        bigram_columns, at = np.unique(column[is_bigram], return_inverse=True)
        if len(bigram_columns):
            idf2[is_bigram] = self._bigram_idf2(
                (bigram_columns >> bits) - 1, bigram_columns & ((1 << bits) - 1)
            )[at]
        return idf2

    def _bigram_idf2(
        self, firsts: npt.NDArray[np.int64], seconds: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """Squared IDF of the distinct bigrams (first id, second id), sorted by them: those of earlier
        chunks from the run's table, the others hashed from their words' bytes and added to it (a
        bigram of common words recurs in many descriptions: half of those of the duplicate-heavy
        100k had been hashed in an earlier chunk)."""
        keys = (firsts << 32) | seconds  # sorted as the pairs are; no id reaches 2 ** 32
        known, squares = self._bigram_keys, self._bigram_squares
        at = np.searchsorted(known, keys)
        found = at < len(known)
        found[found] = known[at[found]] == keys[found]
        result = np.empty(len(keys))
        result[found] = squares[at[found]]
        missing = ~found
        if missing.any():
            data, starts, lengths = self._encoded
            hashes = hash_spans(*joined_pairs(data, starts, lengths, firsts[missing], seconds[missing]))
            result[missing] = new = _squares_of(self._vectoriser, hashes)
            self._bigram_keys = np.insert(known, at[missing], keys[missing])
            self._bigram_squares = np.insert(squares, at[missing], new)
        return result

    def _chunk(self, pairs: Sequence[tuple[int, int]], limit: int) -> list[list[str]]:
        ends = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self._tokenise(np.unique(ends))
        bits = len(self._vocab.names).bit_length()
        # A pair of copies with one description (a cloned ticket, a title suffix) shares all of
        # that description's terms at the same counts: worked out once per description.
        alike = self._body_of[ends[:, 0]] == self._body_of[ends[:, 1]]
        parts = []
        for kind, find in ((True, self._same_body_candidates), (False, self._general_candidates)):
            numbers = np.flatnonzero(alike == kind)
            if len(numbers):
                pair, is_bigram, column, weight = find(ends[numbers], bits, limit)
                parts.append((numbers[pair], is_bigram, column, weight))
        pair, is_bigram, column, weight = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        return self._ranked(len(pairs), pair, is_bigram, column, weight, bits, limit)

    def _word_sequences(
        self, rows: npt.NDArray[np.int64], body: int | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The ids of each row's word text (title, title, description; only the description's first
        ``body`` ids when given) one after another, each sequence's length, and each title's."""
        title_start, title_length = self._starts[self._title_of[rows]], self._lengths[self._title_of[rows]]
        body_start, body_length = self._starts[self._body_of[rows]], self._lengths[self._body_of[rows]]
        if body is not None:
            body_length = np.minimum(body_length, body)
        starts = np.stack([title_start, title_start, body_start], axis=1).ravel()
        lengths = np.stack([title_length, title_length, body_length], axis=1).ravel()
        _, at = spans(starts, starts + lengths)
        return self._ids[at], 2 * title_length + body_length, title_length

    def _general_candidates(
        self, pairs: npt.NDArray[np.int64], bits: int, limit: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(pair, is bigram, column, weight) of the shared terms that can be among each pair's best
        (``_candidates``) of the document rows ``pairs`` (n x 2), from one count matrix of the
        pairs' documents."""
        rows, position = np.unique(pairs, return_inverse=True)
        position = position.reshape(-1, 2)
        sequence, lengths, _ = self._word_sequences(rows, None)
        owner, columns, counts = self._term_counts(sequence, lengths, None, bits)
        width = (len(self._vocab.names) + 1) << bits
        matrix = sp.csr_matrix(
            (self._log[counts], columns, np.searchsorted(owner, np.arange(len(rows) + 1))),
            shape=(len(rows), width),
        )
        matrix.has_sorted_indices = True  # sorted by (document, column), no repeats
        first, second = matrix[position[:, 0]], matrix[position[:, 1]]
        shared = sp.csr_matrix(first.multiply(second))  # (1 + log a) * (1 + log b) per shared term
        shared.sort_indices()
        pair_of = np.repeat(np.arange(len(pairs), dtype=np.int64), np.diff(shared.indptr))
        column = shared.indices.astype(np.int64)
        is_bigram = column >= (1 << bits)
        weight = shared.data * self._idf2(column, bits)
        picked = self._candidates(pair_of * 2 + is_bigram, _weight_ranks(weight), limit)
        return pair_of[picked], is_bigram[picked], column[picked], weight[picked]

    def _same_body_candidates(
        self, pairs: npt.NDArray[np.int64], bits: int, limit: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """``_general_candidates`` of pairs whose documents have one description.

        A document's counts are its description's plus its title part (the title twice, the bigram
        from its end to its start and to the description's first word). A term no title part of
        the pair holds has the description's count in both documents, so its weight is the
        description's own: each description's terms are weighed and sorted once, and a pair takes
        the head of that list, its best ``k`` and their ties. The terms its titles touch are worked
        out apart, exactly, and left out of the head. That head is enough: a touched term of the
        description counts at least as often in both documents as in it, so it weighs at least
        what it weighed there, and the ``k`` terms above any term under the head still outweigh it.
        """
        rows, position = np.unique(pairs, return_inverse=True)
        position = position.reshape(-1, 2)
        bodies, body_number = np.unique(self._body_of[rows], return_inverse=True)
        width_bits = ((len(self._vocab.names) + 1) << bits).bit_length()
        # The descriptions' terms, and each one's weight when both documents hold it that often.
        body_starts, body_lengths = self._starts[bodies], self._lengths[bodies]
        body_owner, body_column, body_count = self._term_counts(
            self._ids[spans(body_starts, body_starts + body_lengths)[1]], body_lengths, None, bits
        )
        body_keys = (body_owner << width_bits) | body_column
        # The title parts: title, title and the description's first id (its unigram not counted).
        sequence, lengths, titles = self._word_sequences(rows, 1)
        title_owner, title_column, title_count = self._term_counts(sequence, lengths, 2 * titles, bits)
        # Every pair's touched terms: the union of its two title parts, with each side's count.
        bounds = np.searchsorted(title_owner, np.arange(len(rows) + 1))
        sides = []
        for side in (0, 1):
            ends = position[:, side]
            pair, at = spans(bounds[ends], bounds[ends + 1])
            count = np.zeros((2, len(at)), dtype=np.int64)
            count[side] = title_count[at]
            sides.append((pair, title_column[at], count))
        pair = np.concatenate([sides[0][0], sides[1][0]])
        column = np.concatenate([sides[0][1], sides[1][1]])
        count = np.concatenate([sides[0][2], sides[1][2]], axis=1)
        order = _order(pair, column)
        pair, column, count = pair[order], column[order], count[:, order]
        new = np.ones(len(pair), dtype=bool)
        new[1:] = (pair[1:] != pair[:-1]) | (column[1:] != column[:-1])
        starts = np.flatnonzero(new)
        pair, column = pair[starts], column[starts]
        if len(starts):
            count = np.add.reduceat(count, starts, axis=1)
        body_of_pair = body_number[position[:, 0]]
        # Plus the description's count of each touched term.
        wanted = (body_of_pair[pair] << width_bits) | column
        at = np.minimum(np.searchsorted(body_keys, wanted), max(len(body_keys) - 1, 0))
        in_body = body_keys[at] == wanted if len(body_keys) else np.zeros(len(wanted), dtype=bool)
        count += np.where(in_body, body_count[at] if len(body_keys) else 0, 0)
        if len(count[0]):
            self._log_table(int(count.max()))
        log = self._log  # (as long as the longest count now)
        is_bigram = column >= (1 << bits)
        shared = (count[0] > 0) & (count[1] > 0)
        # One squared IDF lookup for the touched terms and the descriptions' (a bigram hashed once).
        idf2 = self._idf2(np.concatenate([column[shared], body_column]), bits)
        touched_weight = (log[count[0][shared]] * log[count[1][shared]]) * idf2[: int(shared.sum())]
        # Each description's terms by weight (unigrams and bigrams apart), heaviest first.
        body_is_bigram = body_column >= (1 << bits)
        body_weight = (log[body_count] * log[body_count]) * idf2[int(shared.sum()) :]
        body_group = body_owner * 2 + body_is_bigram
        falling = _weight_ranks(body_weight)
        order = _order(body_group, falling)
        body_group, falling = body_group[order], falling[order]
        body_column, body_weight = body_column[order], body_weight[order]
        group_start = np.searchsorted(body_group, np.arange(2 * len(bodies) + 1))
        # A pair's head of each list: its best k and every term tied with the last of them.
        groups = np.arange(2 * len(pairs), dtype=np.int64)
        list_of = body_of_pair[groups >> 1] * 2 + (groups & 1)
        size = group_start[list_of + 1] - group_start[list_of]
        need = np.minimum(np.where(groups & 1, limit, 3 * limit), size)
        head = np.zeros(len(groups), dtype=np.int64)
        some = need > 0
        if some.any():
            falling_bits = int(falling.max()).bit_length() + 1
            ranked = (body_group << falling_bits) | falling
            last = falling[group_start[list_of[some]] + need[some] - 1]
            ties_end = np.searchsorted(ranked, (list_of[some] << falling_bits) | last, side="right")
            head[some] = ties_end - group_start[list_of[some]]
        group, at = spans(group_start[list_of], group_start[list_of] + head)
        head_pair, head_column = group >> 1, body_column[at]
        touched_keys = (pair << width_bits) | column  # sorted: (pair, column) runs above
        head_keys = (head_pair << width_bits) | head_column
        found = np.minimum(np.searchsorted(touched_keys, head_keys), max(len(touched_keys) - 1, 0))
        untouched = (
            touched_keys[found] != head_keys if len(touched_keys) else np.ones(len(head_keys), dtype=bool)
        )
        pair = np.concatenate([pair[shared], head_pair[untouched]])
        is_bigram = np.concatenate([is_bigram[shared], (group & 1)[untouched].astype(bool)])
        column = np.concatenate([column[shared], head_column[untouched]])
        weight = np.concatenate([touched_weight, body_weight[at][untouched]])
        return pair, is_bigram, column, weight

    def _ranked(
        self,
        size: int,
        pair: npt.NDArray[np.int64],
        is_bigram: npt.NDArray[np.bool_],
        column: npt.NDArray[np.int64],
        weight: npt.NDArray[np.float64],
        bits: int,
        limit: int,
    ) -> list[list[str]]:
        """The terms of ``size`` pairs from candidates holding each pair's best ``limit`` bigrams and
        ``3 * limit`` unigrams by (-weight, term), as ``Vectoriser.shared_terms`` picks them."""
        falling = _weight_ranks(weight)
        group = pair * 2 + is_bigram  # a pair's unigrams, then its bigrams
        # Ties of weight go to the smaller term as Python orders strings; only words are sorted by
        # name. No token holds a character below the space, so a bigram "a b" sorts as the pair
        # (a, b) among bigrams, and after a unigram u exactly when a >= u: every term's place is
        # the order of (first word, is bigram, second word).
        low = (1 << bits) - 1
        distinct_columns, at = np.unique(column, return_inverse=True)
        is_pair = distinct_columns >= (1 << bits)
        lefts = np.where(is_pair, (distinct_columns >> bits) - 1, distinct_columns)
        rights = np.where(is_pair, distinct_columns & low, 0)
        words = np.unique(np.concatenate([lefts, rights[is_pair]]))
        word_rank = np.empty(len(words), dtype=np.int64)
        word_rank[self._by_spelling(words)] = np.arange(len(words))
        term_rank = np.empty(len(distinct_columns), dtype=np.int64)
        term_rank[
            np.lexsort(
                (
                    np.where(is_pair, word_rank[np.searchsorted(words, rights)], 0),
                    is_pair,
                    word_rank[np.searchsorted(words, lefts)],
                )
            )
        ] = np.arange(len(distinct_columns))
        rank = term_rank[at]
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
        covered = np.concatenate(
            [
                (pair[bigram] << 32) | ((column[bigram] >> bits) - 1),
                (pair[bigram] << 32) | (column[bigram] & low),
            ]
        )
        shown = bigram | ~np.isin((pair << 32) | column, covered)
        pair, falling, rank, column = pair[shown], falling[shown], rank[shown], column[shown]
        order = _order(pair, falling, rank)
        pair, column = pair[order], column[order]
        first = _place(pair) < limit
        pair, column = pair[first], column[first]
        # Names only of the terms shown, each distinct one spelled once.
        shown_columns, shown_at = np.unique(column, return_inverse=True)
        is_pair = shown_columns > low
        spelled_terms = self._spelled(
            np.where(is_pair, (shown_columns >> bits) - 1, shown_columns),
            np.where(is_pair, shown_columns & low, -1),
        )
        terms = list(map(spelled_terms.__getitem__, shown_at.tolist()))
        bounds = np.searchsorted(pair, np.arange(size + 1)).tolist()
        return [terms[bounds[number] : bounds[number + 1]] for number in range(size)]

    def _spelled(self, firsts: npt.NDArray[np.int64], seconds: npt.NDArray[np.int64]) -> list[str]:
        """The terms of word ids ``firsts`` (each followed by a space and word ``seconds[i]`` where
        that is not -1: a bigram), decoded from the names' bytes in one call (no name holds a
        newline, and no character's UTF-8 a newline byte but the newline's own)."""
        if not len(firsts):
            return []
        data, starts, lengths = self._encoded
        pair = seconds >= 0
        second = np.where(pair, seconds, 0)
        left, right = lengths[firsts], np.where(pair, lengths[second], -1)
        sizes = left + right + 2  # the space (bigrams) and the newline after each term
        out_starts = np.zeros(len(sizes), dtype=np.int64)
        np.cumsum(sizes[:-1], out=out_starts[1:])
        out = np.full(int(sizes.sum()), ord("\n"), dtype=np.uint8)
        out[(out_starts + left)[pair]] = ord(" ")
        for source, length, shift in (
            (starts[firsts], left, 0),
            (starts[second], np.maximum(right, 0), left + 1),
        ):
            span, at = spans(source, source + length)
            out[at + (out_starts + shift - source)[span]] = data[at]
        return out[:-1].tobytes().decode("utf-8").split("\n")

    def _by_spelling(self, words: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The positions of word ids ``words`` in the order Python sorts their names: the order of
        their UTF-8 bytes, sorted as fixed-width byte strings in numpy when the longest is short
        (else by the names)."""
        data, starts, lengths = self._encoded
        width = int(lengths[words].max()) if len(words) else 0
        if width > _SORTED_BYTES:
            spelled = list(map(self._vocab.names.__getitem__, words.tolist()))
            return np.asarray(sorted(range(len(words)), key=spelled.__getitem__), dtype=np.int64)
        padded = np.zeros((len(words), max(width, 1)), dtype=np.uint8)
        row, at = spans(starts[words], starts[words] + lengths[words])
        padded[row, at - starts[words][row]] = data[at]
        # (A name holds no NUL byte: the padding sorts before every byte, as a shorter name first.)
        order: npt.NDArray[np.int64] = np.argsort(padded.view(f"S{max(width, 1)}").ravel(), kind="stable")
        return order

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


def table_work(
    word_idf: npt.NDArray[np.float32], table: TokenTable, rows: Sequence[tuple[int, int]]
) -> Callable[[int, int], list[list[str]]]:
    """The shared terms of slices of the document pairs ``rows`` (of ``table``'s documents), from
    the word IDF alone: what a process that did not build the index needs (``forked.SharedSlices``
    sends it these, pickled, a few MB with ``TokenTable.subset``)."""
    empty = np.zeros(0, dtype=np.int64)
    vectoriser = Vectoriser(word_idf, np.zeros(0, dtype=np.float32), empty, empty, 0)
    explainer = SharedTerms(vectoriser, None, table)
    return lambda start, stop: explainer.of_pairs(rows[start:stop])


def _weight_ranks(weight: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Each weight's rank from the heaviest (0), equal weights one rank (a dense rank, not
    ``ranking._falling``'s order)."""
    values = np.unique(weight)
    falling: npt.NDArray[np.int64] = (len(values) - 1) - np.searchsorted(values, weight).astype(np.int64)
    return falling


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
