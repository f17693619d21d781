"""The readiness chart: a real PNG at phone-readable size, the same bytes for the same series, empty and
one-point series drawn, labels and alt text saying what the chart shows, matplotlib never loaded by ``--help``."""

from __future__ import annotations

import struct
import subprocess
import sys
from dataclasses import dataclass

from refinebot.chart import MAX_POINTS, alt_text, headline, readiness_png, short_labels, span

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Point:
    cycle: str
    ready: int
    top_n: int
    share: float


def series(n: int) -> list[Point]:
    return [Point(f"2026-W{week:02d}", week % 9, 16, (week % 9) / 16) for week in range(1, n + 1)]


def size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_a_full_series_is_a_png_wide_enough_for_a_phone_and_stable() -> None:
    png = readiness_png("SHOP", series(20))
    assert size(png) == (720, 408)  # 2x the ~360 px Slack gives an image on a phone
    assert len(png) < 150_000
    assert readiness_png("SHOP", series(20)) == png  # no timestamp or version stamp inside
    assert readiness_png("SHOP", series(19)) != png


def test_only_the_last_twelve_cycles_are_drawn() -> None:
    long = series(20)
    assert readiness_png("SHOP", long) == readiness_png("SHOP", long[-MAX_POINTS:])
    assert alt_text("SHOP", long).count("%") == MAX_POINTS
    assert "2026-W09 " in alt_text("SHOP", long) and "2026-W08 " not in alt_text("SHOP", long)


def test_empty_and_single_point_series_are_drawn() -> None:
    empty = readiness_png("SHOP", [])
    one = readiness_png("SHOP", series(1))
    assert size(empty) == size(one) == (720, 408)
    assert empty != one
    assert alt_text("SHOP", []) == "SHOP: no readiness recorded yet"
    assert (
        alt_text("SHOP", series(1)) == "SHOP readiness of the top items over the last 1 cycles: 2026-W01 6%"
    )


def test_labels_are_short_and_the_span_carries_the_years() -> None:
    assert short_labels(["2025-W52", "2026-W01", "cycle-2026-12-01"]) == ["W52", "W01", "26-12-01"]
    assert span(["2025-W52", "2026-W01"]) == "2025-W52 to 2026-W01"
    assert span(["2026-W01"]) == "2026-W01" and span([]) == ""
    assert headline(Point("2026-W49", 7, 16, 7 / 16)) == "7 of 16 ready (44%)"


def test_the_cli_does_not_import_matplotlib_until_a_chart_is_drawn() -> None:
    code = "import sys, refinebot.cli; assert 'matplotlib' not in sys.modules, 'imported at start'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
