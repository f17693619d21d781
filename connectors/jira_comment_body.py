"""Turn refinebot's plain-text comment into a Jira body (ADF or wiki markup) and find its marker.

The text may use ``## Heading`` lines, ``- item`` bullets and blank lines between paragraphs. API v3
(Cloud) gets an ADF document, API v2 (Data Center) wiki markup. Every body ends with a small footer
carrying ``refinebot-marker: <marker>``: the fallback that recognises the bot's comment when its
comment property is missing (properties are the primary tag).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MARKER_PREFIX = "refinebot-marker:"
PROPERTY_KEY = "refinebot"
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*]\s+(.*)$")
_MARKER_OK = re.compile(r"^[A-Za-z0-9_.:/#@+=-]{1,200}$")


def check_marker(marker: str) -> str:
    """The marker if it is safe to embed in text and JSON; a clear error otherwise."""
    if not _MARKER_OK.match(marker):
        raise ValueError(
            f"comment marker {marker!r} must be 1-200 characters of letters, digits and _.:/#@+=-"
        )
    return marker


def marker_text(marker: str) -> str:
    """The footer text that tags a comment."""
    return f"{MARKER_PREFIX} {marker}"


def _blocks(text: str) -> list[tuple[str, Any]]:
    """Split text into heading (level, text), bullets [items] and paragraph [lines] blocks."""
    blocks: list[tuple[str, Any]] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        if not line.strip():
            blocks.append(("break", None))
        elif heading:
            blocks.append(("heading", (len(heading.group(1)), heading.group(2).strip())))
        elif bullet:
            if blocks and blocks[-1][0] == "bullets":
                blocks[-1][1].append(bullet.group(1))
            else:
                blocks.append(("bullets", [bullet.group(1)]))
        elif blocks and blocks[-1][0] == "paragraph":
            blocks[-1][1].append(line)
        else:
            blocks.append(("paragraph", [line]))
    return [b for b in blocks if b[0] != "break"]


def _text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def to_adf(text: str, marker: str) -> dict[str, Any]:
    """An ADF document (``version`` 1) for ``text`` with the marker footer."""
    content: list[dict[str, Any]] = []
    for kind, value in _blocks(text):
        if kind == "heading":
            level, title = value
            content.append({"type": "heading", "attrs": {"level": level}, "content": [_text(title)]})
        elif kind == "bullets":
            items = [
                {
                    "type": "listItem",
                    "content": [{"type": "paragraph", "content": [_text(item)] if item else []}],
                }
                for item in value
            ]
            content.append({"type": "bulletList", "content": items})
        else:
            inline: list[dict[str, Any]] = []
            for index, line in enumerate(value):
                if index:
                    inline.append({"type": "hardBreak"})
                inline.append(_text(line))
            content.append({"type": "paragraph", "content": inline})
    footer = {
        "type": "text",
        "text": marker_text(marker),
        "marks": [
            {"type": "subsup", "attrs": {"type": "sub"}},
            {"type": "textColor", "attrs": {"color": "#97a0af"}},
        ],
    }
    content.append({"type": "paragraph", "content": [footer]})
    return {"type": "doc", "version": 1, "content": content}


def to_wiki(text: str, marker: str) -> str:
    """Jira wiki markup (Data Center, API v2) for ``text`` with the marker footer."""
    lines: list[str] = []
    for kind, value in _blocks(text):
        if kind == "heading":
            level, title = value
            lines += [f"h{level}. {title}", ""]
        elif kind == "bullets":
            lines += [f"* {item}" for item in value] + [""]
        else:
            lines += [*value, ""]
    lines.append(f"{{color:#97a0af}}~{marker_text(marker)}~{{color}}")
    return "\n".join(lines)


def _adf_strings(node: Any) -> list[str]:
    if isinstance(node, Mapping):
        found = [str(node["text"])] if node.get("type") == "text" and "text" in node else []
        for child in node.get("content") or []:
            found += _adf_strings(child)
        return found
    return []


def body_has_marker(body: Any, marker: str) -> bool:
    """True when a comment body (ADF dict or wiki string) carries ``marker`` in its footer."""
    wanted = marker_text(marker)
    if isinstance(body, str):
        # The marker must end where the footer's does, so "X" never matches a comment tagged "X2".
        return re.search(re.escape(wanted) + r"(?![A-Za-z0-9_.:/#@+=-])", body) is not None
    return any(text.strip() == wanted for text in _adf_strings(body))


def property_has_marker(comment: Mapping[str, Any], marker: str) -> bool:
    """True when the comment's ``refinebot`` property (``expand=properties``) names ``marker``."""
    for prop in comment.get("properties") or []:
        if isinstance(prop, Mapping) and prop.get("key") == PROPERTY_KEY:
            value = prop.get("value")
            if isinstance(value, Mapping) and value.get("marker") == marker:
                return True
    return False
