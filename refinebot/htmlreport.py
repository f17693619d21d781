"""The HTML report: per project the readiness chart, the agenda, every open finding by rule and the
suppressions in force, as one self-contained page.

Pure: data in, a string out. Self-contained so it can be mailed or opened offline: the CSS is inline, the
chart is a ``data:`` PNG, there are no fonts, scripts or other fetched resources (a test checks). Every
piece of ticket text is HTML-escaped; a link is made only of an ``http(s)`` URL, so a ticket's
``javascript:`` URL cannot become one.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from itertools import groupby
from zoneinfo import ZoneInfo

from refinebot.agenda import Agenda, item_facts, readiness_words
from refinebot.models import Finding, Severity
from refinebot.readiness import key_number_order
from refinebot.suppressions import Suppression, SuppressionKind

_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
_KIND_WORDS = {
    SuppressionKind.SNOOZE: "snoozed",
    SuppressionKind.IGNORE: "ignored",
    SuppressionKind.NOT_DUPLICATE: "not a duplicate",
}

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #18181b; background: #f4f4f5; }
header.page { background: #1e293b; color: #f8fafc; padding: 20px 32px; }
header.page h1 { margin: 0 0 4px; font-size: 24px; }
header.page p { margin: 0; color: #cbd5e1; }
header.page nav a { color: #bfdbfe; margin-right: 14px; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 40px; }
section.project { background: #fff; border: 1px solid #e4e4e7; border-radius: 10px; padding: 8px 24px 20px;
  margin: 20px 0; }
h2 { font-size: 22px; margin: 14px 0 6px; }
h3 { font-size: 17px; margin: 22px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e4e4e7; }
h4 { font-size: 15px; margin: 16px 0 6px; }
.muted { color: #52525b; }
.chart img { max-width: 100%; height: auto; border: 1px solid #e4e4e7; border-radius: 6px; }
.readiness-line { font-size: 16px; font-weight: 600; margin: 6px 0 0; }
.overview { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0 28px; }
@media (max-width: 900px) { .overview { grid-template-columns: minmax(0, 1fr); } }
ol.agenda { padding-left: 22px; margin: 6px 0; }
ol.agenda > li { margin: 0 0 8px; }
ol.agenda .facts { color: #52525b; font-size: 13px; margin-left: 6px; }
ol.agenda .why { display: block; color: #3f3f46; font-size: 14px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; table-layout: fixed; }
th.key { width: 92px; } th.title { width: 24%; } th.severity { width: 84px; } th.date { width: 100px; }
th.status { width: 170px; } th.what { width: 20%; } th.who { width: 110px; }
td.date { white-space: nowrap; }
ul.rules { margin: 10px 0 0; padding-left: 18px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e4e4e7; }
th { background: #fafafa; font-weight: 600; color: #3f3f46; }
td.key { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.sev { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.sev-error { background: #fee2e2; color: #991b1b; }
.sev-warning { background: #fef3c7; color: #92400e; }
.sev-info { background: #e0f2fe; color: #075985; }
tr.hidden td { color: #71717a; }
.count { color: #52525b; font-weight: normal; }
a { color: #1d4ed8; }
""".strip()


@dataclass(frozen=True, slots=True)
class Ticket:
    """How a ticket is shown: its key as people read it, its title and (when known) its URL."""

    label: str
    title: str = ""
    url: str | None = None


@dataclass(frozen=True, slots=True)
class FindingRow:
    """One open finding on the page: the finding, its ticket, since when, and why it is hidden if it is."""

    finding: Finding
    ticket: Ticket
    first_seen: datetime | None = None
    hidden_by: str | None = None  # "snoozed by ana until 2026-12-10", or None when shown


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """Everything the report shows for one project."""

    project: str
    zone: ZoneInfo
    agenda: Agenda | None = None
    chart_png: bytes | None = None
    chart_alt: str = ""
    findings: Sequence[FindingRow] = ()
    suppressions: Sequence[Suppression] = ()
    tickets: dict[str, Ticket] | None = None  # by issue key, for the suppressions' links
    note: str | None = None  # why there is nothing to show (no cycle recorded yet)


