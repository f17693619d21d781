"""The vectorised word and character counts are scikit-learn's hashers' matrices, entry for entry."""

from __future__ import annotations

import csv
import random
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from rules.duplicates.sklearn_hashers import CHAR_HASHER as _CHAR_HASHER
from rules.duplicates.sklearn_hashers import WORD_HASHER as _WORD_HASHER
from rules.duplicates.text import Document, clean_body, normalise_title
from rules.duplicates.vectors import (
    char_counts,
    hash_columns,
    raw_counts,
    word_counts,
)
from tests.shared_data import SHARED, require_shared


def _assert_identical(expected: sp.spmatrix, actual: sp.csr_matrix) -> None:
    expected = sp.csr_matrix(expected)
    assert actual.shape == expected.shape
    assert actual.has_canonical_format and expected.has_canonical_format
    assert actual.indptr.dtype == expected.indptr.dtype
    assert actual.indices.dtype == expected.indices.dtype
    assert actual.data.dtype == expected.data.dtype
    assert np.array_equal(actual.indptr, expected.indptr)
    assert np.array_equal(actual.indices, expected.indices)
    assert np.array_equal(actual.data, expected.data)


def _real_documents() -> list[Document]:
    data = require_shared(SHARED / "data" / "jira-storypoints")
    csv.field_size_limit(sys.maxsize)
    documents: list[Document] = []
    for path in sorted(data.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                documents.append(
                    Document(normalise_title(row["title"]), clean_body(row["description"] or ""))
                )
    return documents


def test_char_counts_equal_the_hasher_on_all_real_texts() -> None:
    texts = [document.char_text for document in _real_documents()]
    # Raw descriptions too: uncleaned whitespace (tabs, newlines, runs) and unnormalised unicode.
    raw = [
        text.replace(" ", random.Random(len(text)).choice([" ", "\t", "\n ", "\u00a0", "  "]))
        for text in texts
    ]
    for start in range(0, len(texts), 5000):
        chunk = texts[start : start + 5000]
        _assert_identical(_CHAR_HASHER.transform(chunk), char_counts(chunk))
    _assert_identical(_CHAR_HASHER.transform(raw[:5000]), char_counts(raw[:5000]))


EDGE_CASES = [
    "",
    " ",
    "\t\n",
    "a",
    "ab",
    "abc",
    "abcd",
    "a b c",
    "  a  bb   ccc    dddd ",
    "x" * 5000,
    "é",
    "é a",
    "ça va à l'école",
    "日本語のテキスト 中 文",
    "😀 x 😀😀 🇫🇷",
    "e\u0301 cafe\u0301 \u0301",
    "a\tb\nc\u00a0d\u2003e\u3000f\x1cg\x85h\u2028i",
    "mixed ascii and ünïcödé in one wörd-ish stream",
    "\x00\x01 \x7f\x80 ab\x00",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_char_counts_equal_the_hasher_on_an_edge_case(text: str) -> None:
    _assert_identical(_CHAR_HASHER.transform([text]), char_counts([text]))


def test_char_counts_equal_the_hasher_on_edge_cases_side_by_side() -> None:
    # Neighbouring documents must not share windows, whatever their ends are.
    texts = EDGE_CASES + list(reversed(EDGE_CASES)) + ["", ""]
    _assert_identical(_CHAR_HASHER.transform(texts), char_counts(texts))


def test_char_counts_hash_every_index_as_the_hasher_does() -> None:
    # Random short strings reach many hash values, the ones near the int32 extremes included.
    rng = random.Random(11)
    alphabet = "ab cdé😀\t"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(3000)]
    _assert_identical(_CHAR_HASHER.transform(texts), char_counts(texts))


def test_raw_counts_of_no_documents_are_empty() -> None:
    words, chars = raw_counts([])
    assert words.shape[0] == 0 and chars.shape[0] == 0
    assert char_counts([]).shape == (0, chars.shape[1])


def test_hash_columns_follow_the_hashers_rule_at_the_int32_extremes() -> None:
    hashes = np.array([-(2**31), -(2**31) + 1, -1, 0, 1, 2**31 - 1, 123456789], dtype=np.int32)
    for n_features in (2**20, 2**21, 1000, 7):
        # The rule in scikit-learn's _hashing_fast.pyx, abs(-2**31) being undefined in C.
        expected = [
            (2147483647 - (n_features - 1)) % n_features if h == -(2**31) else abs(int(h)) % n_features
            for h in hashes.tolist()
        ]
        assert hash_columns(hashes, n_features).tolist() == expected


def test_word_counts_equal_the_hasher_on_all_real_texts() -> None:
    texts = [document.word_text for document in _real_documents()]
    for start in range(0, len(texts), 5000):
        chunk = texts[start : start + 5000]
        _assert_identical(_WORD_HASHER.transform(chunk), word_counts(chunk))


WORD_EDGE_CASES = [
    "",
    " ",
    "the",  # a stop word only
    "x",
    "the a an of",
    "fix the bug in the parser the",  # bigrams join the words around dropped stop words
    "a.b ..a.. foo. bar.baz. q v1.2.3. 3.14 x_y __init__",
    "é ça va à l'école naïve café",
    "日本語 中文 テキスト",
    "😀 emoji🙂word e\u0301 cafe\u0301",
    "a\tb\nc\u00a0d\u2003e",
    "repeat repeat repeat repeat repeat",
    "long " + "y" * 3000 + " word",
]


def test_word_counts_equal_the_hasher_on_edge_cases() -> None:
    for text in WORD_EDGE_CASES:
        _assert_identical(_WORD_HASHER.transform([text]), word_counts([text]))
    texts = WORD_EDGE_CASES + list(reversed(WORD_EDGE_CASES)) + ["", "the"]
    _assert_identical(_WORD_HASHER.transform(texts), word_counts(texts))


def test_word_counts_equal_the_hasher_on_random_token_soup() -> None:
    # Few distinct tokens, many repeats and stop words: bigram ids collide and repeat across documents.
    rng = random.Random(7)
    words = ["the", "a", "is", "bug", "fix", "é", "x.y", "..", "9", "of", "node"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 30))) for _ in range(2000)]
    _assert_identical(_WORD_HASHER.transform(texts), word_counts(texts))


def test_word_counts_equal_the_hasher_on_random_character_soup() -> None:
    # Dots, underscores, digits, combining marks and punctuation around word characters: the
    # tokeniser's edge cases (leading, trailing and repeated dots, one-character tokens).
    rng = random.Random(13)
    alphabet = "ab.._1é\u0301 -'/ \tthe "
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(3000)]
    _assert_identical(_WORD_HASHER.transform(texts), word_counts(texts))
