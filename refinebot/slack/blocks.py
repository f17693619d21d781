"""Render the agenda digest and any ``Document`` as Slack Block Kit, always within Slack's limits.

Pure data in, the exact ``chat.postMessage`` payload (``text`` + ``blocks``) out. Ticket text is data:
``&``, ``<`` and ``>`` are escaped (so ``<!channel>`` or ``<@U123>`` in a title stays text) and
``@here``-style words get a word joiner, so no title can ever notify anyone. Slack rejects a whole
message over any limit (``invalid_blocks``), so every text is cut to its cap and a long agenda ends
with "and N more" and a link: the digest is shortened, never refused. ``limit_problems`` states the caps
once, for the renderer's own final check and for tests.

No ``block_id``s are set: Slack makes fresh ones on each ``chat.update``, which its docs ask for, and
the listeners identify a button by its ``action_id`` and ``value``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from refinebot.agenda import Agenda, AgendaItem, item_facts, readiness_words
from refinebot.config import LoadedConfig
from refinebot.document import (
    BulletList,
    Code,
    Document,
    Heading,
    Inline,
    Link,
    Paragraph,
    Strong,
    Text,
)
from refinebot.slack.actions import BUTTON_TEXT, ButtonAction, Verb

MAX_BLOCKS = 50
SECTION_TEXT = 3000
HEADER_TEXT = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
ACTIONS_ELEMENTS = 25
CONTEXT_ELEMENTS = 10
FALLBACK_TEXT = 3000  # Slack truncates a longer top-level text; notifications show far less anyway
TITLE_CHARS = 150  # a title longer than this is a description; a phone shows about 80
ADD_BACK_BUTTONS = 5

Block = dict[str, Any]
_BROADCAST = re.compile(r"@(?=(channel|here|everyone)\b)", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def escape(text: str) -> str:
    """Ticket text made inert in mrkdwn: ``& < >`` escaped, ``@channel``/``@here``/``@everyone`` broken."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u2060", escaped)


def one_line(text: str) -> str:
    """Whitespace (newlines, tabs) collapsed: a title is one line."""
    return _SPACES.sub(" ", text).strip()


def cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL usable inside ``<url|label>`` and as a button URL, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > BUTTON_URL:
        return None
    # Characters that would end the link or start its label are percent-encoded; '&' is escaped.
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~").replace("&", "&amp;")


def link(url: str | None, label: str) -> str:
    """A mrkdwn link with an escaped label (plain escaped text when the URL is unusable)."""
    target = safe_url(url)
    text = escape(label).replace("|", "\u2223")  # '|' would split the label
    return f"<{target}|{text}>" if target else text


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, limit), "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(cut(text, SECTION_TEXT))}


def _context(*texts: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(cut(t, SECTION_TEXT)) for t in texts[:CONTEXT_ELEMENTS]]}


def _button(
    action: ButtonAction, text: str | None = None, *, style: str | None = None, index: int | None = None
) -> dict[str, Any]:
    # Several buttons of one verb in a block (Add back) need distinct action_ids; the value says which.
    action_id = action.action_id if index is None else f"{action.action_id}_{index}"
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(text or BUTTON_TEXT[action.verb], BUTTON_TEXT_MAX),
        "value": action.encode(),
    }
    if style:
        button["style"] = style
    return button


def item_buttons(item: AgendaItem) -> list[dict[str, Any]]:
    """An item's buttons: snooze 1 or 2 weeks, not a duplicate (on a possible duplicate), remove, open."""
    buttons = [
        _button(ButtonAction(Verb.SNOOZE_1W, item.issue)),
        _button(ButtonAction(Verb.SNOOZE_2W, item.issue)),
    ]
    if item.duplicate_of:
        buttons.append(_button(ButtonAction(Verb.NOT_DUPLICATE, item.issue, item.duplicate_of)))
    # No red "danger" style: six red buttons read as an alarm on a phone, and removing is undone by Add back.
    buttons.append(_button(ButtonAction(Verb.REMOVE, item.issue)))
    url = safe_url(item.url)
    if url:
        buttons.append(
            {
                "type": "button",
                "action_id": ButtonAction(Verb.OPEN, item.issue).action_id,
                "text": _plain(BUTTON_TEXT[Verb.OPEN], BUTTON_TEXT_MAX),
                "url": item.url,
            }
        )
    return buttons[:ACTIONS_ELEMENTS]


