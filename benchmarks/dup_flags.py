"""Measure duplicate-candidate *flags* (not ranking): precision and recall of the flagged pairs.

Two data sets, each under each setting of the rule (lexical, semantic; with and without mutual top-1):

- the story duplicate set ``benchmarks/data/story_duplicates.yml``: 42 pairs of user stories written
  twice in different words and 42 near-miss pairs (same words, different work), all 168 in one
  backlog, and each half of it as a backlog of its own (odd pair ids: the half the semantic defaults
  were tuned on; even ids: held out). Found = duplicate pairs flagged; precision = flagged pairs
  that are a duplicate pair.
- Apache Hadoop Jira (``../shared/data/jira-duplicates/``, 2,503 issues, 66 labelled pairs): found
  = labelled pairs flagged; precision = flagged pairs inside one labelled group (a lower bound: the
  links are incomplete).

Counted on the rule's own findings (one per item, naming its best flagged partner), every item open,
so the figures are what a team would be shown.

Run from the project root: ``.venv/bin/python -m benchmarks.dup_flags`` (lexical rows);
``HF_HUB_OFFLINE=1 .venv-sem/bin/python -m benchmarks.dup_flags --semantic`` adds the semantic rows
(``--model all-MiniLM-L6-v2 all-mpnet-base-v2`` for both sentence models; ``--vectors
/tmp/vectors.pkl`` keeps the sentence vectors between runs: embedding Hadoop takes minutes;
``--no-hadoop`` runs the story set alone).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from benchmarks.dup_accuracy import DATA as HADOOP
from benchmarks.dup_accuracy import groups_of, load_issues, load_pairs
from refinebot.models import Issue, IssueType, SourceKind, StatusCategory
from rules.base import MemoryRuleCache, RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateOptions
from rules.duplicates.rule import DEFAULT_SEMANTIC_MODEL, SEMANTIC_MARGINS, SEMANTIC_THRESHOLDS

STORIES = Path(__file__).resolve().parent / "data" / "story_duplicates.yml"
NOW = datetime(2026, 11, 20, tzinfo=UTC)
# Where the rule keeps its sentence vectors, by model name.
VECTORS_KEY = "duplicate-candidate:BENCH:sentence-vectors:{model}"


@dataclass(frozen=True, slots=True)
class Labelled:
    """A backlog and its labels: duplicate pairs, near-miss pairs, duplicate group of each key."""

    issues: list[Issue]
    duplicates: set[frozenset[str]]
    near_misses: set[frozenset[str]]
    group: dict[str, int]


def load_stories(path: Path = STORIES, parity: int | None = None) -> Labelled:
    """The story set as one backlog of open stories, a day apart in file order.

    ``parity`` 1 or 0 keeps only the pairs with an odd or even number in their id (D01, N01 ... or
    D02, N02 ...): the odd half tunes the semantic defaults, the even half is held out.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    issues: list[Issue] = []
    duplicates: set[frozenset[str]] = set()
    near: set[frozenset[str]] = set()
    for kind, target in (("duplicates", duplicates), ("near_misses", near)):
        for entry in data[kind]:
            if parity is not None and int(entry["id"][1:]) % 2 != parity:
                continue
            keys = []
            for side in ("a", "b"):
                key = f"{entry['id']}-{side}"
                keys.append(key)
                issues.append(
                    Issue(
                        key=key,
                        project="STORY",
                        source_kind=SourceKind.FILE,
                        title=entry[side]["title"],
                        description=entry[side]["description"],
                        type=IssueType.STORY,
                        created=NOW - timedelta(days=400 - len(issues)),
                    )
                )
            target.add(frozenset(keys))
    return Labelled(issues, duplicates, near, groups_of(duplicates))


