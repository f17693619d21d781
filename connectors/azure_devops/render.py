"""Render a ``Document`` as Azure DevOps comment text: Markdown (the default) or HTML (older servers).

User text is always text. In Markdown its ASCII punctuation is ``\\``-escaped (CommonMark treats
escaped punctuation as the literal character; "." only where it would make markup, so names and
hosts stay searchable), so ``[x](http://evil)``, ``* item``, ``# h``, ``<a href>``, ``@mentions``,
``#123`` work-item mentions and bare URLs (their ``://`` is broken) never become markup; line breaks
become spaces, so no line of user text can start a block. In HTML, text is ``html.escape``d. Only
``Link`` inlines make links.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from urllib.parse import quote

from refinebot.document import BulletList, Code, Document, Heading, Inline, Link, Paragraph, Strong, Text

# The ASCII punctuation CommonMark lets us escape, except ".", which is escaped only where it makes
# markup: after a digit ("1." starts a list) and after "www" (GFM autolinks www.example.com).
_PUNCTUATION = re.compile(r"([!-\-/:-@\[-`{-~]|(?<=\d)\.|(?<=www)\.)", re.IGNORECASE)
_LINE_BREAKS = re.compile(r"[\r\n]+")
# Characters a Markdown link destination may hold as they are; the rest are percent-encoded, so
# a space, parenthesis or angle bracket cannot end the destination early.
_URL_SAFE = ":/?#[]@!$&'*+,;=%-._~"


def marker_text(marker: str) -> str:
    """The hidden tag a bot comment carries: an HTML comment survives Markdown and HTML, unseen."""
    return f"<!-- refinebot:{marker.replace('--', '- -')} -->"


def markdown_escape(text: str) -> str:
    """``text`` as literal Markdown text: punctuation escaped, line breaks folded to spaces."""
    return _PUNCTUATION.sub(r"\\\1", _LINE_BREAKS.sub(" ", text))


def _code_span(text: str) -> str:
    # A code span's content is literal (no escapes, links or HTML); its fence must be longer than
    # any run of backticks inside it.
    flat = _LINE_BREAKS.sub(" ", text)
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") else flat
    return f"{fence}{padded}{fence}"


def _markdown_inline(inline: Inline) -> str:
    if isinstance(inline, Text):
        return markdown_escape(inline.text)
    if isinstance(inline, Strong):
        return f"**{markdown_escape(inline.text)}**" if inline.text else ""
    if isinstance(inline, Code):
        return _code_span(inline.text) if inline.text else ""
    return f"[{markdown_escape(inline.text)}]({quote(inline.url, safe=_URL_SAFE)})"


def render_markdown(document: Document) -> str:
    """The document as Azure DevOps Markdown (blocks separated by blank lines)."""
    blocks = _blocks(
        document,
        _markdown_inline,
        heading=lambda level, text: f"{'#' * level} {text}",
        paragraph=lambda text: text,
        bullet_list=lambda items: "\n".join(f"- {item}" for item in items),
    )
    return "\n\n".join(text for text in blocks if text.strip())


def _html_inline(inline: Inline) -> str:
    if isinstance(inline, Text):
        return escape(inline.text)
    if isinstance(inline, Strong):
        return f"<b>{escape(inline.text)}</b>"
    if isinstance(inline, Code):
        return f"<code>{escape(inline.text)}</code>"
    assert isinstance(inline, Link)
    return f'<a href="{escape(inline.url)}">{escape(inline.text)}</a>'


def render_html(document: Document) -> str:
    """The document as an HTML fragment (for servers that take no ``format=markdown``)."""
    blocks = _blocks(
        document,
        _html_inline,
        heading=lambda level, text: f"<h{level}>{text}</h{level}>",
        paragraph=lambda text: f"<p>{text}</p>",
        bullet_list=lambda items: "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>",
    )
    return "".join(blocks)


def _blocks(
    document: Document,
    inline: Callable[[Inline], str],
    *,
    heading: Callable[[int, str], str],
    paragraph: Callable[[str], str],
    bullet_list: Callable[[list[str]], str],
) -> list[str]:
    """Each block rendered by the target's functions, inlines joined first (one walk for both targets)."""

    def run(inlines: tuple[Inline, ...]) -> str:
        return "".join(inline(part) for part in inlines)

    out: list[str] = []
    for block in document.blocks:
        if isinstance(block, Heading):
            out.append(heading(block.level, run(block.inlines)))
        elif isinstance(block, Paragraph):
            out.append(paragraph(run(block.inlines)))
        elif isinstance(block, BulletList):
            out.append(bullet_list([run(item) for item in block.items]))
    return out


def markdown_comment(document: Document, marker: str) -> str:
    """The Markdown text of a bot comment: the document, then its marker."""
    return f"{render_markdown(document)}\n\n{marker_text(marker)}"


def html_comment(document: Document, marker: str) -> str:
    """The HTML text of a bot comment: the document, then its marker."""
    return f"{render_html(document)}{marker_text(marker)}"
