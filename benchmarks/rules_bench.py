"""Measure the issue-level rules on real Jira texts: issues/second on one core and per-rule flag rates.

Reads the 16 projects of ``../shared/data/jira-storypoints/`` (23,313 real issues with wiki-markup descriptions),
maps each row to an ``Issue`` (a story, as the data has no types), and times the rules alone (markup conversion is
timed separately). Run from the project root: ``python -m benchmarks.rules_bench [--repeat 5]``.

Before/after a rule change: ``--save-flags before.json`` on the old code writes the flagged keys per rule;
``--compare before.json --rule missing-acceptance-criteria --sample 30`` on the new code prints the flag rate
before and after and a random sample (seed 7) of the items whose decision changed, for reading by hand.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from refinebot.markup import wiki_to_text
from refinebot.models import Issue, IssueType, SourceKind
from refinebot.pipeline import build_rules, evaluate
from rules.base import BacklogRule, IssueRule, RuleContext
from rules.registry import build_registry

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "jira-storypoints"
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def load_rows() -> list[dict[str, str]]:
    """Every row of every project CSV."""
    csv.field_size_limit(sys.maxsize)
    rows: list[dict[str, str]] = []
    for path in sorted(DATA.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def to_issues(rows: list[dict[str, str]]) -> list[Issue]:
    """Map dataset rows to issues (descriptions converted from wiki markup)."""
    issues = []
    for row in rows:
        points = row.get("storypoint") or ""
        issues.append(
            Issue(
                key=row["issuekey"],
                project=row["issuekey"].rsplit("-", 1)[0],
                source_kind=SourceKind.FILE,
                title=row["title"] or "",
                type=IssueType.STORY,
                raw_type="Story",
                description=wiki_to_text(row["description"] or ""),
                story_points=float(points) if points else None,
                updated=datetime(2026, 9, 1, tzinfo=UTC),
            )
        )
    return issues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the data (best is reported)")
    parser.add_argument("--save-flags", type=Path, help="write the flagged keys per rule to this JSON file")
    parser.add_argument("--compare", type=Path, help="flagged keys saved by --save-flags on the old code")
    parser.add_argument("--rule", default="missing-acceptance-criteria", help="the rule to compare")
    parser.add_argument("--sample", type=int, default=30, help="changed decisions to print for reading")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"data not found: {DATA} (run from a checkout with ../shared beside it)")

    rows = load_rows()
    started = time.perf_counter()
    issues = to_issues(rows)
    convert = time.perf_counter() - started
    registry = build_registry(plugins=False)
    rules = build_rules(registry, {})
    issue_rules = [r for r in rules if isinstance(r, IssueRule)]
    backlog_rules = [r for r in rules if isinstance(r, BacklogRule)]
    ctx = RuleContext(project="BENCH", now=NOW)

    best = float("inf")
    findings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        findings = evaluate(issues, issue_rules, ctx)
        best = min(best, time.perf_counter() - started)

    per_rule: dict[str, float] = {}
    for rule in issue_rules:
        started = time.perf_counter()
        evaluate(issues, [rule], ctx)
        per_rule[rule.name] = time.perf_counter() - started
    for backlog_rule in backlog_rules:
        started = time.perf_counter()
        evaluate(issues, [backlog_rule], ctx)
        per_rule[backlog_rule.name] = time.perf_counter() - started

    counts = Counter(f.rule for f in findings)
    n = len(issues)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"data: {n:,} real Jira issues from {len(list(DATA.glob('*.csv')))} projects ({DATA})")
    print(f"wiki markup -> text: {convert:.2f} s ({n / convert:,.0f} issues/s)")
    print(
        f"issue-level rules ({len(issue_rules)} rules, best of {args.repeat}): {best:.3f} s "
        f"= {n / best:,.0f} issues/s on one core (target >= 50,000)"
    )
    print(f"peak RSS: {peak_mib:,.0f} MiB")
    print(f"{'rule':32} {'flagged':>8} {'rate':>7} {'issues/s':>12}")
    for name, seconds in per_rule.items():
        flagged = counts.get(name, 0) if name in counts or any(r.name == name for r in issue_rules) else 0
        if any(r.name == name for r in backlog_rules):
            flagged = len(evaluate(issues, [r for r in backlog_rules if r.name == name], ctx))
        print(f"{name:32} {flagged:8,} {flagged / n:7.1%} {n / seconds:12,.0f}")
    flags = {rule.name: sorted({f.issue for f in findings if f.rule == rule.name}) for rule in issue_rules}
    if args.save_flags:
        args.save_flags.write_text(json.dumps(flags), encoding="utf-8")
    if args.compare:
        compare(issues, json.loads(args.compare.read_text(encoding="utf-8")), flags, args.rule, args.sample)


def compare(
    issues: list[Issue], before: dict[str, list[str]], after: dict[str, list[str]], rule: str, sample: int
) -> None:
    """Flag rate of ``rule`` before and after, and a sample of changed decisions to read by hand."""
    old, new = set(before.get(rule, [])), set(after.get(rule, []))
    n = len(issues)
    print(
        f"{rule}: flagged before {len(old):,} ({len(old) / n:.1%}), after {len(new):,} ({len(new) / n:.1%})"
    )
    print(f"  no longer flagged: {len(old - new):,}; newly flagged: {len(new - old):,}")
    by_key = {issue.key: issue for issue in issues}
    changed = sorted(old ^ new)
    for key in random.Random(7).sample(changed, min(sample, len(changed))):
        verdict = "now flagged" if key in new else "no longer flagged"
        text = " ".join(by_key[key].description.split())
        print(f"--- {key} ({verdict}): {by_key[key].title[:90]}")
        print(f"    {text[:700]}")


if __name__ == "__main__":
    main()
