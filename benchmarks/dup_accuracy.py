"""Measure duplicate-candidate accuracy on real Apache Hadoop Jira issues with real duplicate links.

Data: ``../shared/data/jira-duplicates/`` (GitBugs, CC BY 4.0): 2,503 issues and their labelled
duplicate pairs. Protocol (time-aware, as in the DBRD literature): the later-created issue of each
labelled pair queries every issue created before it; its positives are the members of its duplicate
group created before it; rank = 1 + the number of candidates scoring strictly higher than the best
positive. Prints Recall@1/5/10/20 and MRR, then pair precision and recall of the rule's real
candidate search over all 2,503 issues at a sweep of thresholds, the shipped default marked. Links
are incomplete, so precision is a lower bound.

Run from the project root: ``.venv/bin/python -m benchmarks.dup_accuracy``
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from refinebot.markup import wiki_to_text
from refinebot.models import Issue, SourceKind, StatusCategory
from rules.duplicates import (
    PENALTY_FLOOR,
    SEMANTIC_BODY_CHARS,
    SEMANTIC_FLOOR,
    DuplicateOptions,
    Vectoriser,
    build_index,
    prepare_documents,
    ranking_score,
    rerank,
    score_candidates,
    slot_penalty,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jira-duplicates"
KS = (1, 5, 10, 20)
RERANK_TOP = 50
OPTIONS = DuplicateOptions()


def load_issues(data: Path) -> list[Issue]:
    """Hadoop issues as refinebot ``Issue`` objects (wiki markup converted, dates parsed as UTC)."""
    issues = []
    with (data / "hadoop_bugs.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            created = datetime.strptime(row["Created"], "%d/%b/%y %H:%M").replace(tzinfo=UTC)
            issues.append(
                Issue(
                    key=row["Issue id"],
                    project="HADOOP",
                    source_kind=SourceKind.FILE,
                    title=row["Summary"],
                    description=wiki_to_text(row["Description"]),
                    status=row["Status"],
                    status_category=StatusCategory.guess_from_status(row["Status"]),
                    created=created,
                )
            )
    return issues


def load_pairs(data: Path, known: set[str]) -> set[frozenset[str]]:
    """Undirected labelled pairs (the file lists both directions and comma lists)."""
    pairs: set[frozenset[str]] = set()
    with (data / "hadoop_duplicate_pairs.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            for other in row["Duplicate id"].split(","):
                pair = frozenset((row["Issue id"].strip(), other.strip()))
                if len(pair) == 2 and pair <= known:
                    pairs.add(pair)
    return pairs


def groups_of(pairs: set[frozenset[str]]) -> dict[str, int]:
    """Duplicate group id of every labelled issue (union-find over the pairs)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for a, b in (tuple(p) for p in pairs):
        parent[find(a)] = find(b)
    roots: dict[str, int] = {}
    return {key: roots.setdefault(find(key), len(roots)) for key in list(parent)}


def recall_at_k(
    issues: Sequence[Issue], pairs: set[frozenset[str]], *, semantic: bool = False
) -> tuple[dict[int, float], float, int]:
    """Time-aware Recall@k and MRR over one query per labelled pair's later issue.

    With ``semantic``, each query's top ``RERANK_TOP`` lexical candidates are re-ordered by the mean
    of lexical score and sentence-embedding cosine, as the rule's ``semantic`` option does.
    """
    documents, _ = prepare_documents(issues)
    _, matrix = Vectoriser.fit(documents)
    scores = (matrix @ matrix.T).toarray()
    cosines = None
    if semantic:
        from rules.embeddings import embed

        vectors = embed([f"{d.title}. {d.body[:SEMANTIC_BODY_CHARS]}" for d in documents])
        cosines = np.clip(vectors @ vectors.T, 0.0, None)
    titles = [doc.title for doc in documents]
    row = {issue.key: i for i, issue in enumerate(issues)}
    created = np.array([issue.created.timestamp() for issue in issues if issue.created])
    group = groups_of(pairs)
    queries = set()
    for pair in pairs:
        queries.add(max(pair, key=lambda k: (created[row[k]], k)))
    ranks = []
    for query in sorted(queries):
        q = row[query]
        earlier = created < created[q]
        earlier[q] = False
        # The rule's near-miss check lowers template look-alikes; rank with it, as the rule does.
        for c in np.flatnonzero(earlier & (scores[q] >= PENALTY_FLOOR)):
            scores[q, c] *= slot_penalty(titles[q], titles[c])
        positives = [row[k] for k, g in group.items() if g == group[query] and k != query and earlier[row[k]]]
        if not positives:
            continue
        candidates = np.flatnonzero(earlier)
        # Rank = 1 + candidates strictly ahead of the best positive (ties do not help it). With
        # re-ranking, the top RERANK_TOP lexical candidates form a first tier, by fused score.
        tier = np.ones(len(issues))
        # The rule ranks candidates by similarity times its recency preference (options' defaults).
        days = (created[q] - created) / 86_400.0
        key = ranking_score(scores[q], days, OPTIONS)
        if cosines is not None:
            top = candidates[np.argsort(-scores[q, candidates], kind="stable")[:RERANK_TOP]]
            tier[top] = 0
            # As the rule does in semantic mode: rank the fused score.
            key[top] = ranking_score(0.5 * (scores[q, top] + cosines[q, top]), days[top], OPTIONS)
        best = min(positives, key=lambda p: (tier[p], -key[p]))
        ahead = (tier[candidates] < tier[best]) | (
            (tier[candidates] == tier[best]) & (key[candidates] > key[best])
        )
        ranks.append(1 + int(np.sum(ahead)))
    ranks_arr = np.asarray(ranks)
    return (
        {k: float(np.mean(ranks_arr <= k)) for k in KS},
        float(np.mean(1.0 / ranks_arr)),
        len(ranks),
    )