def safe_url(url: str | None) -> str | None:
    """``url`` when it is http(s), else None (no ``javascript:`` or ``data:`` link from ticket data)."""
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def link(ticket: Ticket) -> str:
    """The ticket's key, linked to it when its URL is http(s)."""
    url = safe_url(ticket.url)
    label = escape(ticket.label)
    return f'<a href="{escape(url, quote=True)}">{label}</a>' if url else label


def _date(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d") if value is not None else ""


def describe_hidden(suppression: Suppression, zone: ZoneInfo) -> str:
    """Why a finding is hidden, in words: ``snoozed by ana until 2026-12-10``."""
    words = f"{_KIND_WORDS[suppression.kind]} by {suppression.by}"
    return f"{words} until {_date(suppression.until, zone)}" if suppression.until else words


def _rule_anchor(project: str, rule: str) -> str:
    return escape(f"{project}-rule-{rule}", quote=True)


def _chart(page: ProjectPage) -> str:
    parts = ['<section class="chart"><h3>Readiness</h3>']
    if page.chart_png:
        encoded = base64.b64encode(page.chart_png).decode("ascii")
        parts.append(
            f'<img src="data:image/png;base64,{encoded}" alt="{escape(page.chart_alt, quote=True)}" '
            'width="720" height="408">'
        )
    if page.agenda is not None:
        parts.append(f'<p class="readiness-line">{escape(readiness_words(page.agenda.readiness))}</p>')
    counts = Counter(row.finding.rule for row in page.findings)
    if counts:
        parts.append('<h4>Open findings by rule</h4><ul class="rules">')
        for rule, count in sorted(counts.items()):
            parts.append(f'<li><a href="#{_rule_anchor(page.project, rule)}">{escape(rule)}</a> {count}</li>')
        parts.append("</ul>")
    parts.append("</section>")
    return "".join(parts)


def _agenda(agenda: Agenda | None, zone: ZoneInfo) -> str:
    parts = ['<section class="agenda"><h3>Agenda</h3>']
    if agenda is None or not agenda.items:
        parts.append('<p class="muted">Nothing to discuss: every top item is ready.</p>')
    else:
        parts.append(
            f'<p class="muted">{len(agenda.items)} items, about {agenda.minutes} of '
            f'{agenda.session_minutes} minutes.</p><ol class="agenda">'
        )
        for item in agenda.items:
            ticket = Ticket(item.label, item.title, item.url)
            why = " · ".join(item.reasons)
            if item.prepare:
                why += f" · Prepare: {'; '.join(item.prepare)}"
            parts.append(
                f"<li>{link(ticket)} {escape(item.title)}"
                f'<span class="facts">{escape(item_facts(item))}</span><span class="why">{escape(why)}</span></li>'
            )
        parts.append("</ol>")
        if agenda.more:
            parts.append(f'<p class="muted">and {agenda.more} more not-ready items further down.</p>')
    if agenda is not None and agenda.set_aside:
        parts.append("<h4>Set aside this cycle</h4><ul>")
        for aside in agenda.set_aside:
            how = "removed from the agenda" if aside.removed else f"snoozed until {_date(aside.until, zone)}"
            parts.append(
                f"<li>{link(Ticket(aside.label, aside.title, aside.url))} {escape(aside.title)} "
                f'<span class="muted">({escape(how)})</span></li>'
            )
        parts.append("</ul>")
    parts.append("</section>")
    return "".join(parts)


def _findings(project: str, rows: Sequence[FindingRow], zone: ZoneInfo) -> str:
    parts = [f'<section class="findings"><h3>Open findings <span class="count">({len(rows)})</span></h3>']
    if not rows:
        parts.append('<p class="muted">No open findings.</p>')
    ordered = sorted(
        rows,
        key=lambda r: (
            r.finding.rule,
            _SEVERITY_ORDER[r.finding.severity],
            key_number_order(r.finding.issue),
        ),
    )
    for rule, group in groupby(ordered, key=lambda r: r.finding.rule):
        members = list(group)
        parts.append(
            f'<h4 id="{_rule_anchor(project, rule)}">{escape(rule)} '
            f'<span class="count">({len(members)})</span></h4><table class="findings">'
            '<thead><tr><th class="key">Ticket</th><th class="title">Title</th><th class="severity">Severity</th>'
            '<th>Finding</th><th class="date">Since</th><th class="status">Status</th></tr></thead><tbody>'
        )
        for row in members:
            severity = row.finding.severity.value
            status = escape(row.hidden_by) if row.hidden_by else "shown"
            parts.append(
                f'<tr class="{"hidden" if row.hidden_by else "shown"}"><td class="key">{link(row.ticket)}</td>'
                f"<td>{escape(row.ticket.title)}</td>"
                f'<td><span class="sev sev-{escape(severity)}">{escape(severity)}</span></td>'
                f"<td>{escape(row.finding.message)}</td>"
                f'<td class="date">{_date(row.first_seen, zone)}</td>'
                f"<td>{status}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "".join(parts)


def _suppressions(page: ProjectPage) -> str:
    items = page.suppressions
    parts = [f'<section class="suppressions"><h3>Suppressions <span class="count">({len(items)})</span></h3>']
    if not items:
        parts.append('<p class="muted">None in force.</p></section>')
        return "".join(parts)
    tickets = page.tickets or {}
    parts.append(
        '<table><thead><tr><th class="key">Ticket</th><th class="what">What</th><th class="who">Who</th>'
        '<th>Why</th><th class="date">Until</th><th class="date">Since</th><th class="who">Where</th>'
        "</tr></thead><tbody>"
    )
    for s in items:
        what = _KIND_WORDS[s.kind]
        if s.kind is SuppressionKind.NOT_DUPLICATE and s.other_issue:
            other = tickets.get(s.other_issue, Ticket(s.other_issue))
            what = f"{escape(what)} of {link(other)}"
        else:
            what = escape(f"{what}: {s.rule}" if s.rule else f"{what}: every rule")
        parts.append(
            f'<tr><td class="key">{link(tickets.get(s.issue, Ticket(s.issue)))}</td><td>{what}</td>'
            f"<td>{escape(s.by)}</td><td>{escape(s.reason)}</td>"
            f"<td>{_date(s.until, page.zone) or 'until lifted'}</td><td>{_date(s.created, page.zone)}</td>"
            f"<td>{escape(s.source.value)}</td></tr>"
        )
    parts.append("</tbody></table></section>")
    return "".join(parts)


def _project(page: ProjectPage) -> str:
    cycle = f" · {escape(page.agenda.cycle_label)}" if page.agenda is not None else ""
    head = f'<section class="project" id="project-{escape(page.project, quote=True)}"><h2>{escape(page.project)}{cycle}</h2>'
    if page.note:
        return f'{head}<p class="muted">{escape(page.note)}</p></section>'
    return (
        head
        + f'<div class="overview">{_chart(page)}{_agenda(page.agenda, page.zone)}</div>'
        + _findings(page.project, page.findings, page.zone)
        + _suppressions(page)
        + "</section>"
    )


def render_report(pages: Sequence[ProjectPage], generated_at: datetime) -> str:
    """The whole page for ``pages`` (one section per project, in order)."""
    nav = "".join(
        f'<a href="#project-{escape(p.project, quote=True)}">{escape(p.project)}</a>' for p in pages
    )
    when = generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    body = "".join(_project(page) for page in pages)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>refinebot report</title>"
        f"<style>\n{CSS}\n</style></head><body>"
        f'<header class="page"><h1>Refinement report</h1><p>Generated by refinebot on {escape(when)}</p>'
        f"<nav>{nav}</nav></header><main>{body}</main></body></html>\n"
    )
