"""Render a ``Document`` as a Jira comment body: ADF for Cloud (API v3), wiki markup for Data Center (v2).

Text is always text. In ADF that is inherent (a text node never becomes markup); links come only
from ``Link`` inlines, as link marks. Wiki markup has no text node, so every character that can start
markup (``[`` links and ``[~user]`` mentions, ``!image!``, ``{macro}``, ``*bold*``, ``_em_``, ``-strike-``,
``+ins+``, ``^sup^``, ``~sub~``, ``??cite??``, ``|`` tables, ``#``/``*``/``-`` at a line start, ``h1.``,
``bq.``) is escaped with a backslash, as the Jira renderer reads it (a backslash before punctuation
shows the character itself), and so is the ``:`` of ``://`` so a bare URL is not linked automatically.
Line breaks inside text become wiki's ``\\\\`` forced break, so user text never starts a line of its own.

Every body ends with a small footer carrying ``refinebot-marker: <marker>``: the fallback that
recognises the bot's comment when its comment property is missing (properties are the primary tag).
"""

from __future__ import annotations

import re
from typing import Any

from refinebot.document import (
    Block,
    BulletList,
    Code,
    Document,
    Heading,
    Inline,
    Link,
    Paragraph,
    Strong,
)

MARKER_PREFIX = "refinebot-marker:"
FOOTER_COLOR = "#97a0af"

# Characters that begin or end wiki markup anywhere in a line (see the module docstring).
_WIKI_SPECIAL = re.compile(r"([\\\[\]|{}*_\-+^~?!#])")
_URL_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*):(?=//)")
_LINE_START = re.compile(r"^(h[1-6]|bq)\.", re.IGNORECASE)
# A URL inside [text|url] may not carry the characters that end the link or split its parts.
_URL_UNSAFE = {"|": "%7C", "[": "%5B", "]": "%5D", " ": "%20", "{": "%7B", "}": "%7D"}


def marker_text(marker: str) -> str:
    """The footer text that tags a comment."""
    return f"{MARKER_PREFIX} {marker}"


# --- ADF -------------------------------------------------------------------------------------------


def _adf_text(text: str, marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Text nodes (ADF text may not be empty), line breaks as ``hardBreak``."""
    nodes: list[dict[str, Any]] = []
    for index, line in enumerate(text.split("\n")):
        if index:
            nodes.append({"type": "hardBreak"})
        if line:
            node: dict[str, Any] = {"type": "text", "text": line}
            if marks:
                node["marks"] = marks
            nodes.append(node)
    return nodes


def _adf_inlines(run: tuple[Inline, ...]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for inline in run:
        marks: list[dict[str, Any]] = []
        if isinstance(inline, Strong):
            marks = [{"type": "strong"}]
        elif isinstance(inline, Code):
            marks = [{"type": "code"}]
        elif isinstance(inline, Link):
            marks = [{"type": "link", "attrs": {"href": inline.url}}]
        nodes += _adf_text(inline.text, marks)
    return nodes


def _adf_block(block: Block) -> dict[str, Any]:
    if isinstance(block, Heading):
        return {"type": "heading", "attrs": {"level": block.level}, "content": _adf_inlines(block.inlines)}
    if isinstance(block, BulletList):
        items = [
            {"type": "listItem", "content": [{"type": "paragraph", "content": _adf_inlines(item)}]}
            for item in block.items
        ]
        return {"type": "bulletList", "content": items}
    return {"type": "paragraph", "content": _adf_inlines(block.inlines)}


def to_adf(document: Document, marker: str) -> dict[str, Any]:
    """An ADF document (``version`` 1) for ``document`` with the marker footer."""
    content = [_adf_block(block) for block in document.blocks if not _empty(block)]
    footer = {
        "type": "text",
        "text": marker_text(marker),
        "marks": [
            {"type": "subsup", "attrs": {"type": "sub"}},
            {"type": "textColor", "attrs": {"color": FOOTER_COLOR}},
        ],
    }
    content.append({"type": "paragraph", "content": [footer]})
    return {"type": "doc", "version": 1, "content": content}


def _empty(block: Block) -> bool:
    # An empty bullet list is not valid ADF (bulletList needs an item).
    return isinstance(block, BulletList) and not block.items


# --- wiki markup -----------------------------------------------------------------------------------


def escape_wiki(text: str) -> str:
    """``text`` as wiki markup that shows exactly ``text`` (no link, mention, macro, list or format)."""
    escaped = _WIKI_SPECIAL.sub(r"\\\1", text)
    escaped = _URL_SCHEME.sub(r"\1\\:", escaped)
    # Inside a paragraph a line break is forced with \\; user text never starts a line of its own.
    return " \\\\ ".join(part.strip("\r") for part in escaped.split("\n"))


def _wiki_url(url: str) -> str:
    return "".join(_URL_UNSAFE.get(char, char) for char in url)


def _wiki_inline(inline: Inline) -> str:
    text = escape_wiki(inline.text)
    if isinstance(inline, Link):
        return f"[{text}|{_wiki_url(inline.url)}]"
    if not text.strip():
        return text
    # Jira formats *x* only when the text touches the markers: keep outer spaces outside them.
    core = text.strip()
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    if isinstance(inline, Strong):
        return f"{lead}*{core}*{trail}"
    if isinstance(inline, Code):
        return f"{lead}{{{{{core}}}}}{trail}"
    return text


def _wiki_line(run: tuple[Inline, ...]) -> str:
    line = "".join(_wiki_inline(inline) for inline in run)
    # "h1." or "bq." opening a line would make it a heading or a quote.
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\.", line)


def to_wiki(document: Document, marker: str) -> str:
    """Jira wiki markup (Data Center, API v2) for ``document`` with the marker footer."""
    lines: list[str] = []
    for block in document.blocks:
        if isinstance(block, Heading):
            lines += [f"h{block.level}. {_wiki_line(block.inlines)}", ""]
        elif isinstance(block, BulletList):
            if block.items:
                lines += [f"* {_wiki_line(item)}" for item in block.items] + [""]
        elif isinstance(block, Paragraph):
            lines += [_wiki_line(block.inlines), ""]
    lines.append(f"{{color:{FOOTER_COLOR}}}~{marker_text(marker)}~{{color}}")
    return "\n".join(lines)
