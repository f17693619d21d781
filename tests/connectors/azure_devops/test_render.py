"""Documents rendered as Azure DevOps Markdown and HTML: structure kept, user text never markup."""

from __future__ import annotations

import pytest

from connectors.azure_devops import render_html, render_markdown
from connectors.azure_devops.comments import comment_text
from refinebot.document import Code, Document, Link, Strong, bullets, heading, paragraph


def test_markdown_keeps_structure() -> None:
    doc = Document(
        (
            heading("Not ready", level=3),
            paragraph("See ", Link("PAY-7", "https://jira.example/browse/PAY-7"), " and ", Strong("fix")),
            bullets(["one", ["run ", Code("refinebot scan")]]),
        )
    )
    assert render_markdown(doc) == (
        "### Not ready\n\nSee [PAY\\-7](https://jira.example/browse/PAY-7) and **fix**\n\n"
        "- one\n- run `refinebot scan`"
    )


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("[x](http://evil)", "\\[x\\]\\(http\\:\\/\\/evil\\)"),
        ("* item", "\\* item"),
        ("# h", "\\# h"),
        ("<a href='u'>x</a>", "\\<a href\\=\\'u\\'\\>x\\<\\/a\\>"),
        ("@here and #123", "\\@here and \\#123"),
        ("https://evil.example/a", "https\\:\\/\\/evil.example\\/a"),
        ("www.evil.example", "www\\.evil.example"),
        ("1. first", "1\\. first"),
        ("line\n# two", "line \\# two"),  # a line break cannot start a block
        ("a &amp; b", "a \\&amp\\; b"),  # no entity either
        ("file.name", "file.name"),
    ],
)
def test_user_text_is_escaped_in_markdown(text: str, rendered: str) -> None:
    assert render_markdown(Document((paragraph(text),))) == rendered


def test_link_urls_cannot_break_out_and_code_keeps_backticks() -> None:
    doc = Document(
        (paragraph(Link("x", "https://a.example/p a)(b<c>"), " ", Code("a `b` c"), " ", Code("`")),)
    )
    assert render_markdown(doc) == "[x](https://a.example/p%20a%29%28b%3Cc%3E) ``a `b` c`` `` ` ``"


def test_html_escapes_text_and_urls() -> None:
    doc = Document(
        (
            heading("<h1>"),
            paragraph("a & b ", Link('x"y', 'https://a.example/?q="1"&r=2'), Code("<b>")),
            bullets(["<script>"]),
        )
    )
    assert render_html(doc) == (
        "<h2>&lt;h1&gt;</h2>"
        '<p>a &amp; b <a href="https://a.example/?q=&quot;1&quot;&amp;r=2">x&quot;y</a><code>&lt;b&gt;</code></p>'
        "<ul><li>&lt;script&gt;</li></ul>"
    )


def test_comment_text_reverses_the_escaping() -> None:
    text = render_markdown(Document((paragraph("[x](http://evil) #1"),))) + "\n\n<!-- refinebot:m -->"
    assert comment_text(text, "markdown") == "[x](http://evil) #1"
    assert comment_text("<p>a &amp; b</p><!-- refinebot:m -->", "html") == "a & b"
