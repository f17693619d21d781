"""A typed outgoing message (ticket comment, Slack digest): pure data that each channel renders.

Everything refinebot writes to people is built as a ``Document`` of headings, paragraphs and bullet
lists whose inlines are plain text, strong text, code or links. Text is always *text*: a renderer
escapes it for its target (ADF, Jira wiki, Azure DevOps Markdown or HTML, Slack mrkdwn), so a ticket
title such as ``[click](http://evil)`` or ``@here`` can never become a link, a bullet or a mention.
Only ``Link`` inlines make links, and only to ``http(s)`` URLs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Text:
    """Plain text."""

    text: str


@dataclass(frozen=True, slots=True)
class Strong:
    """Bold text."""

    text: str


@dataclass(frozen=True, slots=True)
class Code:
    """Inline code (an issue key, a field name, a command to type)."""

    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link; ``url`` must be absolute http(s), anything else is refused at construction."""

    text: str
    url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"a document link must be an absolute http(s) URL, got {self.url!r}")


Inline = Text | Strong | Code | Link


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading of ``level`` 1-3."""

    inlines: tuple[Inline, ...]
    level: int = 2

    def __post_init__(self) -> None:
        if self.level not in (1, 2, 3):
            raise ValueError(f"heading level must be 1, 2 or 3, got {self.level}")


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph of inlines."""

    inlines: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class BulletList:
    """A flat bullet list; each item is a run of inlines."""

    items: tuple[tuple[Inline, ...], ...]


Block = Heading | Paragraph | BulletList


@dataclass(frozen=True, slots=True)
class Document:
    """An ordered run of blocks."""

    blocks: tuple[Block, ...] = ()

    def plain_text(self) -> str:
        """The document as readable plain text (headings as lines, bullets as ``- ``)."""
        return render_plain(self)


def inlines(*parts: Inline | str) -> tuple[Inline, ...]:
    """A tuple of inlines, with bare strings taken as ``Text``."""
    return tuple(Text(part) if isinstance(part, str) else part for part in parts)


def paragraph(*parts: Inline | str) -> Paragraph:
    """A paragraph from inlines and bare strings."""
    return Paragraph(inlines(*parts))


def heading(*parts: Inline | str, level: int = 2) -> Heading:
    """A heading from inlines and bare strings."""
    return Heading(inlines(*parts), level=level)


def bullets(items: Iterable[Iterable[Inline | str] | str]) -> BulletList:
    """A bullet list; an item is a bare string or a run of inlines and strings."""
    return BulletList(tuple(inlines(item) if isinstance(item, str) else inlines(*item) for item in items))


def inline_text(run: Iterable[Inline]) -> str:
    """The plain text of a run of inlines (a link shows its text and, when different, its URL)."""
    out: list[str] = []
    for inline in run:
        if isinstance(inline, Link):
            out.append(inline.text if inline.text == inline.url else f"{inline.text} ({inline.url})")
        else:
            out.append(inline.text)
    return "".join(out)


def render_plain(document: Document) -> str:
    """Plain text: blocks separated by blank lines, bullets as ``- item`` lines."""
    parts: list[str] = []
    for block in document.blocks:
        if isinstance(block, BulletList):
            parts.append("\n".join(f"- {inline_text(item)}" for item in block.items))
        else:
            parts.append(inline_text(block.inlines))
    return "\n\n".join(part for part in parts if part)
