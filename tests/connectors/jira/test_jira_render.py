"""Documents rendered as ADF (checked against the ADF schema) and as escaped wiki markup."""

from __future__ import annotations

import jsonschema
import pytest

from connectors.jira.comments import wiki_plain_text
from connectors.jira.render import escape_wiki, to_adf, to_wiki
from refinebot.document import Code, Document, Link, Strong, bullets, heading, paragraph
from tests.connectors.jira.harness import adf_links, wiki_links

HOSTILE = [
    "[click](https://evil.example/a)",
    "[x|https://evil.example/b]",
    "[https://evil.example/c]",
    "see https://evil.example/d now",
    "[~admin] please look",
    "!https://evil.example/e.png!",
    "{code}rm -rf{code}",
    "{panel:title=x}y{panel}",
    "*bold* _em_ -strike- +ins+ ^sup^ ~sub~ ??cite??",
    "|| a || b ||",
]
LINE_STARTS = ["* bullet", "# numbered", "- dash", "h1. Heading", "bq. quote", "---- rule"]


def _doc(*texts: str) -> Document:
    return Document(
        (
            heading(*texts[:1]),
            *(paragraph(text) for text in texts),
            bullets(list(texts)),
            paragraph(Strong(texts[0]), " and ", Code(texts[-1])),
        )
    )


@pytest.mark.parametrize("text", HOSTILE + LINE_STARTS)
def test_adf_is_valid_and_user_text_stays_text(
    text: str, adf_validator: jsonschema.protocols.Validator
) -> None:
    body = to_adf(_doc(text, f"line one\n{text}"), "rule:SHOP-1")

    adf_validator.validate(body)
    assert adf_links(body) == []
    assert body["content"][-1]["content"][0]["text"] == "refinebot-marker: rule:SHOP-1"


def test_adf_links_come_only_from_link_inlines(adf_validator: jsonschema.protocols.Validator) -> None:
    doc = Document(
        (paragraph("see ", Link("PAY-7", "https://jira.example/browse/PAY-7"), " [x|https://evil.example]"),)
    )

    body = to_adf(doc, "m")

    adf_validator.validate(body)
    assert adf_links(body) == ["https://jira.example/browse/PAY-7"]


def test_adf_line_breaks_and_empty_text_stay_valid(adf_validator: jsonschema.protocols.Validator) -> None:
    doc = Document((paragraph("a\n\nb", ""), bullets([""]), bullets([]), heading("")))

    body = to_adf(doc, "m")

    adf_validator.validate(body)
    assert [n["type"] for n in body["content"][0]["content"]] == ["text", "hardBreak", "hardBreak", "text"]


@pytest.mark.parametrize("text", HOSTILE)
def test_wiki_user_text_never_becomes_a_link_mention_image_or_macro(text: str) -> None:
    body = to_wiki(_doc(text), "rule:SHOP-1")

    assert wiki_links(body) == []
    plain = to_wiki(Document((heading(text), paragraph(text), bullets([text]))), "m")
    for line in plain.splitlines()[:-1]:  # the footer is the bot's own markup
        unescaped = line.removeprefix("h2. ").removeprefix("* ").replace("\\\\", "")
        for opener in ("[", "!", "{", "|"):
            assert all(unescaped[i - 1] == "\\" for i, c in enumerate(unescaped) if c == opener and i), line
    assert wiki_plain_text(body).count(text) >= 2  # what people read is exactly the text


@pytest.mark.parametrize("text", LINE_STARTS)
def test_wiki_text_at_a_line_start_is_no_list_heading_quote_or_rule(text: str) -> None:
    body = to_wiki(Document((paragraph(text), paragraph(f"first\n{text}"))), "m")

    lines = body.splitlines()
    assert not any(line.startswith(("* ", "# ", "- ", "h1. ", "bq. ", "----")) for line in lines)
    assert "\n" not in lines[2]  # a line break inside text is wiki's forced break, not a new line


def test_wiki_links_come_only_from_link_inlines() -> None:
    doc = Document((paragraph(Link("PAY|7 [x]", "https://jira.example/browse/PAY-7?a=[1]|b")),))

    body = to_wiki(doc, "m")

    assert wiki_links(body) == ["https://jira.example/browse/PAY-7?a=%5B1%5D%7Cb"]


def test_wiki_structure_and_footer() -> None:
    body = to_wiki(
        Document((heading("Check", level=3), bullets(["one", "two"]), paragraph(Strong("Note"), ": ok"))),
        "a:b",
    )

    assert body == "h3. Check\n\n* one\n* two\n\n*Note*: ok\n\n{color:#97a0af}~refinebot-marker: a:b~{color}"


def test_escape_wiki_leaves_plain_words_alone() -> None:
    assert escape_wiki("Checkout improvement 12") == "Checkout improvement 12"
    assert escape_wiki("a-b") == "a\\-b"
