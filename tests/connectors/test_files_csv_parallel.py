"""The Jira CSV reader with a forked worker: the same issues, skipped rows and errors as one process."""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

import connectors.files as files
from connectors.base import ConnectorError
from connectors.files import FileBacklog, read_backlog

HEADER = [
    "Summary",
    "Issue key",
    "Status",
    "Created",
    "Updated",
    "Story Points",
    "Labels",
    "Labels",
    "Description",
]


def _row(n: int) -> list[str]:
    description = [
        "plain text, with a comma",
        'a "quoted" word\nand a second line\r\nand a third',
        "h3. Goal\n* *bold* item\n{code}\nx = 1\n{code}",
        "",
    ][n % 4]
    return [
        f"Item {n}",
        f"P-{n}",
        ["To Do", "In Progress", "Done"][n % 3],
        "2026-01-02T10:00:00",
        "02/Jan/26 10:15 AM" if n % 5 else "",
        str(n % 8) if n % 7 else "",
        "ux",
        "",
        description,
    ]


def _export(path: Path) -> Path:
    """About 1,200 rows with every kind of problem on both sides of any split point."""
    rows = [_row(n) for n in range(1, 1201)]
    rows[10][3] = "soon"  # a bad date, early
    rows[1100][5] = "five"  # bad points, late
    rows[500] = rows[500][:4]  # too few cells
    rows[1150][1] = ""  # no key
    rows[700] = [""] * len(HEADER)  # blank
    rows[1190][1] = "P-3"  # a key seen early again: the late row counts, at its position
    # 1,200 rows: 4 skipped, 1 blank, 1 a repeat
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode())
    return path


def _read(path: Path, monkeypatch: pytest.MonkeyPatch, *, parallel: bool) -> FileBacklog:
    with monkeypatch.context() as patch:
        patch.setattr(files, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 62)
        return read_backlog(path)


def _same(one: FileBacklog, two: FileBacklog) -> None:
    assert one.issues == two.issues
    assert [repr(issue) for issue in one.issues] == [repr(issue) for issue in two.issues]
    assert one.skipped == two.skipped


@pytest.mark.parametrize("share", [0.05, 0.4, 0.95])
def test_two_processes_read_what_one_process_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, share: float
) -> None:
    path = _export(tmp_path / "export.csv")
    alone = _read(path, monkeypatch, parallel=False)
    monkeypatch.setattr(files, "MAIN_SHARE", share)
    with caplog.at_level(logging.DEBUG, logger="connectors.files"):
        split = _read(path, monkeypatch, parallel=True)
    assert any("csv-read worker:" in message for message in caplog.messages)  # a worker read a part
    _same(split, alone)
    assert [f"{s.key.removeprefix(f'{path}: ')}: {s.reason}" for s in split.skipped] == [
        "row 12 (P-11): field 'Created': not a date: 'soon'",
        "row 502: has 4 cells but the header has 9",
        "row 1102 (P-1101): field 'Story Points': not a number: 'five'",
        "row 1152 (<row>): field 'Issue key': empty",
    ]
    keys = [issue.key for issue in split.issues]
    assert len(keys) == 1200 - 6 and keys.index("P-3") == len(keys) - 10 and "P-1191" not in keys
    assert not multiprocessing.active_children()


def test_a_split_inside_a_quoted_cell_reads_the_file_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A quote inside an unquoted cell is a literal character to the csv module, so counting quotes
    # takes the line ends inside the big quoted cell after it for row ends: the planned split is there.
    big = "\n".join(f"line {n} of a long pasted log" for n in range(400))
    text = f'Summary,Issue key,Description\r\nA 5" screen,P-1,short\r\nLog,P-2,"{big}"\r\n' + "".join(
        f"Item {n},P-{n},text {n}\r\n" for n in range(3, 40)
    )
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8", newline="")
    alone = _read(path, monkeypatch, parallel=False)
    assert [issue.key for issue in alone.issues][:3] == ["P-1", "P-2", "P-3"]
    with caplog.at_level(logging.DEBUG, logger="connectors.files"):
        split = _read(path, monkeypatch, parallel=True)
    assert any("no row ends at byte" in message for message in caplog.messages)
    _same(split, alone)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_failing_worker_leaves_its_part_to_the_main_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    path = _export(tmp_path / "export.csv")
    alone = _read(path, monkeypatch, parallel=False)
    parent, real = os.getpid(), files._map_rows

    def failing_in_the_worker(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            if how == "dies":
                os._exit(3)
            raise RuntimeError("worker trouble")
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "_map_rows", failing_in_the_worker)
    with caplog.at_level(logging.DEBUG, logger="connectors.files"):
        split = _read(path, monkeypatch, parallel=True)
    assert any("csv-read worker failed" in message for message in caplog.messages)
    _same(split, alone)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("where", ["early", "late"])
def test_bytes_that_are_not_utf8_in_either_part_are_the_same_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    lines = [f"Item {n},P-{n},text {n}\r\n".encode() for n in range(2000)]
    lines[5 if where == "early" else 1990] = b"Bad \xff title,P-9999,x\r\n"
    path = tmp_path / "export.csv"
    path.write_bytes(b"Summary,Issue key,Description\r\n" + b"".join(lines))
    for parallel in (False, True):
        with pytest.raises(ConnectorError, match=r"export\.csv: not UTF-8 text \(export the CSV as UTF-8\)"):
            _read(path, monkeypatch, parallel=parallel)
    assert not multiprocessing.active_children()


def test_small_files_and_files_without_line_ends_near_the_split_are_read_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = _export(tmp_path / "export.csv")
    with caplog.at_level(logging.DEBUG, logger="connectors.files"):
        read_backlog(path)  # far under PARALLEL_MIN_BYTES
    # Old Mac line ends: no "\n" to split at.
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"Summary,Issue key\r" + b"".join(f"Item {n},P-{n}\r".encode() for n in range(500)))
    with caplog.at_level(logging.DEBUG, logger="connectors.files"):
        backlog = _read(mac, monkeypatch, parallel=True)
    assert [issue.key for issue in backlog.issues] == [f"P-{n}" for n in range(500)]
    assert not any("csv-read worker" in message for message in caplog.messages)


def test_no_worker_process_means_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = _export(tmp_path / "export.csv")
    alone = _read(path, monkeypatch, parallel=False)
    fork = multiprocessing.get_context("fork")

    class NoChildren:
        def Pipe(self, duplex: bool) -> Any:  # noqa: N802 - multiprocessing's name
            return fork.Pipe(duplex)

        def Process(self, **kwargs: Any) -> Any:  # noqa: N802
            # What multiprocessing raises in a daemonic process.
            raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(files.multiprocessing, "get_context", lambda method: NoChildren())
    with caplog.at_level(logging.DEBUG, logger="connectors.files"):
        split = _read(path, monkeypatch, parallel=True)
    assert any("no worker process" in message for message in caplog.messages)
    _same(split, alone)