def load_hadoop(data: Path = HADOOP) -> Labelled:
    """The Hadoop export with every issue open (the rule compares open items)."""
    issues = [replace(issue, status_category=StatusCategory.TODO) for issue in load_issues(data)]
    pairs = load_pairs(data, {issue.key for issue in issues})
    return Labelled(issues, pairs, set(), groups_of(pairs))


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table: scoring (and sentence model), threshold, mutual top-1 on or off."""

    semantic: bool
    threshold: float
    mutual: bool
    model: str = DEFAULT_SEMANTIC_MODEL

    def label(self) -> str:
        scoring = f"semantic ({self.model})" if self.semantic else "lexical"
        margin = SEMANTIC_MARGINS[self.model]
        mutual = f", mutual top-1 (margin {margin})" if self.semantic else ", mutual top-1"
        return f"{scoring} >= {self.threshold:.2f}{mutual if self.mutual else ''}"


def evaluate(labelled: Labelled, setting: Setting, cache: MemoryRuleCache) -> tuple[int, int, int, int]:
    """(duplicate pairs found, findings, findings naming a partner in their group, near-miss findings).

    Counted as a team sees them: one finding per item, naming its best flagged partner.
    """
    options = DuplicateOptions(
        semantic=setting.semantic,
        semantic_model=setting.model,
        threshold=setting.threshold,
        mutual_top1=setting.mutual,
        closed_window_days=0,
    )
    findings = list(
        DuplicateCandidate(options).check(labelled.issues, RuleContext("BENCH", NOW, cache=cache))
    )
    named = {frozenset((f.issue, str(f.details["duplicate_of"]))) for f in findings}
    right = sum(1 for f in named if len({labelled.group.get(k, -1 - i) for i, k in enumerate(f)}) == 1)
    return len(named & labelled.duplicates), len(findings), right, len(named & labelled.near_misses)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the flag table for both data sets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--semantic", action="store_true", help="also the semantic rows (refinebot[semantic])"
    )
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="*",
        default=None,
        help="semantic thresholds to sweep (mutual top-1 with the margin)",
    )
    parser.add_argument("--no-hadoop", action="store_true", help="only the story set and its halves")
    parser.add_argument(
        "--model",
        nargs="*",
        default=[DEFAULT_SEMANTIC_MODEL],
        choices=sorted(SEMANTIC_THRESHOLDS),
        help="sentence models of the semantic rows (all-mpnet-base-v2 needs its weights installed)",
    )
    parser.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="keep the sentence vectors in this pickle file between runs (embedding Hadoop takes minutes)",
    )
    args = parser.parse_args(argv)
    if not (HADOOP / "hadoop_bugs.csv").exists():
        print(f"no data at {HADOOP}: expected ../shared/data/jira-duplicates", file=sys.stderr)
        return 2
    settings = [Setting(False, 0.55, False), Setting(False, 0.55, True)]
    if args.semantic:
        sweep = args.thresholds or [0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
        for model in args.model:
            settings += [Setting(True, SEMANTIC_THRESHOLDS[model], False, model)]
            settings += [Setting(True, t, True, model) for t in sweep]
    sets = {
        "stories": load_stories(),
        "odd half (tuning)": load_stories(parity=1),
        "even half (held out)": load_stories(parity=0),
    }
    if not args.no_hadoop:
        sets["hadoop"] = load_hadoop()
    for name, labelled in sets.items():
        print(
            f"{name}: {len(labelled.issues)} items, {len(labelled.duplicates)} duplicate pairs, "
            f"{len(labelled.near_misses)} near-miss pairs"
        )
    rows: dict[Setting, list[str]] = {s: [] for s in settings}
    kept: dict[str, object] = {}
    if args.vectors is not None and args.vectors.exists():
        kept = pickle.loads(args.vectors.read_bytes())
    for name, labelled in sets.items():
        cache = MemoryRuleCache()  # the index and sentence vectors, shared by the settings
        for model in args.model:
            if f"{model}:{name}" in kept:
                cache.put(VECTORS_KEY.format(model=model), kept[f"{model}:{name}"])
        started = time.perf_counter()
        for setting in settings:
            found, count, right, near = evaluate(labelled, setting, cache)
            precision = right / count if count else 1.0
            cell = f"{found} / {count} (P {precision:.2f}, R {found / len(labelled.duplicates):.2f})"
            rows[setting].append(cell + (f", {near} near-miss" if labelled.near_misses else ""))
        print(f"  {name}: {time.perf_counter() - started:.1f} s")
        for model in args.model:
            if cache.get(VECTORS_KEY.format(model=model)) is not None:
                kept[f"{model}:{name}"] = cache.get(VECTORS_KEY.format(model=model))
    if args.vectors is not None and kept:
        args.vectors.write_bytes(pickle.dumps(kept))
    print("pairs found / findings (precision, recall):")
    print(f"| setting | {' | '.join(sets)} |")
    print(f"|---|{'---|' * len(sets)}")
    for setting, cells in rows.items():
        print(f"| {setting.label()} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
