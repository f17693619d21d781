"""Near-miss templates: titles that are one template with another value in a slot score lower.

Two titles such as "Update the year to 2021" / "... 2022" or "Add Dockerfile for Fedora 33" /
"... Debian 10" are usually different work, so a pair whose titles differ only in such a slot has
its score multiplied by ``SLOT_PENALTY``. Imports numpy and scipy: load it only when the rule runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from rules.duplicates.stopwords import ENGLISH_STOP_WORDS
from rules.duplicates.text import Document

SLOT_PENALTY = 0.6
_TITLE_TOKEN = re.compile(r"\w[\w.+#/-]*")


def title_tokens(title: str) -> list[str]:
    """Content words of a title; stop words differ between paraphrases and are no slot."""
    tokens = []
    for found in _TITLE_TOKEN.findall(title):
        token = found.rstrip(".")
        # "v2.1" is the version "2.1"; a string test, not a regex per token (this runs for every
        # title of a pair the template penalty checks). ``isdecimal`` is what the regex ``\d`` matches.
        if token[:1] == "v" and token[1:2].isdecimal():
            token = token[1:]
        if token not in ENGLISH_STOP_WORDS:
            tokens.append(token)
    return tokens


def _related(first: str, second: str) -> bool:
    """Whether two differing words are forms of one word (fails/failing, config/configuration)."""
    common = next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )
    return common >= max(4, 0.6 * min(len(first), len(second)))


def slot_penalty(first: str, second: str) -> float:
    """``SLOT_PENALTY`` when two normalised titles differ only in a slot value, else 1.

    A slot difference: the titles share at least two words and differ in at most two words on each
    side, which carry digits (versions, years, ticket numbers) except for at most one unrelated word
    each.
    """
    return slot_penalty_tokens(title_tokens(first), title_tokens(second))


def slot_penalty_tokens(tokens_a: Sequence[str], tokens_b: Sequence[str]) -> float:
    """``slot_penalty`` of two titles already split by ``title_tokens`` (each title is split once)."""
    set_a, set_b = set(tokens_a), set(tokens_b)
    only_a, only_b = set_a - set_b, set_b - set_a
    if not only_a or not only_b or len(set_a & set_b) < 2 or max(len(only_a), len(only_b)) > 2:
        return 1.0
    words_a = [t for t in only_a if not any(ch.isdigit() for ch in t)]
    words_b = [t for t in only_b if not any(ch.isdigit() for ch in t)]
    if not words_a and not words_b:
        return SLOT_PENALTY
    if len(words_a) == len(words_b) == 1 and not _related(words_a[0], words_b[0]):
        return SLOT_PENALTY
    return 1.0


# The slot check is Python per pair; below this score a pair sits under the default candidate
# floors (half the threshold, or the semantic floor), so it is not worth checking. The rule raises
# the floor to its own candidate floor: a pair scoring under it is dropped, penalised or not.
PENALTY_FLOOR = 0.2


def _shared_counts(
    token_sets: Sequence[frozenset[str]], first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """How many tokens the sets ``token_sets[first[i]]`` and ``token_sets[second[i]]`` share, by
    one sparse product of pairs (no Python loop over pairs)."""
    vocabulary: dict[str, int] = {}
    columns = [vocabulary.setdefault(token, len(vocabulary)) for tokens in token_sets for token in tokens]
    indptr = np.zeros(len(token_sets) + 1, dtype=np.int64)
    np.cumsum([len(tokens) for tokens in token_sets], out=indptr[1:])
    marks = sp.csr_matrix(
        (np.ones(len(columns), dtype=np.float32), np.asarray(columns, dtype=np.int64), indptr),
        shape=(len(token_sets), max(len(vocabulary), 1)),
    )
    shared = np.zeros(len(first), dtype=np.int64)
    chunk = 50_000
    for start in range(0, len(first), chunk):
        stop = start + chunk
        both = marks[first[start:stop]].multiply(marks[second[start:stop]])
        shared[start:stop] = np.rint(np.asarray(both.sum(axis=1)).ravel()).astype(np.int64)
    return shared


def penalise(
    documents: Sequence[Document],
    low: npt.NDArray[np.int64],
    high: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    floor: float = PENALTY_FLOOR,
) -> npt.NDArray[np.float32]:
    """``scores`` of the row pairs ``(low[i], high[i])`` with the near-miss template penalty applied
    to those scoring at least ``floor``."""
    scores = scores.copy()
    checked = np.flatnonzero(scores >= floor)
    if not len(checked):
        return scores
    # Most pairs fail the cheap part of ``slot_penalty_tokens`` (at least two shared words, one or
    # two words apart on each side); counting shared words for all pairs in one sparse product
    # leaves the Python check to the few that pass it, with the same result.
    rows, where = np.unique(np.concatenate([low[checked], high[checked]]), return_inverse=True)
    tokens = [title_tokens(documents[int(row)].title) for row in rows]
    sets = [frozenset(row_tokens) for row_tokens in tokens]
    sizes = np.fromiter((len(row_set) for row_set in sets), dtype=np.int64, count=len(sets))
    first, second = where[: len(checked)], where[len(checked) :]
    shared = _shared_counts(sets, first, second)
    only_first, only_second = sizes[first] - shared, sizes[second] - shared
    maybe = (shared >= 2) & (only_first >= 1) & (only_second >= 1)
    maybe &= (only_first <= 2) & (only_second <= 2)
    for position in np.flatnonzero(maybe):
        penalty = slot_penalty_tokens(tokens[first[position]], tokens[second[position]])
        scores[checked[position]] *= penalty
    return scores
