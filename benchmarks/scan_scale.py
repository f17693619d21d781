"""Measure the whole ``refinebot scan --format json`` process on big Jira CSV backlogs built from real text.

Two generated backlogs, both from the 23,313 real titles and descriptions of
``../shared/data/jira-storypoints/`` (descriptions keep their Jira wiki markup, as an export does):

- realistic: every item is new, its title short runs of words cut at random points of three real
  titles, its description runs of four real descriptions (``_blend``); about 2 % are planted rewordings of
  an earlier item (a word dropped or swapped, a tag prefix, a shortened description);
- duplicate-heavy: a fifth of the items as above, every other item a copy of one of them with a
  suffix on its title ("... again", "... on staging"), so most items are somebody's near-copy.

85 % open, 10 % closed in the last 180 days, 5 % closed long ago; ISO dates (a Jira CSV export's
own ``dd/MMM/yy`` dates parse too, through the same function). Files are cached under
``--cache-dir`` (default: the temp dir), never in the repository.

Each size runs ``refinebot scan -c CONFIG --format json`` in a fresh process under
``/usr/bin/time -v``, with ``REFINEBOT_LOG_LEVEL=DEBUG`` so the phase timers (``phase NAME: S s``
debug lines of the CSV reader, the duplicate rule and the JSON writer) print; the table shows wall,
CPU (user + sys), peak RSS (GNU time's maximum resident set size: the largest of the process and its
forked workers, not their sum), the findings and the phases. ``--second N`` also measures the
persisted duplicate index: a scan of the realistic N backlog (the store keeps the index), then a
scan of the same backlog with 1 % of items changed (words of another item appended to the
description), ``--second-runs`` times (default 3), each from a copy of the store the first left.

    .venv/bin/python -m benchmarks.scan_scale [--sizes 10000 50000 100000 200000]
        [--kinds realistic duplicate-heavy] [--repeat K] [--second 200000 [--second-runs 3]]
        [--save-json DIR]

Under each run with duplicate findings: the explanations' cost, ``dup-explain``'s wall time per
duplicate finding (their shared terms and the findings built from them), and the CPU time per
finding of this process and the forked workers together.

``--save-json DIR`` keeps each run's JSON output (to diff outputs byte for byte before and after a
change). The machine may be shared: the 1-minute load average before each run is printed.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.gen_backlog import DATA, perturb

ROOT = Path(__file__).resolve().parents[1]
AS_OF = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
GENERATOR_VERSION = 3  # part of the cached file names: bump when the generated text changes
PLANTED_SHARE = 0.02
BASE_SHARE = 0.2  # of the duplicate-heavy backlog: the rest are copies
CHANGED_SHARE = 0.01
_SUFFIXES = ("again", "still failing", "reopened", "on staging", "in production", "after upgrade")
HEADER = ["Issue key", "Summary", "Issue Type", "Status", "Created", "Updated", "Description"]
KINDS = ("realistic", "duplicate-heavy")
_PHASE = re.compile(r"phase ([\w-]+): ([\d.]+) s \(cpu ([\d.]+) s\)")


def load_raw_texts(data: Path = DATA) -> list[tuple[str, str]]:
    """(title, description with its wiki markup) of every real issue."""
    csv.field_size_limit(sys.maxsize)
    texts = []
    for path in sorted(data.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                title = (row.get("title") or "").strip()
                if title:
                    texts.append((title, row.get("description") or ""))
    return texts


def _run(rng: random.Random, text: str, shortest: int, longest: int) -> str:
    """A run of ``shortest`` to ``longest`` words (all of a shorter text) from a random point of
    ``text``."""
    words = text.split(" ")
    length = min(len(words), rng.randint(shortest, longest))
    start = rng.randrange(len(words) - length + 1)
    return " ".join(words[start : start + length])


def _blend(rng: random.Random, texts: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """A new item: its title short runs of words cut at random points of three real titles, its
    description runs of four real descriptions.

    At 200k items each real text is drawn about 30 times; short runs from random points keep two
    items that drew one source apart (items built from the fixed halves of real texts shared a half
    word for word: 34 % of a 200k backlog got a duplicate finding).
    """
    titles = [texts[rng.randrange(len(texts))][0] for _ in range(3)]
    descriptions = [texts[rng.randrange(len(texts))][1] for _ in range(4)]
    title = " ".join(_run(rng, text, 2, 4) for text in titles).strip() or titles[0]
    description = " ".join(_run(rng, text, 8, 30) for text in descriptions if text).strip()
    return title, description


def _status(rng: random.Random) -> tuple[str, datetime | None]:
    roll = rng.random()
    if roll < 0.85:
        return ("To Do" if roll < 0.7 else "In Progress"), None
    if roll < 0.95:
        return "Done", AS_OF - timedelta(days=rng.randint(1, 170))
    return "Done", AS_OF - timedelta(days=rng.randint(200, 900))


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def generate_rows(kind: str, size: int, texts: Sequence[tuple[str, str]], seed: int = 7) -> list[list[str]]:
    """The CSV rows (without header) of one generated backlog."""
    rng = random.Random(f"{seed}:{kind}:{size}")
    start = AS_OF - timedelta(days=3 * 365)
    step = (AS_OF - start) / max(size, 1)
    items: list[tuple[str, str]] = []
    base = size if kind == "realistic" else max(1, int(size * BASE_SHARE))
    for number in range(size):
        if number < base:
            if kind == "realistic" and number > 100 and rng.random() < PLANTED_SHARE:
                items.append(perturb(rng, *items[rng.randrange(number)]))
            else:
                items.append(_blend(rng, texts))
        else:
            title, description = items[rng.randrange(base)]
            items.append((f"{title} {rng.choice(_SUFFIXES)}", description))
    rows = []
    for number, (title, description) in enumerate(items):
        status, closed = _status(rng)
        created = start + step * number
        updated = closed if closed is not None and closed > created else created
        rows.append(
            [f"SCALE-{number + 1}", title, "Story", status, _date(created), _date(updated), description]
        )
    return rows


def changed_rows(rows: Sequence[list[str]], share: float = CHANGED_SHARE, seed: int = 11) -> list[list[str]]:
    """``rows`` with ``share`` of them edited: words of another item appended to the description."""
    rng = random.Random(seed)
    edited = [list(row) for row in rows]
    for position in rng.sample(range(len(rows)), int(len(rows) * share)):
        donor = rows[rng.randrange(len(rows))][6].split(" ")
        edited[position][6] = f"{edited[position][6]} {' '.join(donor[:20])}".strip()
    return edited


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    tmp.replace(path)


def backlog_file(
    cache: Path, kind: str, size: int, texts: Sequence[tuple[str, str]], *, changed: bool = False
) -> Path:
    """The cached CSV of one backlog, generated on first use."""
    suffix = "-changed" if changed else ""
    path = cache / f"v{GENERATOR_VERSION}-{kind}-{size}{suffix}.csv"
    if not path.exists():
        rows = generate_rows(kind, size, texts)
        write_csv(path, changed_rows(rows) if changed else rows)
    return path


@dataclass(frozen=True, slots=True)
class Run:
    """One measured scan process."""

    wall: float
    cpu: float
    rss_mib: float
    code: int
    findings: int
    duplicates: int
    phases: dict[str, tuple[float, float]]  # name -> (wall, CPU of the main process)
    stderr_tail: str


def _seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    total = 0.0
    for part in parts:
        total = total * 60 + part
    return total


def scan_once(config: Path, output: Path) -> Run:
    """Run one ``refinebot scan --format json`` under ``/usr/bin/time -v``; its figures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEBOT_")}
    env.update({"REFINEBOT_LOG_LEVEL": "DEBUG", "NO_COLOR": "1"})
    # ``-m refinebot`` from the root: the code of this checkout, as the console script would run it.
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "refinebot",
        "scan",
        "-c",
        str(config),
        "--format",
        "json",
    ]
    command += ["--now", AS_OF.isoformat()]
    # Each run starts with nothing left to write back: a second scan started right after the first
    # otherwise waited on the first's 290 MiB store and 190 MiB output still being written to disk
    # (its CSV read took 4.3 s of wall time for 2.6 s of CPU), which a weekly scan never meets.
    os.sync()
    with output.open("wb") as handle:
        done = subprocess.run(
            command, stdout=handle, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, check=False
        )
    stats: dict[str, str] = {}
    for line in done.stderr.splitlines():
        name, sep, value = line.strip().rpartition(": ")
        if sep:
            stats[name] = value
    phases: dict[str, tuple[float, float]] = {}
    for match in _PHASE.finditer(done.stderr):
        wall, cpu = phases.get(match.group(1), (0.0, 0.0))
        phases[match.group(1)] = (wall + float(match.group(2)), cpu + float(match.group(3)))
    text = output.read_text(encoding="utf-8") if output.exists() else ""
    findings = text.count('"rule": ')
    duplicates = text.count('"rule": "duplicate-candidate"')
    wall = _seconds(stats.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "0"))
    cpu = float(stats.get("User time (seconds)", 0)) + float(stats.get("System time (seconds)", 0))
    rss = int(stats.get("Maximum resident set size (kbytes)", 0)) / 1024
    lines = [ln for ln in done.stderr.splitlines() if not ln.startswith(("DEBUG", "INFO", "\t"))]
    return Run(wall, cpu, rss, done.returncode, findings, duplicates, phases, "\n".join(lines[-5:]))


