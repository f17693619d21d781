"""Turn rich-text bodies (Jira ADF, Jira wiki markup, HTML, Markdown) into plain text.

The plain text keeps the structure rules need: headings and labels stay on lines of their own, list items
become ``- item`` / ``1. item`` / ``[ ] item`` lines (indented two spaces per level), and code blocks are fenced
with ``` so later stages (duplicate detection) can drop them. Inline markup is removed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from html.parser import HTMLParser
from typing import Any

_FENCE = "```"
_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\xa0" in text:
        text = text.replace("\xa0", " ")
    if "\n" not in text:
        # One line (most CSV descriptions): its rstrip(" \t") is part of the strip() below.
        return text.strip()
    # rstrip per line, not a regex: "[ \t]+\n" is quadratic on long runs of spaces.
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    if "\n\n\n" in text:  # the regex scan costs more than this search, and most texts have none
        text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


# --- Atlassian Document Format -------------------------------------------------------------------


def adf_to_text(doc: Mapping[str, Any] | None) -> str:
    """Plain text of an ADF document (Jira Cloud v3 description, comment or textarea field).

    Tolerant of malformed documents: nodes that are not objects and content that is not a list are skipped,
    so a broken field loses its broken part, never the whole issue.
    """
    if not isinstance(doc, Mapping):
        return ""
    lines: list[str] = []
    _adf_blocks(_children(doc), lines, depth=0)
    return _tidy("\n".join(lines))


def _children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = node.get("content")
    if not isinstance(content, list):
        return []
    return [child for child in content if isinstance(child, Mapping)]


def _attrs(node: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, Mapping) else {}


_INLINE_ATTR_TEXT = {
    "mention": ("text",),
    "emoji": ("text", "shortName"),
    "inlineCard": ("url",),
    "blockCard": ("url",),
    "date": ("timestamp",),
    "status": ("text",),
}
_LISTS = ("bulletList", "orderedList", "taskList")


def _adf_inline(nodes: Iterable[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for node in nodes:
        kind = node.get("type")
        if kind == "text":
            parts.append(str(node.get("text", "")))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind in _INLINE_ATTR_TEXT:
            attrs = _attrs(node)
            parts.append(next((str(attrs[k]) for k in _INLINE_ATTR_TEXT[kind] if attrs.get(k)), ""))
        else:
            parts.append(_adf_inline(_children(node)))
    return "".join(parts)


def _order(node: Mapping[str, Any]) -> int:
    try:
        return int(_attrs(node).get("order", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _adf_blocks(nodes: Iterable[Mapping[str, Any]], lines: list[str], depth: int) -> None:
    indent = "  " * depth
    for node in nodes:
        kind = node.get("type")
        content = _children(node)
        if kind in ("paragraph", "heading"):
            text = _adf_inline(content)
            if kind == "heading":
                lines.append("")
            lines.extend(indent + line for line in text.split("\n"))
            if kind == "heading":
                lines.append("")
        elif kind in _LISTS:
            number = _order(node)
            for item in content:
                if item.get("type") in _LISTS:  # a nested list directly inside a list (ADF task lists)
                    _adf_blocks([item], lines, depth + 1)
                    continue
                if kind == "bulletList":
                    marker = "- "
                elif kind == "orderedList":
                    marker = f"{number}. "
                    number += 1
                else:
                    marker = "[x] " if _attrs(item).get("state") == "DONE" else "[ ] "
                _adf_list_item(item, marker, lines, depth)
        elif kind == "codeBlock":
            lines.append(indent + _FENCE)
            lines.extend(indent + line for line in _adf_inline(content).split("\n"))
            lines.append(indent + _FENCE)
        elif kind == "rule":
            lines.append("")
        elif kind == "table":
            for row in content:
                cells = [_adf_cell_text(cell) for cell in _children(row)]
                lines.append(indent + " | ".join(cells))
        elif kind in ("expand", "nestedExpand"):
            # An expand's title is a heading in all but name ("Acceptance criteria" folded away).
            title = _attrs(node).get("title")
            if title:
                lines.extend(["", indent + str(title), ""])
            _adf_blocks(content, lines, depth)
        elif kind == "text" or kind == "hardBreak" or kind in _INLINE_ATTR_TEXT:
            lines.append(indent + _adf_inline([node]))
        elif content:
            # blockquote, panel, layoutSection, mediaSingle...: their children carry the text.
            _adf_blocks(content, lines, depth)


def _adf_list_item(item: Mapping[str, Any], marker: str, lines: list[str], depth: int) -> None:
    indent = "  " * depth
    children = _children(item)
    if item.get("type") == "taskItem":
        inline = [c for c in children if c.get("type") not in _LISTS]
        lines.append(indent + marker + _adf_inline(inline))
        _adf_blocks([c for c in children if c.get("type") in _LISTS], lines, depth + 1)
        return
    first = True
    for child in children:
        if first and child.get("type") == "paragraph":
            lines.append(indent + marker + _adf_inline(_children(child)))
            first = False
            continue
        first = False
        _adf_blocks([child], lines, depth + 1)
    if first:
        lines.append(indent + marker.rstrip())


def _adf_cell_text(cell: Mapping[str, Any]) -> str:
    inner: list[str] = []
    _adf_blocks(_children(cell), inner, 0)
    return " ".join(line.strip() for line in inner if line.strip())


# --- Jira wiki markup ----------------------------------------------------------------------------

_WIKI_HEADING = re.compile(r"^\s*h([1-6])\.\s*(.*)$")
_WIKI_LIST = re.compile(r"^\s*([*#\-]+)\s+(.*)$")
_WIKI_BLOCK = re.compile(r"\{(code|noformat)(?::[^}]*)?\}", re.IGNORECASE)
_WIKI_QUOTE = re.compile(r"^\s*bq\.\s*")
_WIKI_LINK = re.compile(r"\[([^|\]\[]*)\|([^\]\[]*)\]")
_WIKI_BARE_LINK = re.compile(r"\[((?:https?|mailto|file):[^\]\[\s]*)\]")
# Spans are bounded (and single-line) so that unclosed markers cannot make matching quadratic.
_WIKI_MONO = re.compile(r"\{\{([^\n]{0,500}?)\}\}")
_WIKI_COLOR = re.compile(r"\{color(?::[^}]*)?\}|\{quote\}|\{panel(?::[^}]*)?\}", re.IGNORECASE)
# A panel's title is a heading in all but name ({panel:title=Acceptance criteria}).
_WIKI_PANEL_TITLE = re.compile(r"^\s*\{panel:(?:[^}]*\|)?title=([^|}]*)[^}]*\}\s*(.*)$", re.IGNORECASE)
_WIKI_EMPH_MARKS = "*_+-^~?"
# Emphasis: a run of one or two marks not after a word character or "*", text of 1 to 301 characters on
# one line that starts and ends with non-space, the same run again, not before a word character or "*":
#     (?<![\w*])([*_+\-^~?]{1,2})(?=\S)([^\n]{0,300}?\S)\1(?![\w*])
# matched left to right, first the two-mark run. That pattern, written directly, was most of reading a
# CSV export: it starts with a lookbehind (the regex engine then tries it at every position) and its lazy
# span tries the closing run after every character. Written as one branch per first mark, it finds the
# same spans: each branch starts with its mark (the engine skips to the next mark; the lookbehind moves
# after it, two characters wide) and its span is followed by that mark (the engine skips to the next one
# of it, then checks that the span ends with non-space). Branch k's groups: 2k+1 the run's second mark
# (or empty), 2k+2 the text, the last group of the match (``lastindex``).
_WIKI_EMPH = re.compile(
    "|".join(
        rf"{re.escape(mark)}(?<![\w*].)([*_+\-^~?]?)(?=\S)([^\n]{{1,301}}?){re.escape(mark)}(?<=\S.)"
        rf"\{2 * k + 1}(?![\w*])"
        for k, mark in enumerate(_WIKI_EMPH_MARKS)
    )
)
_WIKI_RULE = re.compile(r"^\s*-{4,}\s*$")
_WIKI_IMAGE = re.compile(r"!([^!\s|]+)(?:\|[^!]*)?!")
_WIKI_TABLE = re.compile(r"\|\|?")


def wiki_to_text(text: str | None) -> str:
    """Plain text of Jira wiki markup (Jira Server/Data Center and the v2 API)."""
    if not text:
        return ""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "{" not in text:
        # No {code} or {noformat} marker (each starts with "{"): every line is markup.
        return _tidy("\n".join(map(_wiki_line, text.split("\n"))))
    out: list[str] = []
    in_block = False
    for line in text.split("\n"):
        # {code}/{noformat} toggles; text on the same line as a marker is kept on its side.
        pieces = _WIKI_BLOCK.split(line)
        if len(pieces) > 1:
            # split() returns [text, name, text, name, text...]: every name is a toggle.
            for index, piece in enumerate(pieces):
                if index % 2 == 1:
                    out.append(_FENCE)
                    in_block = not in_block
                elif piece.strip():
                    out.append(piece if in_block else _wiki_line(piece.strip()))
            continue
        out.append(line if in_block else _wiki_line(line))
    if in_block:
        out.append(_FENCE)
    return _tidy("\n".join(out))


def _wiki_inline(text: str) -> str:
    # Each substitution runs only when its marker character is in the text: most lines of a
    # description have none. The substitutions only remove characters, so a marker absent before one
    # is absent after it.
    # Replacements are functions: a template ("\\1") is expanded by Python code per match, this
    # C-level getter is not (a CSV export has tens of thousands of {{monospace}} spans).
    if "!" in text:
        text = _WIKI_IMAGE.sub(_first_group, text)
    if "[" in text:
        text = _WIKI_LINK.sub(_link_text, text)
        text = _WIKI_BARE_LINK.sub(_first_group, text)
    if "{" in text:
        text = _WIKI_MONO.sub(_first_group, text)
        text = _WIKI_COLOR.sub("", text)
    # No pre-check here: counting each mark cost more than the pattern's own scan for marks.
    return _WIKI_EMPH.sub(_emphasised_text, text)


_first_group: Callable[[re.Match[str]], str] = operator.itemgetter(1)


def _link_text(match: re.Match[str]) -> str:
    return match.group(1) or match.group(2)


def _emphasised_text(match: re.Match[str]) -> str:
    return match.group(match.lastindex or 0)


# What a line of wiki markup starts with (after leading whitespace) when a line pattern may match it.
_WIKI_LINE_STARTS = frozenset("-{h*#b|")


def _wiki_line(line: str) -> str:
    # The line patterns all start after leading whitespace (``\s``, what str.lstrip and str.isspace
    # take for whitespace) with a known character: the others cannot match, so they are not tried.
    first = line[:1]
    if first.isspace():
        first = line.lstrip()[:1]
    if first not in _WIKI_LINE_STARTS:  # also the empty line: its _wiki_inline is itself
        return _wiki_inline(line)
    if first == "-" and _WIKI_RULE.match(line):
        return ""
    panel = _WIKI_PANEL_TITLE.match(line) if first == "{" else None
    if panel:
        rest = _wiki_line(panel.group(2)) if panel.group(2).strip() else ""
        return "\n" + panel.group(1).strip() + "\n" + rest
    heading = _WIKI_HEADING.match(line) if first == "h" else None
    if heading:
        return "\n" + _wiki_inline(heading.group(2)).strip() + "\n"
    listed = _WIKI_LIST.match(line) if first in ("*", "#", "-") else None
    if listed and not (listed.group(1).startswith("-") and len(listed.group(1)) > 1):
        markers = listed.group(1)
        indent = "  " * (len(markers) - 1)
        bullet = "1. " if markers.endswith("#") else "- "
        return indent + bullet + _wiki_inline(listed.group(2))
    if first == "b":
        line = _WIKI_QUOTE.sub("", line)
    if line.lstrip().startswith("|"):
        cells = [c.strip() for c in _WIKI_TABLE.split(line.strip()) if c.strip()]
        return " | ".join(_wiki_inline(c) for c in cells)
    return _wiki_inline(line)


# --- HTML (Azure DevOps) -------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "table",
        "tr",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "hr",
        "figure",
        "details",
        "summary",
    }
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})


class _HtmlText(HTMLParser):
    """Collects text from HTML, emitting line breaks at block boundaries and markers for list items."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.lists: list[list[int]] = []  # stack of [ordered(0/1), counter]
        self.skip = 0
        self.pre = 0
        self.item_open = False  # a list marker was written and its text has not come yet

    def _newline(self) -> None:
        if self.item_open:
            return  # <li><p>text</p></li>: the paragraph belongs on the marker's line
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._newline()
            self.parts.append("\n")
        elif tag in ("ul", "ol"):
            self.item_open = False
            self._newline()
            start = dict(attrs).get("start") or "1"
            self.lists.append([1 if tag == "ol" else 0, int(start) - 1 if start.isdigit() else 0])
        elif tag == "li":
            self._newline()
            depth = max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0]:
                self.lists[-1][1] += 1
                self.parts.append("  " * depth + f"{self.lists[-1][1]}. ")
            else:
                self.parts.append("  " * depth + "- ")
            self.item_open = True
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "pre":
            self._newline()
            self.parts.append(_FENCE + "\n")
            self.pre += 1
        elif tag in ("td", "th"):
            if self.parts and not self.parts[-1].endswith(("\n", "| ")):
                self.parts.append(" | ")
        elif tag == "input" and dict(attrs).get("type") == "checkbox":
            self.parts.append("[x] " if "checked" in dict(attrs) else "[ ] ")
        elif tag in _BLOCK_TAGS:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("li", "ul", "ol"):
            self.item_open = False
        if tag in _SKIP_TAGS:
            self.skip = max(self.skip - 1, 0)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.parts.append("\n\n")
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newline()
        elif tag == "pre":
            self._newline()
            self.parts.append(_FENCE + "\n")
            self.pre = max(self.pre - 1, 0)
        elif tag in _BLOCK_TAGS or tag == "li":
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if not self.pre:
            data = re.sub(r"[ \t\r\n]+", " ", data)
            if self.parts and self.parts[-1].endswith(("\n", ". ", "- ")):
                data = data.lstrip()
        if data.strip():
            self.item_open = False
        self.parts.append(data)


