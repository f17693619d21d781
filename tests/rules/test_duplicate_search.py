"""The candidate search with common words held back from the product finds the plain search's pairs with their
full scores, and the batched template penalty gives the per-pair one."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from refinebot.models import Issue, SourceKind
from rules.duplicates import build_index
from rules.duplicates import search as search_module
from rules.duplicates.search import decode_pairs, exact_scores
from rules.duplicates.templates import penalise, slot_penalty
from rules.duplicates.text import Document

_WORDS = [
    f"{stem}{suffix}"
    for stem in ("alpha", "bravo", "cargo", "delta", "ember")
    for suffix in "abcdefghijklmnop"
]


def _issue(number: int, title: str, description: str) -> Issue:
    return Issue(
        key=f"S-{number + 1}",
        project="TEST",
        source_kind=SourceKind.FILE,
        title=title,
        description=description,
        created=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _backlog() -> list[Issue]:
    """Items of which two thirds share two generic words, with rarer words of their own and a few near-copies."""
    rng = random.Random(5)
    issues = []
    for number in range(60):
        words = rng.sample(_WORDS, 8)
        # In 40 of the 66 items: under the cap of common features (50 items), so they score.
        generic = "checkout payment " if number % 3 else ""
        issues.append(_issue(number, f"{generic}{' '.join(words[:3])}", f"the page {' '.join(words[3:])}"))
    for number in range(60, 66):
        original = issues[rng.randrange(60)]
        issues.append(_issue(number, f"{original.title} again", original.description))
    return issues


def _pairs(issues: list[Issue]) -> dict[int, float]:
    index = build_index(issues)
    return {
        int(code): float(score) for code, score in zip(index.pairs, index.scores, strict=True) if score >= 0.2
    }


def test_held_back_words_keep_the_pairs_and_their_full_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    issues = _backlog()
    plain = _pairs(issues)
    # "checkout" and "payment" (and the commonest 4-grams): held back from the product, they must still score.
    monkeypatch.setattr(search_module, "SEARCH_MAX_DF", 10)
    split = search_module._split_columns
    held_back: list[int] = []

    def spy(matrix: sp.csr_matrix, held: npt.NDArray[np.bool_]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        held_back.append(int(held.sum()))
        return split(matrix, held)

    monkeypatch.setattr(search_module, "_split_columns", spy)
    held = _pairs(issues)
    # Candidates come from the rarer words, so a pair scoring mostly on the generic ones may be missed;
    # a near-copy never is, and every pair found has its full score.
    strong = {code for code, score in plain.items() if score >= 0.5}
    assert len(strong) >= 6
    assert strong <= held.keys()
    assert held_back and held_back[0] > 2
    assert len(held.keys() & plain.keys()) >= 0.9 * len(plain)
    for code in held.keys() & plain.keys():
        assert held[code] == pytest.approx(plain[code], abs=1e-6)
    index = build_index(issues)
    low, high = decode_pairs(np.asarray(sorted(held), dtype=np.int64))
    full = exact_scores(index.matrix, low, high)
    penalised = index.scores[np.searchsorted(index.pairs, sorted(held))]
    assert np.all(penalised <= full + 1e-6)


def test_batched_template_penalty_is_the_per_pair_one() -> None:
    titles = [
        "update the year to 2021 in the notice file",
        "update the year to 2022 in the notice file",
        "add dockerfile for fedora 33",
        "add dockerfile for debian 10",
        "upgrade jetty to v9.4.40",
        "upgrade jetty to 9.4.43",
        "checkout fails when a coupon code is applied",
        "checkout failing when a coupon code is applied",
        "dark mode for the settings page",
        "",
    ]
    documents = [Document(title, "") for title in titles]
    pairs = np.asarray(list(itertools.combinations(range(len(titles)), 2)), dtype=np.int64)
    scores = np.linspace(0.1, 0.9, len(pairs)).astype(np.float32)
    penalised = penalise(documents, pairs[:, 0], pairs[:, 1], scores, floor=0.2)
    expected = [
        score * (slot_penalty(titles[a], titles[b]) if score >= 0.2 else 1.0)
        for (a, b), score in zip(pairs.tolist(), scores.tolist(), strict=True)
    ]
    assert penalised.tolist() == pytest.approx(expected)
    assert (penalised < scores).sum() >= 2  # the year and the Fedora/Debian templates at least