def write_config(work: Path, backlog: Path) -> Path:
    config = work / "refinebot.toml"
    config.write_text(
        f'database_url = "sqlite:///{work / "refinebot.db"}"\n\n'
        f'[sources.export]\nkind = "file"\npath = "{backlog}"\n\n'
        '[projects.SCALE]\nsource = "export"\n',
        encoding="utf-8",
    )
    return config


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


PHASES = ("csv-read", "dup-clean-hash", "dup-fit", "dup-search", "dup-explain", "json-write")


def print_header() -> None:
    names = " ".join(f"{p:>14}" for p in PHASES)
    print(
        f"{'backlog':>16} {'issues':>7} {'wall s':>7} {'cpu s':>7} {'RSS MiB':>8} {'findings':>8} {'dups':>7} {names} {'load':>5}"
    )


def _pair(phase: tuple[float, float] | None) -> str:
    return "-" if phase is None else f"{phase[0]:.1f}/{phase[1]:.1f}"


def print_run(label: str, size: int, run: Run, load: str) -> None:
    names = " ".join(f"{_pair(run.phases.get(p)):>14}" for p in PHASES)
    print(
        f"{label:>16} {size:>7} {run.wall:>7.1f} {run.cpu:>7.1f} {run.rss_mib:>8.0f} {run.findings:>8} "
        f"{run.duplicates:>7} {names} {load:>5}",
        flush=True,
    )
    if run.code != 0:
        print(f"    exit {run.code}: {run.stderr_tail}", flush=True)
    others = {k: v for k, v in run.phases.items() if k not in PHASES}
    if others:
        print(
            "    other phases: " + ", ".join(f"{k} {_pair(v)}" for k, v in sorted(others.items())), flush=True
        )
    explain = run.phases.get("dup-explain")
    if explain is not None and run.duplicates:
        workers = run.phases.get("dup-explain-workers", (0.0, 0.0))[1]
        print(
            f"    explanations: {1e6 * explain[0] / run.duplicates:.1f} us per duplicate finding "
            f"(dup-explain wall / findings), {1e6 * (explain[1] + workers) / run.duplicates:.1f} us of CPU "
            "with the forked workers'",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, 100_000, 200_000])
    parser.add_argument("--kinds", nargs="*", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--second",
        type=int,
        default=None,
        metavar="N",
        help="measure a second scan of realistic N (1 %% changed)",
    )
    parser.add_argument(
        "--second-runs",
        type=int,
        default=3,
        metavar="K",
        help="run the second scan K times, each from the store the first left (the machine's speed varies)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "refinebot-scan-scale"
    )
    parser.add_argument("--save-json", type=Path, default=None, metavar="DIR")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="scan each backlog K times, one after another (the machine's speed varies)",
    )
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"no data at {DATA}: expected ../shared/data/jira-storypoints", file=sys.stderr)
        return 2
    if not Path("/usr/bin/time").exists():
        print("needs GNU time at /usr/bin/time", file=sys.stderr)
        return 2
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.save_json:
        args.save_json.mkdir(parents=True, exist_ok=True)
    texts = load_raw_texts()
    print(
        f"{os.cpu_count()} CPUs; phases in seconds, wall/CPU of the main process (forked workers' CPU is in the total only); backlogs in {args.cache_dir}"
    )
    print_header()
    for kind in args.kinds:
        for size in args.sizes:
            backlog = backlog_file(args.cache_dir, kind, size, texts)
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    work = Path(tmp)
                    load = _load()
                    output = (args.save_json or work) / f"{kind}-{size}.json"
                    print_run(kind, size, scan_once(write_config(work, backlog), output), load)
    if args.second:
        size = args.second
        first = backlog_file(args.cache_dir, "realistic", size, texts)
        second = backlog_file(args.cache_dir, "realistic", size, texts, changed=True)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            out = args.save_json or work
            load = _load()
            print_run(
                "1st (store)", size, scan_once(write_config(work, first), out / f"first-{size}.json"), load
            )
            db = work / "refinebot.db"
            kept = work / "store-after-first.db"
            shutil.copyfile(db, kept)
            walls = []
            for attempt in range(args.second_runs):
                if attempt:
                    shutil.copyfile(kept, db)  # each from the store as the first scan left it
                load = _load()
                run = scan_once(write_config(work, second), out / f"second-{size}.json")
                walls.append(run.wall)
                print_run("2nd, 1% changed", size, run, load)
            if len(walls) > 1:
                print(
                    f"    second scan wall over {len(walls)} runs: median {statistics.median(walls):.1f} s, "
                    f"{min(walls):.1f}-{max(walls):.1f} s"
                )
            print(f"    store file after the second scan: {db.stat().st_size / 2**20:.0f} MiB")
            shutil.rmtree(work / "unused", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
