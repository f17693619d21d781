"""The bot's one comment on a flagged ticket, as a ``Document``: its open findings in plain words, what was
answered, and how to answer.

Pure: findings, suppressions and notes in, a ``Document`` and its content hash out. The connector renders
it (ADF, Jira wiki, Azure DevOps Markdown/HTML). The hash covers exactly what the ticket would show, so an
unchanged ticket needs no request at all next cycle, and the comment changes only when its words do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from zoneinfo import ZoneInfo

from refinebot.comments.commands import usage_items, usage_line
from refinebot.document import Block, Code, Document, Inline, Strong, bullets, heading, inlines, paragraph
from refinebot.models import Finding
from refinebot.suppressions import DUPLICATE_RULE, Suppression, SuppressionKind

MARKER = "refinebot:readiness"  # the tag that finds this comment again (one per ticket)


def describe_suppression(suppression: Suppression, zone: ZoneInfo) -> str:
    """One line naming what was done and by whom: "Snoozed until 15 Dec 2026 by maya"."""
    if suppression.kind is SuppressionKind.SNOOZE:
        assert suppression.until is not None
        what = "every rule" if suppression.rule is None else suppression.rule
        scope = "" if suppression.rule is None else f" ({what})"
        return f"Snoozed{scope} until {suppression.until.astimezone(zone):%d %b %Y} by {suppression.by}"
    if suppression.kind is SuppressionKind.IGNORE:
        return f"Ignoring {suppression.rule} by {suppression.by}: {suppression.reason}"
    return f"Marked not a duplicate of {suppression.other_issue} by {suppression.by}"


def compose_findings(
    issue: str,
    findings: Sequence[Finding],
    *,
    answered: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Document:
    """The comment for a ticket with open findings (``findings`` may be empty when all are hidden).

    ``answered`` are the lines saying what people's answers did (from the suppressions in force);
    ``notes`` are this cycle's replies to commands that could not be applied ("Unknown command ...").
    """
    blocks: list[Block] = []
    if findings:
        count = len(findings)
        blocks.append(
            heading(
                f"refinebot: {count} thing{'s' if count != 1 else ''} to settle before refinement", level=3
            )
        )
        blocks.append(bullets(_finding_line(finding) for finding in findings))
    else:
        blocks.append(heading("refinebot: nothing to settle right now", level=3))
        blocks.append(paragraph(f"Nothing refinebot checks is open on {issue}, given the answers below."))
    if answered:
        blocks.append(paragraph(Strong("Answers so far")))
        blocks.append(bullets(answered))
    if notes:
        blocks.append(bullets(notes))
    blocks.append(
        paragraph("To answer, add a comment with one of these lines (it is read at the next cycle):")
    )
    blocks.append(bullets((Code(usage), f": {meaning}") for usage, meaning in usage_items()))
    return Document(tuple(blocks))


def _finding_line(finding: Finding) -> tuple[Inline, ...]:
    line: list[Inline | str] = [Strong(finding.rule), f": {finding.message}"]
    other = finding.details.get("duplicate_of") if finding.rule == DUPLICATE_RULE else None
    if isinstance(other, str) and other:
        line += [" If it is not, answer ", Code(f"refinebot not-duplicate {other}"), "."]
    return inlines(*line)


def compose_ready(issue: str, *, notes: Sequence[str] = ()) -> Document:
    """The same comment once every finding it listed is fixed."""
    blocks: list[Block] = [
        heading("refinebot: ready now", level=3),
        paragraph(f"Everything refinebot listed on {issue} is fixed. Thank you!"),
    ]
    if notes:
        blocks.append(bullets(notes))
    return Document(tuple(blocks))


def unknown_command_note(line: str, problem: str, author: str) -> str:
    """The reply to a command that could not be applied, with the short usage line."""
    return f"Unknown command from {author}: {line!r} ({problem}). Usage: {usage_line()}"


def content_hash(document: Document) -> str:
    """A stable hash of everything the comment shows (its blocks, not its rendering)."""
    encoded = json.dumps(asdict(document), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()
