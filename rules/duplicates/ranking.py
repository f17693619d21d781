"""Candidate ranking: which scored pairs of an index count, re-scored semantically, in what order.

``score_candidates`` reads the index's pairs above a floor; ``meaning_pairs`` and ``distinct_best``
score and flag pairs by sentence-embedding cosine (the ``semantic`` option); ``rerank`` fuses
lexical and embedding scores for ranking (the accuracy benchmark); ``ranking_score`` orders a
finding's candidates by similarity times a preference for items filed close in time. Imports
numpy: load it only when the rule runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from rules.duplicates.index import DuplicateIndex
from rules.duplicates.search import PAIR_SHIFT, decode_pairs, exact_scores
from rules.duplicates.templates import penalise, slot_penalty_tokens, title_tokens

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


# Microseconds since the epoch of each row's creation (0 when undated), and which rows are dated.
RowTimes = tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]


def row_times(created: Sequence[datetime | None], rows: npt.NDArray[np.int64] | None = None) -> RowTimes:
    """The creation times ``pair_ranks`` reads, of ``rows`` only (all when None; the others stay
    undated): a backlog's rank computations need the rows of a few pairs, not all 200k."""
    if rows is None:
        wanted: Sequence[int] = range(len(created))
    else:
        marked = np.zeros(len(created), dtype=bool)
        marked[rows] = True
        wanted = np.flatnonzero(marked).tolist()
    micros = np.zeros(len(created), dtype=np.int64)
    dated = np.zeros(len(created), dtype=bool)
    found = [
        (row, ((moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH) // _MICROSECOND)
        for row in wanted
        if (moment := created[row]) is not None
    ]
    if found:
        where = np.fromiter((row for row, _ in found), dtype=np.int64, count=len(found))
        micros[where] = np.fromiter((value for _, value in found), dtype=np.int64, count=len(found))
        dated[where] = True
    return micros, dated


def rank_arrays(
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    times: RowTimes,
    options: DuplicateOptions,
) -> npt.NDArray[np.float64]:
    """``pair_ranks`` of the pairs ``(first[i], second[i])`` scoring ``scores[i]`` (``times`` must
    hold both rows of every pair)."""
    micros, dated = times
    apart = np.abs(micros[first] - micros[second]).astype(np.float64) / 1e6 / 86_400.0
    days = np.where(dated[first] & dated[second], apart, np.inf)
    ranks: npt.NDArray[np.float64] = np.asarray(ranking_score(scores, days, options), dtype=np.float64)
    return ranks


def pair_ranks(
    pairs: Sequence[ScoredPair],
    created: Sequence[datetime | None],
    options: DuplicateOptions,
    times: RowTimes | None = None,
) -> npt.NDArray[np.float64]:
    """``ranking_score`` of each pair (``created`` by row; naive dates read as UTC), in one call
    (``times``: ``row_times`` of ``created`` already computed for the pairs' rows).

    Days apart are computed from whole microseconds, so each equals the scalar
    ``abs((a - b).total_seconds()) / 86400`` (both are the correctly rounded quotient of the same
    integers), and numpy's array ``exp`` gives its scalar results: the ranks, and so the order of
    candidates, are those a per-pair call gives, at a fraction of a microsecond a pair.
    """
    first = np.fromiter((p.first for p in pairs), dtype=np.int64, count=len(pairs))
    second = np.fromiter((p.second for p in pairs), dtype=np.int64, count=len(pairs))
    scores = np.fromiter((p.score for p in pairs), dtype=np.float64, count=len(pairs))
    if times is None:
        times = row_times(created, np.concatenate([first, second]))
    return rank_arrays(first, second, scores, times, options)


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
    # ``tolist`` gives the Python ints and floats that ``int``/``float`` of each numpy scalar gave,
    # without a numpy scalar per value (a 200k backlog has over a million candidates).
    values = index.scores[keep].tolist()
    return list(map(ScoredPair, low.tolist(), high.tolist(), values, values))


class CandidateArrays(Sequence[ScoredPair]):
    """Lexical candidate pairs as arrays (rows ``first`` < ``second``, float32 ``scores``), best
    first: the list ``score_candidates`` returns, with a ``ScoredPair`` built only for an item read.

    A 200k backlog has over a million candidates, and one frozen dataclass per pair was seconds of
    the scan; the rule reads only the flagged pairs and the neighbours of reporting items.
    """

    __slots__ = ("first", "scores", "second")

    def __init__(
        self, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
    ) -> None:
        self.first, self.second, self.scores = first, second, scores

    def __len__(self) -> int:
        return len(self.scores)

    @overload
    def __getitem__(self, item: int) -> ScoredPair: ...

    @overload
    def __getitem__(self, item: slice) -> list[ScoredPair]: ...

    def __getitem__(self, item: int | slice) -> ScoredPair | list[ScoredPair]:
        if isinstance(item, slice):
            return [self[position] for position in range(*item.indices(len(self)))]
        value = float(self.scores[item])
        return ScoredPair(int(self.first[item]), int(self.second[item]), value, value)

    def take(self, positions: npt.NDArray[np.intp]) -> list[ScoredPair]:
        """The pairs at ``positions``, in that order."""
        values = self.scores[positions].tolist()
        return list(
            map(ScoredPair, self.first[positions].tolist(), self.second[positions].tolist(), values, values)
        )


def _falling(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """``np.argsort(-scores, kind="stable")`` for positive float32 scores, by one sort of int64 keys.

    A positive float's bits order as the float does, so (inverted bits, position) packed in one
    uint64 sorts by falling score with ties in place order, the stable order; numpy sorts such
    keys several times faster than it stable-argsorts floats (a million candidates at 200k items).
    """
    if scores.dtype != np.float32 or (len(scores) and not bool((scores > 0).all())) or len(scores) >= 2**32:
        return np.argsort(-scores, kind="stable")
    bits = scores.view(np.uint32).astype(np.uint64)
    keys = ((np.uint64(0xFFFFFFFF) - bits) << np.uint64(32)) | np.arange(len(scores), dtype=np.uint64)
    keys.sort()
    order: npt.NDArray[np.int64] = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return order


def candidate_arrays(index: DuplicateIndex, min_score: float = 0.0) -> CandidateArrays:
    """``score_candidates`` as arrays: the same pairs in the same order."""
    keep = np.flatnonzero((index.scores >= min_score) & (index.scores > 0))
    keep = keep[_falling(index.scores[keep])]
    low, high = decode_pairs(index.pairs[keep])
    return CandidateArrays(low, high, index.scores[keep])


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


def mutual_best_positions(
    pairs: CandidateArrays, rows: int, threshold: float, exempt: float = MUTUAL_EXEMPT
) -> npt.NDArray[np.intp]:
    """Positions in ``pairs`` of the pairs ``mutual_best`` keeps, in order, computed in numpy.

    The scores are compared as float64, the Python floats ``mutual_best`` compares, so the same
    pairs pass (``rows``: the number of items the pairs' rows index).
    """
    scores = pairs.scores.astype(np.float64)
    best = np.full(rows, -1.0)
    np.maximum.at(best, pairs.first, scores)
    np.maximum.at(best, pairs.second, scores)
    mutual = (scores >= best[pairs.first] - _TIE) & (scores >= best[pairs.second] - _TIE)
    return np.flatnonzero((scores >= threshold) & ((scores >= exempt) | mutual))


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


# Models whose items are embedded as two texts, the title and the opening of the description, and
# compared crosswise: a pair's score is the better of "A's title against B's description" and "B's
# title against A's description". Measured on the story set (benchmarks/dup_flags.py): near misses
# share their titles' words, while a reworded duplicate's description describes the other's title.
# With all-mpnet-base-v2 this separates reworded pairs from near misses far better than one vector
# of the whole text (AUC 0.85 against 0.65 on the odd half); with all-MiniLM-L6-v2 it did not help
# on the odd half, so MiniLM keeps one vector.
CROSSWISE_MODELS = frozenset({"all-mpnet-base-v2"})


def semantic_texts(index: DuplicateIndex, row: int, crosswise: bool) -> tuple[str, ...]:
    """The texts embedded for an item: the whole text, or (title, description) when crosswise.

    An item without a description stands in its title for it.
    """
    if not crosswise:
        return (semantic_text(index, row),)
    document = index.documents[row]
    return document.title, document.body[:SEMANTIC_BODY_CHARS] or document.title


def text_fingerprint(text: str) -> str:
    """A short digest of an embedded text: a stored vector is reused only for the same text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def ensure_vectors(
    index: DuplicateIndex, rows: Sequence[int], vectors: VectorStore, model: str | None = None
) -> int:
    """Embed the items of ``rows`` whose text has no vector in ``vectors`` yet; how many were embedded.

    A crosswise model's vector is a 2 x d array (title, description); otherwise one d-vector.
    """
    from rules import embeddings

    name = model or embeddings.MODEL_NAME
    crosswise = name in CROSSWISE_MODELS
    texts = {row: semantic_texts(index, row, crosswise) for row in rows}
    prints = {row: text_fingerprint("\x00".join(parts)) for row, parts in texts.items()}
    missing = [row for row in rows if vectors.get(index.keys[row], ("", None))[0] != prints[row]]
    if missing:
        width = 2 if crosswise else 1
        flat = [text for row in missing for text in texts[row]]
        embedded = embeddings.embed(flat, name)
        for number, row in enumerate(missing):
            block = embedded[number * width : (number + 1) * width]
            vectors[index.keys[row]] = (prints[row], block if crosswise else block[0])
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


# The semantic path flags by meaning alone. Measured on the story set (benchmarks/dup_flags.py):
# reworded duplicates share few words (lexical median 0.13) while same-words near misses share
# many (0.42), so fusing the lexical score in (the old mean) pushed every reworded pair under any
# useful threshold. Candidates are each item's nearest items by cosine, plus the lexical ones.
SEMANTIC_TOP_K = 10
# With mutual top-1, a pair must also stand out: its cosine beats each side's next-best partner by
# this much. Topic clusters (bug trackers: many issues about one component; stories: one screen for
# several roles) have many close neighbours and no clear best one. Tuned on half of the story set
# with the Hadoop findings held to about today's count (benchmarks/README.md has the sweep).
SEMANTIC_MARGIN = 0.05
# Rows per block of the dense product: about 100 MB of float32 scores per block whatever the size.
_CHUNK_CELLS = 25_000_000


def _similarity_block(matrix: npt.NDArray[np.float32], own: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Similarity of the rows ``own`` with every row: the dot product of one vector per item, or
    for (title, description) pairs of vectors (an n x 2 x d array) the crosswise best."""
    if matrix.ndim == 2:
        block: npt.NDArray[np.float32] = matrix[own] @ matrix.T
        return block
    titles, bodies = matrix[:, 0], matrix[:, 1]
    crossed: npt.NDArray[np.float32] = np.maximum(titles[own] @ bodies.T, bodies[own] @ titles.T)
    return crossed


def pair_similarity(
    matrix: npt.NDArray[np.float32], low: npt.NDArray[np.int64], high: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Similarity of each (low, high) row pair, as ``_similarity_block`` scores it, clipped to 0-1."""
    if matrix.ndim == 2:
        raw = np.einsum("ij,ij->i", matrix[low], matrix[high])
    else:
        titles, bodies = matrix[:, 0], matrix[:, 1]
        raw = np.maximum(
            np.einsum("ij,ij->i", titles[low], bodies[high]), np.einsum("ij,ij->i", bodies[low], titles[high])
        )
    scores: npt.NDArray[np.float32] = np.clip(raw, 0.0, 1.0).astype(np.float32)
    return scores


def _nearest_pairs(
    matrix: npt.NDArray[np.float32], top_k: int, query_rows: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]:
    """Each query row's (all rows when None) ``top_k`` most similar other rows by dot product, as
    encoded (low, high) pairs."""
    rows = matrix.shape[0]
    k = min(top_k, rows - 1)
    queries = np.arange(rows, dtype=np.int64) if query_rows is None else query_rows
    if k <= 0 or len(queries) == 0:
        return np.zeros(0, dtype=np.int64)
    found = []
    step = max(1, _CHUNK_CELLS // rows)
    for start in range(0, len(queries), step):  # blocks keep the dense product's memory bounded
        own = queries[start : start + step]
        block = _similarity_block(matrix, own)
        block[np.arange(len(own)), own] = -np.inf
        # The k-th best score of each row, then one comparison: cheaper than an argpartition (ties
        # may add a few pairs).
        kth = np.partition(block, rows - k, axis=1)[:, rows - k]
        local, other = np.nonzero(block >= kth[:, None])
        first = own[local].astype(np.int64)
        second = other.astype(np.int64)
        low, high = np.minimum(first, second), np.maximum(first, second)
        found.append((low << PAIR_SHIFT) | high)
    return np.unique(np.concatenate(found))


# A backlog's nearest pairs as last found, kept in the rule cache: "prints" (item key -> fingerprint
# of the text its vector embeds) and "pairs" (sorted key pairs). Searching all pairs is quadratic
# (about 8 s at 10k items, minutes at 100k on 2 cores), so a later run searches only items that are
# new or changed and keeps the pairs found among the others, as the lexical index does.
NeighbourCache = MutableMapping[str, Any]
# Past this share of new or changed items, search everything again.
NEIGHBOUR_REBUILD_SHARE = 0.2


def nearest_pairs(
    index: DuplicateIndex,
    matrix: npt.NDArray[np.float32],
    store: VectorStore,
    cache: NeighbourCache | None = None,
    top_k: int = SEMANTIC_TOP_K,
) -> npt.NDArray[np.int64]:
    """Encoded (low, high) row pairs of each item's ``top_k`` nearest items; with ``cache``, only
    new or changed items are searched and ``cache`` is brought up to date."""
    keys = index.keys
    prints = {key: store[key][0] for key in keys}
    known: dict[str, str] = cache.get("prints", {}) if cache is not None else {}
    changed = [row for row, key in enumerate(keys) if known.get(key) != prints[key]]
    if cache is None or not known or len(changed) > NEIGHBOUR_REBUILD_SHARE * len(keys):
        codes = _nearest_pairs(matrix, top_k)
    else:
        fresh = _nearest_pairs(matrix, top_k, np.asarray(changed, dtype=np.int64))
        same = {key for key in keys if known.get(key) == prints[key]}
        row_of = index.row_of
        kept = [
            (min(row_of[a], row_of[b]) << PAIR_SHIFT) | max(row_of[a], row_of[b])
            for a, b in cache.get("pairs", ())
            if a in same and b in same
        ]
        codes = np.union1d(fresh, np.asarray(kept, dtype=np.int64))
    if cache is not None:
        low, high = decode_pairs(codes)
        cache["prints"] = prints
        cache["pairs"] = [(keys[a], keys[b]) for a, b in zip(low.tolist(), high.tolist(), strict=True)]
    return codes


def meaning_pairs(
    index: DuplicateIndex,
    lexical: Sequence[ScoredPair],
    vectors: VectorStore | None = None,
    neighbours: NeighbourCache | None = None,
    top_k: int = SEMANTIC_TOP_K,
    model: str | None = None,
) -> list[ScoredPair]:
    """Candidate pairs scored by meaning, best first: ``score`` = embedding cosine of the two items
    (for a crosswise ``model``, the better of title against description either way).

    Candidates are each item's ``top_k`` nearest items by cosine plus the ``lexical`` candidates.
    The slot penalty for templated titles ("site A - blank page" / "site B - blank page") multiplies
    the cosine, because embeddings rate such pairs near 0.99; ``lexical`` keeps the TF-IDF score
    (penalty applied) for the explanation and the near-copy exemption. Every item is embedded (only
    those whose text has no vector in ``vectors`` yet); with ``neighbours`` (a dict the rule keeps in
    its cache) only new or changed items are searched. Needs the ``semantic`` extra.
    """
    store: VectorStore = index.embeddings if vectors is None else vectors
    rows = list(range(len(index.keys)))
    ensure_vectors(index, rows, store, model)
    if len(rows) < 2:
        return []
    matrix = np.stack([store[key][1] for key in index.keys]).astype(np.float32, copy=False)
    codes = nearest_pairs(index, matrix, store, neighbours, top_k)
    if lexical:
        known = np.asarray([(p.first << PAIR_SHIFT) | p.second for p in lexical], dtype=np.int64)
        codes = np.union1d(codes, known)
    low, high = decode_pairs(codes)
    cosine = pair_similarity(matrix, low, high)
    words = penalise(index.documents, low, high, exact_scores(index.matrix, low, high))
    tokens: dict[int, list[str]] = {}

    def tokens_of(row: int) -> list[str]:
        if row not in tokens:
            tokens[row] = title_tokens(index.documents[row].title)
        return tokens[row]

    pairs = []
    for a, b, meaning, wording in zip(
        low.tolist(), high.tolist(), cosine.tolist(), words.tolist(), strict=True
    ):
        penalty = slot_penalty_tokens(tokens_of(a), tokens_of(b))
        pairs.append(ScoredPair(a, b, penalty * meaning, wording, meaning))
    pairs.sort(key=lambda p: -p.score)
    return pairs


def distinct_best(
    pairs: Sequence[ScoredPair],
    threshold: float,
    margin: float = SEMANTIC_MARGIN,
    exempt: float = MUTUAL_EXEMPT,
) -> list[ScoredPair]:
    """The pairs of ``pairs`` reaching ``threshold`` where each item is the other's best candidate
    by a ``margin`` over each side's next-best one, or whose *lexical* score reaches ``exempt``.

    Near-copies (the same title filed again) are exempt on their wording: a burst of identical
    re-submissions has no distinct best pair, yet every one of them deserves a flag. ``pairs`` must
    hold every candidate of the items that may be flagged: bests are read from them.
    """
    best: dict[int, float] = {}
    second: dict[int, float] = {}
    for pair in pairs:
        for row in (pair.first, pair.second):
            if pair.score > best.get(row, -1.0):
                second[row] = best.get(row, 0.0)
                best[row] = pair.score
            elif pair.score > second.get(row, 0.0):
                second[row] = pair.score

    def runner_up(row: int, score: float) -> float:
        # The best other partner: the second best when this pair is the best (ties: the tie).
        return second.get(row, 0.0) if score >= best[row] - _TIE else best[row]

    flagged = []
    for pair in pairs:
        if pair.lexical >= exempt:
            flagged.append(pair)
            continue
        if pair.score < threshold:
            continue
        if pair.score < best[pair.first] - _TIE or pair.score < best[pair.second] - _TIE:
            continue
        rival = max(runner_up(pair.first, pair.score), runner_up(pair.second, pair.score))
        if pair.score - rival >= margin:
            flagged.append(pair)
    return flagged