def html_to_text(text: str | None) -> str:
    """Plain text of an HTML fragment (Azure DevOps description and acceptance criteria fields)."""
    if not text:
        return ""
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return _tidy("".join(parser.parts))


# --- Markdown ------------------------------------------------------------------------------------

_MD_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]+|$)")
_MD_LIST = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+(\[[ xX]\]\s+)?(.*)$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Underscores only count at word edges (snake_case stays); spans are bounded and single-line.
_MD_EMPH = re.compile(r"(\*\*|\*|~~|(?<!\w)__|(?<!\w)_)(?=\S)([^\n]{1,300}?)(?<=\S)\1(?!\w)")
_MD_CODE = re.compile(r"`([^`]+)`")


def markdown_to_text(text: str | None) -> str:
    """Plain text of Markdown (Azure DevOps markdown comments and fields, exported tickets)."""
    if not text:
        return ""
    out: list[str] = []
    in_code = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
            out.append(_FENCE)
            continue
        if in_code:
            out.append(line)
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            title = _strip_closing_hashes(line[heading.end() :].rstrip())
            out.extend(["", _md_inline(title.strip()), ""])
            continue
        listed = _MD_LIST.match(line)
        if listed:
            indent = "  " * (len(listed.group(1).expandtabs(4)) // 2)
            box = listed.group(3)
            if box:
                marker = "[x] " if "x" in box.lower() else "[ ] "
            elif listed.group(2)[0].isdigit():
                marker = listed.group(2)[:-1] + ". "
            else:
                marker = "- "
            out.append(indent + marker + _md_inline(listed.group(4)))
            continue
        out.append(_md_inline(line.lstrip(">").lstrip() if line.lstrip().startswith(">") else line))
    return _tidy("\n".join(out))


def _strip_closing_hashes(title: str) -> str:
    """``## Title ##`` -> ``Title`` (string ops: a regex here is quadratic on long runs of spaces)."""
    bare = title.rstrip("#")
    if bare != title and (not bare or bare[-1] in " \t"):
        return bare.rstrip()
    return title


def _md_inline(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_CODE.sub(r"\1", text)
    return _MD_EMPH.sub(r"\2", text)


def to_text(body: Any, fmt: str) -> str:
    """Plain text of ``body`` in the named format: ``adf``, ``wiki``, ``html``, ``markdown`` or ``text``."""
    if body is None:
        return ""
    if fmt == "adf":
        return adf_to_text(body)
    if fmt == "wiki":
        return wiki_to_text(body)
    if fmt == "html":
        return html_to_text(body)
    if fmt == "markdown":
        return markdown_to_text(body)
    if fmt == "text":
        return _tidy(str(body))
    raise ValueError(f"unknown text format {fmt!r} (expected adf, wiki, html, markdown or text)")