def pair_quality(
    issues: Sequence[Issue],
    pairs: set[frozenset[str]],
    thresholds: Sequence[float],
    *,
    semantic: bool = False,
) -> list[tuple[float, int, int, float, float]]:
    """(threshold, flagged, true, precision, recall) of the rule's own candidate search over all
    issues."""
    group = groups_of(pairs)
    index = build_index(issues)
    scored = rerank(index, score_candidates(index, SEMANTIC_FLOOR)) if semantic else score_candidates(index)
    rows = []
    for threshold in thresholds:
        flagged = [
            frozenset((index.keys[p.first], index.keys[p.second])) for p in scored if p.score >= threshold
        ]
        same_group = sum(1 for f in flagged if len({group.get(k, -1 - i) for i, k in enumerate(f)}) == 1)
        found = sum(1 for pair in pairs if pair in set(flagged))
        precision = same_group / len(flagged) if flagged else 1.0
        rows.append((threshold, len(flagged), same_group, precision, found / len(pairs)))
    return rows


def print_audit(issues: Sequence[Issue], pairs: set[frozenset[str]], threshold: float, count: int) -> None:
    """Random pairs flagged at ``threshold`` (seed 7) for a human to judge; L = labelled."""
    group = groups_of(pairs)
    index = build_index(issues)
    flagged = [p for p in score_candidates(index) if p.score >= threshold]
    by_key = {issue.key: issue for issue in issues}
    print(f"audit: {min(count, len(flagged))} of {len(flagged)} pairs flagged at {threshold}")
    for pair in random.Random(7).sample(flagged, min(count, len(flagged))):
        first, second = by_key[index.keys[pair.first]], by_key[index.keys[pair.second]]
        labelled = group.get(first.key, -1) == group.get(second.key, -2)
        print(f"  {pair.score:.2f} {'L' if labelled else ' '} {first.title[:80]!r}")
        print(f"         {second.title[:80]!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the accuracy figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the Hadoop CSVs")
    parser.add_argument(
        "--semantic",
        action="store_true",
        help="re-rank with the bundled sentence-embedding model (needs refinebot[semantic])",
    )
    parser.add_argument(
        "--audit", type=int, default=0, help="also print this many random flagged pairs to judge"
    )
    args = parser.parse_args(argv)
    if not (args.data / "hadoop_bugs.csv").exists():
        print(f"no data at {args.data}: expected ../shared/data/jira-duplicates", file=sys.stderr)
        return 2
    started = time.perf_counter()
    issues = load_issues(args.data)
    pairs = load_pairs(args.data, {issue.key for issue in issues})
    print(f"Hadoop Jira: {len(issues)} issues, {len(pairs)} labelled duplicate pairs")
    recall, mrr, n = recall_at_k(issues, pairs, semantic=args.semantic)
    if args.semantic:
        print(f"semantic re-ranking of each query's top {RERANK_TOP} lexical candidates")
    figures = " ".join(f"R@{k}={v:.3f}" for k, v in recall.items())
    half_width = 1.96 * np.sqrt(recall[1] * (1 - recall[1]) / n)
    print(f"time-aware retrieval, {n} queries: {figures} MRR={mrr:.3f} (95% CI on R@1 +/-{half_width:.2f})")
    default = DuplicateOptions(semantic=args.semantic).resolved_threshold()
    sweep = sorted({0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, default})
    print("pair flagging over all issues (no status/window filter; precision is a lower bound):")
    print("  threshold  flagged  in-a-labelled-group  precision  recall(of labelled pairs)")
    quality = pair_quality(issues, pairs, sweep, semantic=args.semantic)
    for threshold, flagged, true, precision, rec in quality:
        mark = "  <- default" if threshold == default else ""
        print(f"  {threshold:9.2f}  {flagged:7d}  {true:19d}  {precision:9.3f}  {rec:6.3f}{mark}")
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.audit:
        print_audit(issues, pairs, default, args.audit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
