"""The duplicate combiner study's own reading of the rule: its mutual top-1 with a margin and its count
of findings agree with ``ranking.distinct_best`` and with how the rule reports a flagged pair.

The study (``benchmarks/dup_combiner_study.py``) checks its count against ``benchmarks.dup_flags`` on
the real data at every run; these run without the semantic extra, on made-up candidate pairs.
"""

from __future__ import annotations

import random

import numpy as np

from benchmarks.dup_accuracy import groups_of
from benchmarks.dup_combiner_study import Candidates, count, default, mutual_on
from benchmarks.dup_flags import Labelled
from rules.duplicates.ranking import ScoredPair


def _candidates(pairs: list[ScoredPair], rows: int, duplicates: set[frozenset[str]]) -> Candidates:
    keys = [f"K{row}" for row in range(rows)]
    features = {
        "cosine": np.asarray([p.score for p in pairs]),
        "lexical": np.asarray([p.lexical for p in pairs]),
    }
    label = np.asarray([frozenset((keys[p.first], keys[p.second])) in duplicates for p in pairs])
    return Candidates(
        "made-up",
        Labelled([], duplicates, set(), groups_of(duplicates)),
        keys,
        pairs,
        features,
        label,
        ranks=features["cosine"].copy(),
        created=[float(row) for row in range(rows)],  # row order is creation order
    )


def test_mutual_top1_with_margin_on_the_cosine_is_the_rules_distinct_best() -> None:
    generator = random.Random(3)
    for _ in range(20):
        rows = 30
        seen: set[tuple[int, int]] = set()
        pairs = []
        for _ in range(80):
            a, b = sorted(generator.sample(range(rows), 2))
            if (a, b) in seen:
                continue
            seen.add((a, b))
            score = round(generator.uniform(0.2, 0.9), 3)
            pairs.append(ScoredPair(a, b, score, 0.1, score))
        c = _candidates(pairs, rows, set())
        ours = mutual_on(lambda f: f["cosine"], 0.45, 0.05)(c)
        theirs = default(0.45, 0.05)(c)
        assert ours.tolist() == theirs.tolist()
        assert theirs.any()


def test_a_flagged_pair_is_one_finding_on_the_newer_item_naming_its_best_partner() -> None:
    # K2 is flagged with K0 (0.8) and K1 (0.6): one finding, on K2, naming K0.
    pairs = [
        ScoredPair(0, 2, 0.8, 0.1, 0.8),
        ScoredPair(1, 2, 0.6, 0.1, 0.6),
        ScoredPair(0, 1, 0.3, 0.1, 0.3),
    ]
    duplicates = {frozenset(("K0", "K2"))}
    c = _candidates(pairs, 3, duplicates)
    result = count(c, np.asarray([True, True, False]))
    assert (result.found, result.findings, result.right, result.total) == (1, 1, 1, 1)
    # Only the weaker pair flagged: one finding, naming the wrong partner.
    result = count(c, np.asarray([False, True, False]))
    assert (result.found, result.findings, result.right) == (0, 1, 0)
    # A near-copy in wording (lexical >= 0.7) counts whatever the decision says, as in the rule.
    copy = [ScoredPair(0, 1, 0.5, 0.9, 0.5)]
    result = count(_candidates(copy, 2, set()), np.asarray([False]))
    assert result.findings == 1
