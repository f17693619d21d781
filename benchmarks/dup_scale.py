"""Measure the duplicate-candidate rule at scale, incrementally, and against naive rapidfuzz.

Each measurement runs in a fresh child process so its peak memory (ru_maxrss) is its own. Backlogs
come from ``gen_backlog.py`` (real Jira text, 1% planted duplicates). Figures:

- full: wall time of ``DuplicateCandidate.check`` on N issues (vectorise, search, score, findings),
  the process's peak RSS (generation included) and its RSS before the rule ran, and planted-pair
  recall (the planted pair appears in a finding at the default threshold).
- incremental: a 100k index is built and cached, then 1,000 issues are edited (words of another item
  appended to the description); wall time of the next check, and how many findings differ from a
  full rebuild (unchanged items keep their build-time weights, so a few borderline pairs can
  differ).
- naive: all pairs of titles with rapidfuzz ``token_set_ratio`` (what a user would write first), at
  2k and 20k issues, timed with ``process.cdist`` on this machine's cores; recall = planted pairs at
  or above ratio 90, and the number of pairs it would flag (for comparison: the rule's recall and
  finding count on the same backlog).

Run from the project root: ``.venv/bin/python -m benchmarks.dup_scale`` (default sizes 10k 50k 100k
plus the incremental and naive runs); ``--sizes 10000 50000 100000 200000`` adds the 200k point and
``--naive-full`` times every naive row block instead of extrapolating from three. The machine is
shared: the script prints the load average before each run so CPU contention is on record.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.gen_backlog import AS_OF, Backlog, generate
from refinebot.models import Finding, Issue
from rules.base import MemoryRuleCache, RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateOptions

NAIVE_CUTOFF = 90
# Children run as ``-m benchmarks.dup_scale`` from here, as the parent was.
ROOT = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def planted_recall(
    findings: Sequence[Finding], planted: Sequence[tuple[str, str]], threshold: float
) -> float:
    """Share of planted pairs that some finding names (as duplicate_of or a candidate at the
    threshold)."""
    flagged: set[frozenset[str]] = set()
    for finding in findings:
        flagged.add(frozenset((finding.issue, finding.details["duplicate_of"])))
        for candidate in finding.details["candidates"]:
            if candidate["score"] >= threshold:
                flagged.add(frozenset((finding.issue, candidate["issue"])))
    return sum(frozenset(pair) in flagged for pair in planted) / max(len(planted), 1)


def child_full(size: int) -> dict[str, Any]:
    """Generate a backlog of ``size`` and run the rule once."""
    backlog = generate(size)
    rss_before = _current_rss_mib()
    rule = DuplicateCandidate()
    started = time.perf_counter()
    findings = list(rule.check(backlog.issues, RuleContext(project="SCALE", now=AS_OF)))
    elapsed = time.perf_counter() - started
    threshold = DuplicateOptions().resolved_threshold()
    return {
        "issues": len(backlog.issues),
        "seconds": round(elapsed, 2),
        "peak_rss_mib": round(_rss_mib()),
        "rss_before_mib": round(rss_before),
        "findings": len(findings),
        "planted": len(backlog.planted),
        "planted_recall": round(planted_recall(findings, backlog.planted, threshold), 3),
    }


def _edited(issues: list[Issue], count: int) -> list[Issue]:
    """The backlog with ``count`` issues spread through it edited: each gets a few words from
    another item."""
    import random
    from dataclasses import replace

    rng = random.Random(11)
    step = max(len(issues) // count, 1)
    edited = list(issues)
    for position in range(0, step * count, step):
        issue = edited[position]
        donor = issues[rng.randrange(len(issues))].description.split()
        extra = " ".join(donor[:12]) or "Clarified during refinement."
        edited[position] = replace(issue, description=f"{issue.description} {extra}")
    return edited


def child_incremental(size: int, changed: int) -> dict[str, Any]:
    """Build and cache an index of ``size`` issues, edit ``changed`` of them, time the next run."""
    backlog = generate(size)
    cache = MemoryRuleCache()
    ctx = RuleContext(project="SCALE", now=AS_OF, cache=cache)
    rule = DuplicateCandidate()
    started = time.perf_counter()
    first = list(rule.check(backlog.issues, ctx))
    build = time.perf_counter() - started
    edited = _edited(backlog.issues, changed)
    started = time.perf_counter()
    second = list(rule.check(edited, ctx))
    update = time.perf_counter() - started
    started = time.perf_counter()
    fresh = list(DuplicateCandidate().check(edited, RuleContext(project="SCALE", now=AS_OF)))
    rebuild = time.perf_counter() - started
    updated_pairs = {(f.issue, f.details["duplicate_of"]) for f in second}
    rebuilt_pairs = {(f.issue, f.details["duplicate_of"]) for f in fresh}
    return {
        "issues": size,
        "changed": changed,
        "build_seconds": round(build, 2),
        "update_seconds": round(update, 2),
        "rebuild_seconds": round(rebuild, 2),
        "findings_first": len(first),
        "findings_update": len(second),
        "findings_rebuild": len(fresh),
        # Frozen IDF after an update vs refitted IDF after a rebuild: small score drift is expected.
        "findings_differing_from_rebuild": len(updated_pairs ^ rebuilt_pairs),
        "peak_rss_mib": round(_rss_mib()),
    }


def child_semantic(size: int, changed: int) -> dict[str, Any]:
    """The semantic option: first run (embeds the candidate items), then a run after ``changed`` edits.

    Sentence vectors live in the rule cache (``RuleContext.cache``) by item key and text fingerprint, so
    the second run embeds only the edited items. The time spent inside the model is measured apart, which
    gives the embedding rate and the extrapolated first run at 100k.
    """
    from rules import embeddings

    backlog = generate(size)
    ctx = RuleContext(project="SCALE", now=AS_OF, cache=MemoryRuleCache())
    options = DuplicateOptions(semantic=True)
    rule = DuplicateCandidate(options)
    embedded: list[tuple[int, float]] = []
    original = embeddings.embed

    def counting(texts: Sequence[str], model: str = embeddings.MODEL_NAME) -> Any:
        started = time.perf_counter()
        vectors = original(texts, model)
        embedded.append((len(texts), time.perf_counter() - started))
        return vectors

    embeddings.embed = counting  # type: ignore[assignment]
    embeddings.embed(["warm up: load the model outside the timed runs"])
    embedded.clear()
    started = time.perf_counter()
    first = list(rule.check(backlog.issues, ctx))
    first_seconds = time.perf_counter() - started
    first_embedded, first_model_seconds = sum(n for n, _ in embedded), sum(t for _, t in embedded)
    embedded.clear()
    edited = _edited(backlog.issues, changed)
    started = time.perf_counter()
    list(rule.check(edited, ctx))
    update_seconds = time.perf_counter() - started
    update_embedded, update_model_seconds = sum(n for n, _ in embedded), sum(t for _, t in embedded)
    embeddings.embed = original
    lexical_started = time.perf_counter()
    lexical = list(DuplicateCandidate().check(backlog.issues, RuleContext("SCALE", AS_OF)))
    lexical_seconds = time.perf_counter() - lexical_started
    rate = first_embedded / first_model_seconds if first_model_seconds else float("nan")
    share = first_embedded / size
    return {
        "issues": size,
        "first_run_seconds": round(first_seconds, 2),
        "first_run_embedded": first_embedded,
        "embedded_per_second": round(rate, 1),
        "update_seconds": round(update_seconds, 2),
        "changed": changed,
        "update_embedded": update_embedded,
        # At 100k: the lexical rule's measured time grows linearly (benchmarks/README.md), and the same
        # share of items is embedded at the same rate.
        "first_run_100k_extrapolated_seconds": round(
            (first_seconds - first_model_seconds) * 100_000 / size + share * 100_000 / rate
        ),
        # The update's work outside the model (index update, fusing every candidate pair) is linear in
        # the backlog; the model embeds the same ``changed`` items.
        "update_100k_extrapolated_seconds": round(
            (update_seconds - update_model_seconds) * 100_000 / size + update_embedded / rate
        ),
        "lexical_seconds": round(lexical_seconds, 2),
        "findings": len(first),
        "planted_recall": round(
            planted_recall(first, backlog.planted, options.resolved_threshold()),
            3,
        ),
        "lexical_findings": len(lexical),
        "lexical_planted_recall": round(
            planted_recall(lexical, backlog.planted, DuplicateOptions().resolved_threshold()), 3
        ),
        "peak_rss_mib": round(_rss_mib()),
    }


def child_naive(size: int, full: bool) -> dict[str, Any]:
    """rapidfuzz token_set_ratio over all title pairs vs the rule, on one backlog of ``size``."""
    import numpy as np
    from rapidfuzz import fuzz, process

    backlog: Backlog = generate(size)
    titles = [issue.title for issue in backlog.issues]
    row = {issue.key: i for i, issue in enumerate(backlog.issues)}
    # Time the full N x N matrix in row blocks; when not ``full``, time a sample of blocks and
    # extrapolate.
    block = 1000
    starts = list(range(0, size, block))
    timed = starts if full else starts[:: max(len(starts) // 3, 1)][:3]
    started = time.perf_counter()
    at_cutoff = 0
    for start in timed:
        scores = process.cdist(
            titles[start : start + block],
            titles,
            scorer=fuzz.token_set_ratio,
            dtype=np.uint8,
            workers=-1,
        )
        at_cutoff += int(np.count_nonzero(scores >= NAIVE_CUTOFF)) - scores.shape[0]  # minus self-pairs
    naive_seconds = (time.perf_counter() - started) * len(starts) / len(timed)
    naive_flagged = round(at_cutoff * len(starts) / len(timed) / 2)
    # Recall needs only the planted copies' rows: is the original at or above the cutoff?
    hits = 0
    for original, copy in backlog.planted:
        score = fuzz.token_set_ratio(titles[row[copy]], titles[row[original]])
        hits += score >= NAIVE_CUTOFF
    started = time.perf_counter()
    findings = list(DuplicateCandidate().check(backlog.issues, RuleContext(project="SCALE", now=AS_OF)))
    rule_seconds = time.perf_counter() - started
    threshold = DuplicateOptions().resolved_threshold()
    return {
        "issues": size,
        "naive_seconds": round(naive_seconds, 2),
        "naive_timed": "full"
        if len(timed) == len(starts)
        else f"extrapolated from {len(timed)} of {len(starts)} row blocks",
        "naive_recall": round(hits / max(len(backlog.planted), 1), 3),
        "naive_flagged_pairs": naive_flagged,
        "naive_planted_share_of_flagged": round(hits / max(naive_flagged, 1), 3),
        "rule_seconds": round(rule_seconds, 2),
        "rule_recall": round(planted_recall(findings, backlog.planted, threshold), 3),
        "rule_findings": len(findings),
        "rule_planted_share_of_findings": round(
            planted_recall(findings, backlog.planted, threshold)
            * len(backlog.planted)
            / max(len(findings), 1),
            3,
        ),
        "speedup": round(naive_seconds / max(rule_seconds, 1e-9), 1),
    }


def _run_child(args: list[str]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.dup_scale", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["load_avg_before"] = round(load, 2)
    return figures


def argv_has_only_semantic(argv: Sequence[str] | None) -> bool:
    """Whether the command line asks for the semantic run alone (``--semantic [N] [--changed N]``)."""
    words = list(sys.argv[1:] if argv is None else argv)
    return all(w.startswith(("--semantic", "--changed")) or w.isdigit() for w in words)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected measurements in child processes and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, 100_000])
    parser.add_argument("--incremental", type=int, default=100_000, help="index size (0 = skip)")
    parser.add_argument("--changed", type=int, default=1_000)
    parser.add_argument("--naive", type=int, nargs="*", default=[2_000, 20_000])
    parser.add_argument("--naive-full", action="store_true", help="time every naive row block")
    parser.add_argument(
        "--semantic",
        type=int,
        nargs="?",
        const=10_000,
        default=0,
        help="measure the semantic option at this size (default 10000; --changed items edited, default "
        "1000; needs refinebot[semantic]); alone it skips the lexical runs",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "full":
            figures = child_full(int(rest[0]))
        elif kind == "incremental":
            figures = child_incremental(int(rest[0]), int(rest[1]))
        elif kind == "semantic":
            figures = child_semantic(int(rest[0]), int(rest[1]))
        else:
            figures = child_naive(int(rest[0]), rest[1] == "full")
        print(json.dumps(figures))
        return 0
    print(f"cores: {os.cpu_count()}; machine shared with other jobs, see load_avg_before")
    if args.semantic and argv_has_only_semantic(argv):
        args.sizes, args.incremental, args.naive = [], 0, []
    for size in args.sizes:
        print("full", json.dumps(_run_child(["full", str(size)])), flush=True)
    if args.incremental:
        print(
            "incremental",
            json.dumps(_run_child(["incremental", str(args.incremental), str(args.changed)])),
            flush=True,
        )
    if args.semantic:
        changed = str(min(args.changed, args.semantic))
        print(
            "semantic",
            json.dumps(_run_child(["semantic", str(args.semantic), changed])),
            flush=True,
        )
    for size in args.naive:
        mode = "full" if args.naive_full else "sample"
        print("naive", json.dumps(_run_child(["naive", str(size), mode])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