def item_blocks(number: int, item: AgendaItem) -> list[Block]:
    """One agenda item: a section (linked title, key, facts, why, what to prepare) and its buttons."""
    title = link(item.url, cut(one_line(item.title) or item.label, TITLE_CHARS))
    why = escape(" · ".join(item.reasons))
    prepare = escape("; ".join(item.prepare))
    text = f"*{number}.* {title}\n`{escape(item.label)}` · {escape(item_facts(item))}\n{why}\n_Prepare:_ {prepare}"
    return [_section(text), {"type": "actions", "elements": item_buttons(item)}]


def fallback_text(agenda: Agenda) -> str:
    """The top-level ``text``: the notification and screen-reader line."""
    count = len(agenda.items)
    return cut(
        escape(
            f"{agenda.project} refinement agenda {agenda.cycle_label}: {count} {'item' if count == 1 else 'items'}; "
            f"{readiness_words(agenda.readiness)}"
        ),
        FALLBACK_TEXT,
    )


def _trend(agenda: Agenda) -> str:
    change = agenda.readiness.change
    if change is None or round(100 * change) == 0:
        return ""
    return " :chart_with_upwards_trend:" if change > 0 else " :chart_with_downwards_trend:"


# How the digest's footer names other findings: a PM's words on a phone, not rule ids ("4 blocked", not
# "blocked-dependency 4"); worded to read the same for 1 and for 40. Rules not listed keep their name.
OFF_AGENDA_WORDS = {
    "blocked-dependency": "blocked",
    "missing-acceptance-criteria": "without acceptance criteria",
    "missing-description": "without a description",
    "missing-estimate": "unestimated",
    "oversized-story": "too big",
    "duplicate-candidate": "possibly duplicated",
    "stale-item": "untouched for long",
}


def _tail_blocks(agenda: Agenda, more: int, backlog_url: str | None) -> list[Block]:
    blocks: list[Block] = []
    notes: list[str] = []
    if more:
        words = f"and {more} more not-ready {'item' if more == 1 else 'items'}"
        notes.append(f"{words}: {link(backlog_url, 'open the backlog')}" if safe_url(backlog_url) else words)
    if agenda.other_findings:
        counts = " · ".join(
            f"{count} {escape(OFF_AGENDA_WORDS.get(rule, rule))}" for rule, count in agenda.other_findings
        )
        notes.append(f"Also flagged, not on this agenda: {counts}")
    snoozed = [s for s in agenda.set_aside if not s.removed]
    removed = [s for s in agenda.set_aside if s.removed]
    if snoozed:
        keys = ", ".join(escape(s.label) for s in snoozed[:10])
        extra = f" and {len(snoozed) - 10} more" if len(snoozed) > 10 else ""
        notes.append(f"{len(snoozed)} snoozed: {keys}{extra}")
    if removed:
        keys = ", ".join(escape(s.label) for s in removed[:10])
        extra = f" and {len(removed) - 10} more" if len(removed) > 10 else ""
        notes.append(f"{len(removed)} removed from this agenda: {keys}{extra}")
    if notes:
        blocks.append(_context("\n".join(notes)))
    if removed:
        buttons = [
            _button(
                ButtonAction(Verb.ADD_BACK, s.issue), f"Add back {cut(s.label, BUTTON_TEXT_MAX - 9)}", index=i
            )
            for i, s in enumerate(removed[:ADD_BACK_BUTTONS])
        ]
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def backlog_url(loaded: LoadedConfig, project: str) -> str | None:
    """Where "and N more" links to: the project's source URL, when it has one."""
    url = getattr(loaded.source_for(project), "url", None)
    return url if isinstance(url, str) else None


def digest_payload(agenda: Agenda, *, backlog_url: str | None = None) -> dict[str, Any]:
    """The ``chat.postMessage`` / ``chat.update`` payload (``text`` and ``blocks``) of ``agenda``.

    Items are dropped from the end (and counted in "and N more") until the message fits 50 blocks.
    """
    head: list[Block] = [
        {
            "type": "header",
            "text": _plain(f"Refinement agenda · {agenda.project} · {agenda.cycle_label}", HEADER_TEXT),
        },
        _section(f"*Readiness:* {escape(readiness_words(agenda.readiness))}{_trend(agenda)}"),
    ]
    items = list(agenda.items)
    while True:
        minutes = sum(item.minutes for item in items)
        summary = (
            f"{len(items)} {'item' if len(items) == 1 else 'items'} for about {minutes} of "
            f"{agenda.session_minutes} minutes"
            if items
            else "Nothing to refine: every top item is ready or set aside. :tada:"
        )
        body: list[Block] = [_context(summary), {"type": "divider"}]
        for number, item in enumerate(items, start=1):
            body.extend(item_blocks(number, item))
        more = agenda.more + len(agenda.items) - len(items)
        tail = _tail_blocks(agenda, more, backlog_url)
        blocks = head + body + ([{"type": "divider"}, *tail] if tail else [])
        if len(blocks) <= MAX_BLOCKS or not items:
            break
        items.pop()
    payload = {"text": fallback_text(agenda), "blocks": blocks[:MAX_BLOCKS]}
    problems = limit_problems(payload)
    if problems:  # a bug in this module, not bad input: every input is cut to size above
        raise AssertionError("digest payload over Slack's limits: " + "; ".join(problems))
    return payload


