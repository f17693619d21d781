"""The streamed Jira CSV reader: errors found deep in a big file, dates in every accepted form."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.base import ConnectorError
from connectors.files import read_backlog, read_backlog_file

HEADER = ["Summary", "Issue key", "Status", "Created", "Description"]


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue()


def test_bytes_that_are_not_utf8_after_the_first_megabyte_are_a_clear_error(tmp_path: Path) -> None:
    rows = [[f"Item {n}", f"P-{n}", "To Do", "", "x" * 200] for n in range(8000)]  # about 1.7 MB
    path = tmp_path / "export.csv"
    path.write_bytes(_csv(rows).encode("utf-8") + b"Bad \xff title,P-9999,To Do,,\r\n")
    with pytest.raises(ConnectorError, match=r"export\.csv: not UTF-8 text \(export the CSV as UTF-8\)"):
        read_backlog(path)


def test_an_empty_file_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ConnectorError, match=r"empty\.csv: empty file"):
        read_backlog(empty)
    with pytest.raises(ConnectorError, match=r"missing\.csv: cannot read: No such file or directory"):
        read_backlog(tmp_path / "missing.csv")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(ConnectorError, match=r"folder\.csv: cannot read: Is a directory"):
        read_backlog(folder)


def test_a_bom_and_a_cell_longer_than_the_default_csv_limit(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv([["Long", "P-1", "To Do", "", "word " * 60_000]]).encode())
    (issue,) = read_backlog_file(path)
    assert issue.key == "P-1" and len(issue.description) > 200_000


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("02/Jan/26 10:15 AM", datetime(2026, 1, 2, 10, 15)),
        ("02/Jan/26 3:05 PM", datetime(2026, 1, 2, 15, 5)),
        ("02/Jan/26 10:15", datetime(2026, 1, 2, 10, 15)),
        ("02/Jan/2026 10:15 AM", datetime(2026, 1, 2, 10, 15)),
        ("02/Jan/2026 10:15", datetime(2026, 1, 2, 10, 15)),
        ("2026-01-02 10:15", datetime(2026, 1, 2, 10, 15)),
        ("2026-1-2 9:05", datetime(2026, 1, 2, 9, 5)),  # not ISO: read by the strptime fallback
        ("2026-01-02", datetime(2026, 1, 2)),
        ("2026-01-02T10:15:30", datetime(2026, 1, 2, 10, 15, 30)),
        ("2026-01-02T10:15:30+02:00", datetime(2026, 1, 2, 10, 15, 30, tzinfo=timezone(timedelta(hours=2)))),
    ],
)
def test_dates_in_jira_and_iso_forms_read_in_the_configured_zone(
    tmp_path: Path, cell: str, expected: datetime
) -> None:
    zone = timezone(timedelta(hours=-5))
    path = tmp_path / "export.csv"
    path.write_text(_csv([["One", "P-1", "To Do", cell, ""]]), encoding="utf-8")
    (issue,) = read_backlog(path, tz=zone).issues
    assert issue.created == (expected if expected.tzinfo else expected.replace(tzinfo=zone))
    assert issue.created is not None and issue.created.tzinfo is not None


def test_a_bad_date_names_the_row_and_the_column(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        _csv([["One", "P-1", "To Do", "soon", ""], ["Two", "P-2", "To Do", "", ""]]), encoding="utf-8"
    )
    backlog = read_backlog(path, tz=UTC)
    assert [i.key for i in backlog.issues] == ["P-2"]
    (skipped,) = backlog.skipped
    assert skipped.key.endswith("export.csv: row 2 (P-1)")
    assert skipped.reason == "field 'Created': not a date: 'soon'"
