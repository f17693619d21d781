"""The readiness trend chart: a readiness series (oldest first) in, a small PNG out, for Slack and the HTML report.

Pure (no store, no network, no clock). matplotlib is imported only when a chart is drawn, with the headless
Agg canvas and without pyplot's global state, so ``refinebot --help`` never pays for it and two threads
drawing at once share nothing. The picture is made to be read on a phone: Slack shows an image about
360 px wide there, so the figure is 720 px wide (2x) with 13-15 pt text, the latest value written out
large, and at most 12 cycle labels shortened to their week ("W49") or, for a schedule's cycles, their day
("7 Dec"), with the span and its years under the axis.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

MAX_POINTS = 12  # the last 12 cycles: a quarter of weekly refinements
WIDTH_IN, HEIGHT_IN, DPI = 6.0, 3.4, 120  # 720 x 408 px
LINE = "#2563eb"
GRID = "#d4d4d8"
TEXT = "#18181b"
MUTED = "#52525b"


class ReadinessPoint(Protocol):
    """One cycle's readiness (``refinebot.store.readiness.ReadinessRecord`` has these fields)."""

    @property
    def cycle(self) -> str: ...
    @property
    def ready(self) -> int: ...
    @property
    def top_n(self) -> int: ...
    @property
    def share(self) -> float: ...


def _due(cycle: str) -> datetime | None:
    """A schedule cycle's due time ("2026-12-07T09:00+01:00"), or None for a week id or another name."""
    if "-W" in cycle:
        return None
    try:
        due = datetime.fromisoformat(cycle)
    except ValueError:
        return None
    return due if due.tzinfo is not None else None


def short_labels(cycles: Sequence[str]) -> list[str]:
    """Axis labels: "2026-W49" as "W49", a schedule's "2026-12-07T09:00+01:00" as "7 Dec" ("7 Dec 09:00"
    when two shown cycles fall on one day); the years go under the axis. Another naming keeps its tail."""
    dues = [_due(cycle) for cycle in cycles]
    days = [due.date() for due in dues if due is not None]
    shared_day = len(days) != len(set(days))
    labels = []
    for cycle, due in zip(cycles, dues, strict=True):
        _, sep, week = cycle.partition("-W")
        if due is not None:
            labels.append(f"{due.day} {due:%b}" + (f" {due:%H:%M}" if shared_day else ""))
        else:
            labels.append(f"W{week}" if sep else cycle[-8:])
    return labels


def _long(cycle: str) -> str:
    due = _due(cycle)
    return cycle if due is None else f"{due.day} {due:%b %Y}"


def span(cycles: Sequence[str]) -> str:
    """The range under the axis: "2025-W52 to 2026-W11", "30 Nov 2026 to 10 Dec 2026" (one cycle: its name)."""
    if not cycles:
        return ""
    first, last = _long(cycles[0]), _long(cycles[-1])
    return first if len(cycles) == 1 or first == last else f"{first} to {last}"


def headline(point: ReadinessPoint) -> str:
    """The latest value as written on the chart: "7 of 16 ready (44%)"."""
    return f"{point.ready} of {point.top_n} ready ({round(point.share * 100)}%)"


def alt_text(project: str, points: Sequence[ReadinessPoint]) -> str:
    """What the chart says, for screen readers (Slack's ``alt_txt``, the report's ``alt``)."""
    shown = list(points)[-MAX_POINTS:]
    if not shown:
        return f"{project}: no readiness recorded yet"
    series = ", ".join(f"{p.cycle} {round(p.share * 100)}%" for p in shown)
    return f"{project} readiness of the top items over the last {len(shown)} cycles: {series}"


def readiness_png(project: str, points: Sequence[ReadinessPoint]) -> bytes:
    """A PNG of the last 12 points' share of ready top items (0-100 %); an empty series says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    shown = list(points)[-MAX_POINTS:]
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(f"{project} readiness, top items", loc="left", fontsize=15, color=TEXT, fontweight="bold")
    axes.set_ylim(0, 105)
    axes.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    axes.set_yticks([0, 25, 50, 75, 100])
    axes.tick_params(labelsize=12, colors=MUTED, length=0)
    axes.grid(axis="y", color=GRID, linewidth=1)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
    axes.spines["bottom"].set_color(GRID)
    if not shown:
        axes.set_xticks([])
        axes.text(0.5, 0.5, "No readiness recorded yet", transform=axes.transAxes, ha="center",
                  va="center", fontsize=15, color=MUTED)  # fmt: skip
    else:
        xs = list(range(len(shown)))
        ys = [p.share * 100 for p in shown]
        axes.plot(xs, ys, color=LINE, linewidth=3, marker="o", markersize=7, zorder=3)
        if len(shown) > 1:
            axes.fill_between(xs, ys, color=LINE, alpha=0.12, zorder=2)
        # A lone point sits mid-chart rather than on the edge.
        axes.set_xlim(-0.5, max(len(shown) - 0.5, 0.5)) if len(shown) > 1 else axes.set_xlim(-1, 1)
        cycles = [p.cycle for p in shown]
        axes.set_xticks(xs, short_labels(cycles))
        axes.set_xlabel(span(cycles), fontsize=11, color=MUTED, loc="right")
        last = shown[-1]
        axes.annotate(headline(last), (xs[-1], ys[-1]), xytext=(0, 12 if ys[-1] < 80 else -24),
                      textcoords="offset points", ha="right" if len(shown) > 2 else "center",
                      fontsize=14, fontweight="bold", color=TEXT)  # fmt: skip
    buffer = io.BytesIO()
    # No "Software" stamp: the same series always gives the same bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()
