"""CPU time of the duplicate rule's counting step (clean, word and character hashing) on real Jira texts.

Reads the 23,313 issues of ``../shared/data/jira-storypoints/``, cleans the first N (default 20,000)
as the rule does, and times, in this one process (CPU seconds, best of three): ``clean_body``,
scikit-learn's word and char_wb ``HashingVectorizer`` and the rule's vectorised ``word_counts`` and
``char_counts``, in chunks of 5,000 as the rule's workers take them. It also checks that each
vectorised matrix equals scikit-learn's entry for entry and says so.

Run from the project root: ``.venv/bin/python -m benchmarks.dup_counts [--docs N]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from rules.duplicates.text import Document, clean_body, normalise_title
from rules.duplicates.vectors import _CHAR_HASHER, _WORD_HASHER, char_counts, word_counts

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "jira-storypoints"
CHUNK = 5_000
T = TypeVar("T")


def _rows(limit: int) -> tuple[list[str], list[str]]:
    if not DATA.exists():
        sys.exit(f"data not found: {DATA} (run from a checkout with ../shared beside it)")
    csv.field_size_limit(sys.maxsize)
    titles: list[str] = []
    descriptions: list[str] = []
    for path in sorted(DATA.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                titles.append(normalise_title(row["title"]))
                descriptions.append(row["description"] or "")
    return titles[:limit], descriptions[:limit]


def _cpu(work: Callable[[], T]) -> tuple[float, T]:
    started = time.process_time()
    result = work()
    best = time.process_time() - started
    for _ in range(2):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best, result


def _chunked(count: Callable[[Sequence[str]], object], texts: Sequence[str]) -> Callable[[], list[object]]:
    return lambda: [count(texts[start : start + CHUNK]) for start in range(0, len(texts), CHUNK)]


def _same(expected: list[object], actual: list[object]) -> bool:
    for left, right in zip(expected, actual, strict=True):
        a, b = sp.csr_matrix(left), sp.csr_matrix(right)
        if not (
            a.shape == b.shape
            and a.indices.dtype == b.indices.dtype
            and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data)
        ):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args()
    titles, descriptions = _rows(args.docs)
    clean_s, bodies = _cpu(lambda: [clean_body(text) for text in descriptions])
    documents = [Document(title, body) for title, body in zip(titles, bodies, strict=True)]
    words = [document.word_text for document in documents]
    chars = [document.char_text for document in documents]
    print(f"{len(documents)} real documents, CPU seconds (best of 3), chunks of {CHUNK}")
    print(f"  clean_body                      {clean_s:6.3f}")
    for name, hasher, fast, texts in (
        ("word 1-2-grams", _WORD_HASHER.transform, word_counts, words),
        ("char_wb 4-grams", _CHAR_HASHER.transform, char_counts, chars),
    ):
        slow_s, expected = _cpu(_chunked(hasher, texts))
        fast_s, actual = _cpu(_chunked(fast, texts))
        same = "identical" if _same(expected, actual) else "DIFFERENT"
        print(
            f"  {name:16} scikit-learn {slow_s:6.3f}  vectorised {fast_s:6.3f}  ({slow_s / fast_s:.1f}x, {same})"
        )


if __name__ == "__main__":
    main()
