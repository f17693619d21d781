"""Build scaled synthetic backlogs from real Jira text, with a known set of planted duplicates.

Source text: ``../shared/data/jira-storypoints/`` (16 open-source Jira projects, 23k issues, MIT).
The first pass uses each real issue once; later passes build new issues from about a third of the
words of three real titles and a description of words drawn from four real descriptions (real
vocabulary and term frequencies, no shared sentences), so resampling does not itself create
look-alike pairs. Then ``planted`` items are copies of random earlier items, lightly perturbed the
way a second reporter would write them (a word dropped, two words swapped, a tag prefix, a shortened
or missing description), created later than their original. Statuses: 85% open, 10% closed in the
last 180 days, 5% closed long ago.

Run from the project root to print a summary: ``.venv/bin/python -m benchmarks.gen_backlog 10000``
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refinebot.markup import wiki_to_text
from refinebot.models import Issue, IssueType, SourceKind, StatusCategory

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jira-storypoints"
AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_TAGS = ("[UI] ", "[API] ", "Bug: ", "Story: ", "")


@dataclass(frozen=True, slots=True)
class Backlog:
    """A generated backlog and the (original key, copy key) pairs planted in it."""

    issues: list[Issue]
    planted: list[tuple[str, str]]


def load_texts(data: Path = DATA) -> list[tuple[str, str]]:
    """(title, plain-text description) of every real issue, wiki markup converted."""
    csv.field_size_limit(sys.maxsize)
    texts = []
    for path in sorted(data.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                title = (row.get("title") or "").strip()
                if title:
                    texts.append((title, wiki_to_text(row.get("description") or "")))
    return texts


def _blend_title(rng: random.Random, titles: Sequence[str]) -> str:
    """A new title: about a third of the words of each of three real titles, in a new order."""
    words = [w for title in titles for w in title.split() if rng.random() < 0.34]
    rng.shuffle(words)
    return " ".join(words[:12]) or titles[0]


def _blend_description(rng: random.Random, descriptions: Sequence[str]) -> str:
    """A new description: words drawn from several real descriptions (their vocabulary, no shared
    sentence)."""
    words = [w for description in descriptions for w in description.split()]
    if not words:
        return ""
    return " ".join(rng.choice(words) for _ in range(min(len(words), rng.randint(15, 80))))


def perturb(rng: random.Random, title: str, description: str) -> tuple[str, str]:
    """A second reporter's version of an issue: same problem, slightly different words."""
    words = title.split()
    if len(words) > 4 and rng.random() < 0.6:
        del words[rng.randrange(len(words))]
    if len(words) > 3 and rng.random() < 0.5:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    new_title = rng.choice(_TAGS) + " ".join(words)
    sentences = _SENTENCE.split(description) if description else []
    roll = rng.random()
    if roll < 0.15 or not sentences:
        new_description = ""
    else:
        keep = max(1, int(len(sentences) * rng.uniform(0.4, 0.9)))
        new_description = " ".join(sentences[:keep])
    return new_title, new_description


def _status(rng: random.Random) -> tuple[StatusCategory, datetime | None]:
    roll = rng.random()
    if roll < 0.85:
        return StatusCategory.TODO, None
    if roll < 0.95:
        return StatusCategory.DONE, AS_OF - timedelta(days=rng.randint(1, 170))
    return StatusCategory.DONE, AS_OF - timedelta(days=rng.randint(200, 900))


def generate(
    size: int,
    *,
    planted_share: float = 0.01,
    seed: int = 7,
    texts: Sequence[tuple[str, str]] | None = None,
) -> Backlog:
    """A backlog of ``size`` issues, ``planted_share`` of them planted duplicates of earlier
    ones."""
    rng = random.Random(seed)
    texts = list(texts) if texts is not None else load_texts()
    order = list(range(len(texts)))
    rng.shuffle(order)
    n_planted = int(size * planted_share)
    base_size = size - n_planted
    start = AS_OF - timedelta(days=3 * 365)
    step = (AS_OF - start) / max(size, 1)
    issues: list[Issue] = []
    for number in range(base_size):
        if number < len(order):
            title, description = texts[order[number]]
        else:
            sources = [texts[rng.randrange(len(texts))] for _ in range(4)]
            title = _blend_title(rng, [source[0] for source in sources[:3]])
            description = _blend_description(rng, [source[1] for source in sources])
        category, updated = _status(rng)
        issues.append(_issue(number, title, description, start + step * number, category, updated))
    planted: list[tuple[str, str]] = []
    for offset in range(n_planted):
        original = issues[rng.randrange(len(issues))]
        title, description = perturb(rng, original.title, original.description)
        number = base_size + offset
        created = max(original.created or start, start + step * number) + timedelta(hours=1)
        issues.append(_issue(number, title, description, created, StatusCategory.TODO, None))
        planted.append((original.key, issues[-1].key))
    return Backlog(issues=issues, planted=planted)


def _issue(
    number: int,
    title: str,
    description: str,
    created: datetime,
    category: StatusCategory,
    updated: datetime | None,
) -> Issue:
    return Issue(
        key=f"SCALE-{number + 1}",
        project="SCALE",
        source_kind=SourceKind.FILE,
        title=title,
        type=IssueType.STORY,
        description=description,
        status="Done" if category is StatusCategory.DONE else "To Do",
        status_category=category,
        created=created,
        updated=updated or created,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print a summary of one generated backlog."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"no data at {DATA}: expected ../shared/data/jira-storypoints", file=sys.stderr)
        return 2
    backlog = generate(args.size, seed=args.seed)
    open_items = sum(issue.is_open for issue in backlog.issues)
    print(f"{len(backlog.issues)} issues ({open_items} open), {len(backlog.planted)} planted duplicates")
    for original, copy in backlog.planted[:3]:
        by_key = {i.key: i for i in backlog.issues}
        print(f"  {original}: {by_key[original].title!r}\n  {copy}: {by_key[copy].title!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
