"""Candidate ranking: which scored pairs of an index count, re-scored semantically, in what order.

``score_candidates`` reads the index's pairs above a floor, ``rerank`` fuses them with sentence
embeddings (the ``semantic`` option) and ``ranking_score`` orders a finding's candidates by
similarity times a preference for items filed close in time. Imports numpy: load it only when the
rule runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rules.duplicates.index import DuplicateIndex
from rules.duplicates.search import decode_pairs

if TYPE_CHECKING:
    from rules.duplicates.rule import DuplicateOptions

IDENTICAL_SCORE = 0.999


def recency_boost(days_apart: Any, weight: float, scale_days: float) -> Any:
    """A ranking multiplier of 1 to 1 + ``weight`` that favours candidates filed close in time.

    Duplicates cluster in time (the same failure is reported again soon), so among similar candidates the
    nearer one is likelier the original. It orders candidates only: thresholds apply to the similarity
    itself, so it never makes a pair flagged. Works on numbers and numpy arrays alike.
    """
    return 1.0 + weight * np.exp(-np.abs(days_apart) / scale_days)


def ranking_score(score: Any, days_apart: Any, options: DuplicateOptions) -> Any:
    """How candidates are ordered: similarity times the recency preference.

    Identical copies say nothing about which came first: they all get the full preference, so ties among them
    go to the oldest (the natural one to keep). Works on numbers and numpy arrays alike; the accuracy benchmark
    ranks with this same function.
    """
    days = np.where(np.asarray(score) >= IDENTICAL_SCORE, 0.0, days_apart)
    return score * recency_boost(days, options.recency_weight, options.recency_days)


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """Two items, by position in the indexed list, and their exact score."""

    first: int
    second: int
    score: float


def score_candidates(index: DuplicateIndex, min_score: float = 0.0) -> list[ScoredPair]:
    """Candidate pairs of the index scoring above zero and at least ``min_score``, best first."""
    keep = np.flatnonzero((index.scores >= min_score) & (index.scores > 0))
    keep = keep[np.argsort(-index.scores[keep], kind="stable")]
    low, high = decode_pairs(index.pairs[keep])
    return [
        ScoredPair(int(a), int(b), float(v)) for a, b, v in zip(low, high, index.scores[keep], strict=True)
    ]


# Semantic re-ranking looks at candidate pairs down to this lexical score; the fused score is the
# mean of the lexical and the embedding cosine, so lower pairs cannot reach a useful threshold.
SEMANTIC_FLOOR = 0.2
SEMANTIC_BODY_CHARS = 500


def rerank(index: DuplicateIndex, candidates: Sequence[ScoredPair]) -> list[ScoredPair]:
    """``candidates`` rescored as the mean of lexical score and embedding cosine, best first.

    Embeddings are cached in the index by item and text fingerprint, so a later run embeds only new
    or changed items. Needs the ``semantic`` extra (``SemanticUnavailableError`` otherwise).
    """
    from rules import embeddings

    rows = sorted({p.first for p in candidates} | {p.second for p in candidates})
    missing = [
        row for row in rows if index.embeddings.get(index.keys[row], ("", None))[0] != index.fingerprints[row]
    ]
    if missing:
        texts = [
            f"{index.documents[row].title}. {index.documents[row].body[:SEMANTIC_BODY_CHARS]}"
            for row in missing
        ]
        for row, vector in zip(missing, embeddings.embed(texts), strict=True):
            index.embeddings[index.keys[row]] = (index.fingerprints[row], vector)
    fused = []
    for pair in candidates:
        first = index.embeddings[index.keys[pair.first]][1]
        second = index.embeddings[index.keys[pair.second]][1]
        cosine = max(0.0, float(first @ second))
        fused.append(ScoredPair(pair.first, pair.second, 0.5 * (pair.score + cosine)))
    fused.sort(key=lambda p: -p.score)
    return fused
