"""Near-miss templates: titles that are one template with another value in a slot score lower.

Two titles such as "Update the year to 2021" / "... 2022" or "Add Dockerfile for Fedora 33" /
"... Debian 10" are usually different work, so a pair whose titles differ only in such a slot has
its score multiplied by ``SLOT_PENALTY``. Imports scikit-learn (its English stop words) and numpy:
load it only when the rule runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from rules.duplicates.text import Document

SLOT_PENALTY = 0.6
_TITLE_TOKEN = re.compile(r"\w[\w.+#/-]*")
_VERSION_V = re.compile(r"^v(?=\d)")


def title_tokens(title: str) -> list[str]:
    """Content words of a title; stop words differ between paraphrases and are no slot."""
    tokens = (_VERSION_V.sub("", token.rstrip(".")) for token in _TITLE_TOKEN.findall(title))
    return [token for token in tokens if token not in ENGLISH_STOP_WORDS]


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
    tokens: dict[int, list[str]] = {}

    def tokens_of(row: int) -> list[str]:
        if row not in tokens:
            tokens[row] = title_tokens(documents[row].title)
        return tokens[row]

    # The slot check is a Python loop: run it only where a penalty could still matter.
    for position in np.flatnonzero(scores >= floor):
        first, second = tokens_of(int(low[position])), tokens_of(int(high[position]))
        scores[position] *= slot_penalty_tokens(first, second)
    return scores