def inline_mrkdwn(run: Iterable[Inline]) -> str:
    """A run of ``Document`` inlines as mrkdwn (text escaped; only ``Link`` makes a link)."""
    out = []
    for inline in run:
        if isinstance(inline, Text):
            out.append(escape(inline.text))
        elif isinstance(inline, Strong):
            out.append(f"*{escape(inline.text)}*")
        elif isinstance(inline, Code):
            code = escape(inline.text.replace("`", "'"))  # a backtick would end the code span
            out.append(f"`{code}`")
        elif isinstance(inline, Link):
            out.append(link(inline.url, inline.text))
    return "".join(out)


def _chunks(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, split at line ends where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        split = text.rfind("\n", 0, limit)
        split = split if split > 0 else limit
        pieces.append(text[:split])
        text = text[split:].lstrip("\n")
    return [*pieces, text] if text else pieces


def document_blocks(document: Document) -> list[Block]:
    """A ``Document`` as Block Kit: a level-1 heading as a header, the rest as sections (≤ 50 blocks)."""
    blocks: list[Block] = []
    for block in document.blocks:
        if isinstance(block, Heading) and block.level == 1:
            plain = "".join(i.text for i in block.inlines)
            blocks.append({"type": "header", "text": _plain(one_line(plain) or " ", HEADER_TEXT)})
            continue
        if isinstance(block, Heading):
            text = f"*{inline_mrkdwn(block.inlines)}*"
        elif isinstance(block, Paragraph):
            text = inline_mrkdwn(block.inlines)
        elif isinstance(block, BulletList):
            text = "\n".join(f"• {inline_mrkdwn(item)}" for item in block.items)
        blocks.extend(_section(piece) for piece in _chunks(text, SECTION_TEXT) if piece.strip())
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1], _context("… (shortened to fit one Slack message)")]
    return blocks


def document_payload(document: Document, fallback: str) -> dict[str, Any]:
    """A ``Document`` as a message payload with ``fallback`` as its top-level text."""
    return {"text": cut(escape(fallback), FALLBACK_TEXT), "blocks": document_blocks(document)}


def _text_of(obj: Mapping[str, Any] | None) -> str:
    return str(obj.get("text", "")) if obj else ""


def limit_problems(payload: Mapping[str, Any]) -> list[str]:
    """Every way ``payload`` breaks Slack's message limits (empty when Slack would accept it)."""
    problems: list[str] = []
    blocks: Sequence[Mapping[str, Any]] = payload.get("blocks") or []
    if not str(payload.get("text", "")).strip():
        problems.append("no top-level text fallback")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks (at most {MAX_BLOCKS})")
    for index, block in enumerate(blocks):
        kind = block.get("type")
        where = f"/blocks/{index}"
        if kind == "header" and (
            len(_text_of(block.get("text"))) > HEADER_TEXT or block["text"].get("type") != "plain_text"
        ):
            problems.append(f"{where}: header over {HEADER_TEXT} characters or not plain_text")
        if kind == "section" and len(_text_of(block.get("text"))) > SECTION_TEXT:
            problems.append(f"{where}: section text over {SECTION_TEXT} characters")
        if kind == "context" and len(block.get("elements", [])) > CONTEXT_ELEMENTS:
            problems.append(f"{where}: over {CONTEXT_ELEMENTS} context elements")
        if kind == "actions":
            elements = block.get("elements", [])
            if len(elements) > ACTIONS_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (at most {ACTIONS_ELEMENTS})")
            ids = [e.get("action_id") for e in elements]
            if len(set(ids)) != len(ids):
                problems.append(f"{where}: action_id repeated within the block")
            for position, element in enumerate(elements):
                at = f"{where}/elements/{position}"
                if len(_text_of(element.get("text"))) > BUTTON_TEXT_MAX:
                    problems.append(f"{at}: button text over {BUTTON_TEXT_MAX}")
                if len(str(element.get("value", ""))) > BUTTON_VALUE:
                    problems.append(f"{at}: button value over {BUTTON_VALUE}")
                if len(str(element.get("url", ""))) > BUTTON_URL:
                    problems.append(f"{at}: button url over {BUTTON_URL}")
    return problems


def payload_hash_input(payload: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a payload, for the ledger's content hash (key order and spacing fixed)."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
