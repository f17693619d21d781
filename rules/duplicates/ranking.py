"""Candidate ranking: which scored pairs of an index count, re-scored semantically, in what order.

``score_candidates`` reads the index's pairs above a floor, ``rerank`` fuses them with sentence
embeddings (the ``semantic`` option) and ``ranking_score`` orders a finding's candidates by
similarity times a preference for items filed close in time. Imports numpy: load it only when the
rule runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rules.duplicates.index import DuplicateIndex
from rules.duplicates.search import decode_pairs
from rules.duplicates.templates import slot_penalty_tokens, title_tokens

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def pair_ranks(
    pairs: Sequence[ScoredPair], created: Sequence[datetime | None], options: DuplicateOptions
) -> npt.NDArray[np.float64]:
    """``ranking_score`` of each pair (``created`` by row; naive dates read as UTC), in one call.

    Days apart are computed from whole microseconds, so each equals the scalar
    ``abs((a - b).total_seconds()) / 86400`` (both are the correctly rounded quotient of the same
    integers), and numpy's array ``exp`` gives its scalar results: the ranks, and so the order of
    candidates, are those a per-pair call gives, at a fraction of a microsecond a pair.
    """
    micros = np.zeros(len(created), dtype=np.int64)
    dated = np.zeros(len(created), dtype=bool)
    for row, moment in enumerate(created):
        if moment is not None:
            aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            micros[row] = (aware - _EPOCH) // _MICROSECOND
            dated[row] = True
    first = np.fromiter((p.first for p in pairs), dtype=np.int64, count=len(pairs))
    second = np.fromiter((p.second for p in pairs), dtype=np.int64, count=len(pairs))
    scores = np.fromiter((p.score for p in pairs), dtype=np.float64, count=len(pairs))
    apart = np.abs(micros[first] - micros[second]).astype(np.float64) / 1e6 / 86_400.0
    days = np.where(dated[first] & dated[second], apart, np.inf)
    ranks: npt.NDArray[np.float64] = np.asarray(ranking_score(scores, days, options), dtype=np.float64)
    return ranks


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """Two items, by position in the indexed list, and their exact score.

    ``lexical`` is the TF-IDF score (slot penalty applied); ``meaning`` the sentence-embedding cosine
    when the pair was re-scored semantically (None on the lexical path). ``score`` is what thresholds
    and mutual top-1 read: the lexical score, or the fused one.
    """

    first: int
    second: int
    score: float
    lexical: float
    meaning: float | None = None


def score_candidates(index: DuplicateIndex, min_score: float = 0.0) -> list[ScoredPair]:
    """Candidate pairs of the index scoring above zero and at least ``min_score``, best first."""
    keep = np.flatnonzero((index.scores >= min_score) & (index.scores > 0))
    keep = keep[np.argsort(-index.scores[keep], kind="stable")]
    low, high = decode_pairs(index.pairs[keep])
    return [
        ScoredPair(int(a), int(b), float(v), float(v))
        for a, b, v in zip(low, high, index.scores[keep], strict=True)
    ]


# A pair scoring at least this is flagged even when one side has a better partner: near-copies
# (the six identical "Disable JIRA plugin for YETUS on Hadoop" re-submissions) all deserve a flag.
# The study exempted pairs >= 0.7; benchmarks/README.md has the sweep.
MUTUAL_EXEMPT = 0.7
# Scores within this of an item's best count as its best too: identical copies tie.
_TIE = 1e-6


def mutual_best(
    pairs: Sequence[ScoredPair], threshold: float, exempt: float = MUTUAL_EXEMPT
) -> list[ScoredPair]:
    """The pairs of ``pairs`` reaching ``threshold`` where each item is the other's best candidate
    (ties count), or whose score reaches ``exempt``.

    ``pairs`` must hold every candidate of the items that may be flagged (at least those scoring from
    the threshold up): an item's best is read from them. Measured on Hadoop, this cut tracker flags
    by 10-50 % while losing almost no labelled pair (benchmarks/README.md).
    """
    best: dict[int, float] = {}
    for pair in pairs:
        if pair.score > best.get(pair.first, -1.0):
            best[pair.first] = pair.score
        if pair.score > best.get(pair.second, -1.0):
            best[pair.second] = pair.score
    return [
        pair
        for pair in pairs
        if pair.score >= threshold
        and (
            pair.score >= exempt
            or (pair.score >= best[pair.first] - _TIE and pair.score >= best[pair.second] - _TIE)
        )
    ]


# Semantic re-ranking looks at candidate pairs down to this lexical score; the fused score is the
# mean of the lexical and the embedding cosine, so lower pairs cannot reach a useful threshold.
SEMANTIC_FLOOR = 0.2
SEMANTIC_BODY_CHARS = 500

# A sentence vector and the fingerprint of the text it embeds, by item key.
VectorStore = MutableMapping[str, tuple[str, npt.NDArray[np.float32]]]


def semantic_text(index: DuplicateIndex, row: int) -> str:
    """What the sentence model reads of an item: its scored title and the opening of its body."""
    document = index.documents[row]
    return f"{document.title}. {document.body[:SEMANTIC_BODY_CHARS]}"


def text_fingerprint(text: str) -> str:
    """A short digest of an embedded text: a stored vector is reused only for the same text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def ensure_vectors(index: DuplicateIndex, rows: Sequence[int], vectors: VectorStore) -> int:
    """Embed the items of ``rows`` whose text has no vector in ``vectors`` yet; how many were embedded."""
    from rules import embeddings

    texts = {row: semantic_text(index, row) for row in rows}
    prints = {row: text_fingerprint(text) for row, text in texts.items()}
    missing = [row for row in rows if vectors.get(index.keys[row], ("", None))[0] != prints[row]]
    if missing:
        for row, vector in zip(missing, embeddings.embed([texts[row] for row in missing]), strict=True):
            vectors[index.keys[row]] = (prints[row], vector)
    return len(missing)


def rerank(
    index: DuplicateIndex, candidates: Sequence[ScoredPair], vectors: VectorStore | None = None
) -> list[ScoredPair]:
    """``candidates`` rescored as the mean of lexical score and embedding cosine, best first.

    The slot penalty for templated titles ("site A - blank page" / "site B - blank page") already
    lowers the lexical score; it multiplies the cosine too, because embeddings rate such pairs near
    0.99. Vectors come from ``vectors`` (by item key and text fingerprint; the rule keeps them in
    ``RuleContext.cache``) or else the index, and only items whose text changed are embedded. Needs
    the ``semantic`` extra (``SemanticUnavailableError`` otherwise).
    """
    store: VectorStore = index.embeddings if vectors is None else vectors
    rows = sorted({p.first for p in candidates} | {p.second for p in candidates})
    ensure_vectors(index, rows, store)
    tokens: dict[int, list[str]] = {}

    def tokens_of(row: int) -> list[str]:
        if row not in tokens:
            tokens[row] = title_tokens(index.documents[row].title)
        return tokens[row]

    fused = []
    for pair in candidates:
        first = store[index.keys[pair.first]][1]
        second = store[index.keys[pair.second]][1]
        cosine = max(0.0, float(first @ second))
        penalty = slot_penalty_tokens(tokens_of(pair.first), tokens_of(pair.second))
        fused.append(
            ScoredPair(pair.first, pair.second, 0.5 * (pair.lexical + penalty * cosine), pair.lexical, cosine)
        )
    fused.sort(key=lambda p: -p.score)
    return fused
