"""The duplicate rule's own MurmurHash3 and stop words are scikit-learn's, value for value."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rules.duplicates.hashing import murmurhash3_32
from rules.duplicates.stopwords import ENGLISH_STOP_WORDS

sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
sklearn_utils = pytest.importorskip("sklearn.utils")


def _expected(strings: list[str]) -> list[int]:
    return [int(sklearn_utils.murmurhash3_32(s, positive=False)) for s in strings]


def test_the_stop_words_are_scikit_learns() -> None:
    assert ENGLISH_STOP_WORDS == sklearn_text.ENGLISH_STOP_WORDS


def test_hashes_of_every_length_and_tail_are_scikit_learns() -> None:
    # 0 to 3 tail bytes after 0 to 12 blocks, and a batch whose strings differ in length.
    strings = ["", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"] + ["x" * n for n in range(60)]
    assert murmurhash3_32(strings).tolist() == _expected(strings)
    assert murmurhash3_32(list(reversed(strings))).tolist() == _expected(list(reversed(strings)))


def test_hashes_of_random_unicode_strings_are_scikit_learns() -> None:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ._-éß€中😀\u0300"
    strings = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70))) for _ in range(5000)]
    got = murmurhash3_32(strings)
    assert got.dtype == np.int32
    assert got.tolist() == _expected(strings)


def test_an_empty_batch_has_no_hash() -> None:
    assert murmurhash3_32([]).tolist() == []


def test_a_lone_surrogate_fails_as_in_scikit_learn() -> None:
    with pytest.raises(UnicodeEncodeError):
        sklearn_utils.murmurhash3_32("a\ud800b")
    with pytest.raises(UnicodeEncodeError):
        murmurhash3_32(["ok", "a\ud800b"])


def test_joined_pairs_hash_as_the_joined_strings() -> None:
    from rules.duplicates.hashing import encode, hash_spans, joined_pairs

    names = ["error", "é", "", "a", "中文字", "page.html", "x" * 33]
    firsts = np.asarray([0, 1, 2, 3, 4, 5, 6, 6, 0], dtype=np.int64)
    seconds = np.asarray([1, 2, 3, 4, 5, 6, 0, 6, 0], dtype=np.int64)
    joined = [f"{names[a]} {names[b]}" for a, b in zip(firsts.tolist(), seconds.tolist(), strict=True)]
    assert hash_spans(*joined_pairs(*encode(names), firsts, seconds)).tolist() == _expected(joined)
