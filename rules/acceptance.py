"""Recognise acceptance criteria written inside a plain-text description.

Counts: an "Acceptance criteria" heading (own line, or set off by the runs of spaces that exports leave where
newlines were) or label ("Acceptance criteria:", "AC:") followed by real content; Given/When/Then scenarios; a
checklist of outcomes (two or more task-list items, or a "Done when:" label with content: ADF ``taskList``,
``* [ ]``, ADO HTML checkboxes all reach here as ``[ ]`` / ``[x]`` lines); an "Acceptance test(s)" heading
followed by steps with expected results; and the sentence "The acceptance criteria for this (story) is that ...".
Does not count: a heading followed only by a placeholder ("TBD", "N/A", "to be defined", "see above", "This is a
sub-task") or directly by the next section ("Definition of done") -- ``empty_section`` tells that case apart, so
the message can say the section is empty -- negated or passing mentions ("no acceptance criteria yet", "we need to
define acceptance criteria"), and "Definition of done" itself. Everything here is linear in the text length:
descriptions can be 50,000 characters long and the rule runs on every item.
"""

from __future__ import annotations

import re

_PHRASE = re.compile(r"acceptance[ \t]+criteri(?:a|on|as)\b", re.IGNORECASE)
_ABBREVIATION = re.compile(r"\bACs?\b")
_GWT_TOKENS = re.compile(r"\b(?:given|when|then)\b|\.(?=\s)|;|\n[ \t]*\n", re.IGNORECASE)
_WIKI_HEADING_MARK = re.compile(r"\bh[1-6]\.[ \t]*$", re.IGNORECASE)

# Words that may stand before "Acceptance criteria" in a heading ("Product Acceptance Criteria").
_HEADING_WORDS = frozenset(
    {
        "product",
        "business",
        "functional",
        "technical",
        "user",
        "story",
        "feature",
        "key",
        "main",
        "the",
        "our",
        "draft",
        "initial",
        "updated",
        "general",
        "proposed",
        "detailed",
        "high-level",
        "ux",
        "qa",
    }
)
# Words that turn a mention into its opposite ("no acceptance criteria", "missing acceptance criteria:").
_NEGATIONS = frozenset(
    {
        "no",
        "not",
        "missing",
        "need",
        "needs",
        "needed",
        "without",
        "add",
        "define",
        "todo",
        "lack",
        "lacks",
        "lacking",
        "pending",
        "write",
        "check",
        "see",
        "tbd",
        "will",
        "should",
        "must",
        "unclear",
        "any",
    }
)
_PLACEHOLDER = re.compile(
    r"(?:tbd|tba|tbc|todo|to ?do|wip|n/?a|none(?: yet)?|nothing(?: yet)?|pending|coming soon|missing"
    r"|to be (?:defined|determined|added|confirmed|written|agreed|discussed|clarified)(?: later)?"
    r"|see (?:the )?(?:parent|epic|above|below|attached|linked|comments?|description)\b.*|same as .*|[?.\-*]+"
    r"|not applicable|empty|(?:this is )?(?:an? |just an? )?sub-?\s?task\b.*)",
    re.IGNORECASE,
)
# The section that commonly follows acceptance criteria; reaching it first means the AC section is empty.
_NEXT_SECTION = re.compile(
    r"(?:^|\n|[ \t]{2,}|\bh[1-6]\.)[ \t]*(?:definition of done|dod|notes?|out of scope|assumptions?|dependencies"
    r"|open questions|questions|technical notes|implementation notes|background|context|description|design"
    r"|steps to reproduce|risks?|resources|links)[ \t]*:?[ \t]*(?:\n|$|[ \t]{2,})",
    re.IGNORECASE,
)
_WINDOW = 400
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*#>]+|\d+[.)]|\[[ xX]\])?[ \t]*")


def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?()[]*_\"'").lower() for w in text.split()]


def _section_has_content(text: str, start: int) -> bool:
    """Whether the section starting at ``start`` holds real criteria before the next section begins."""
    window = text[start : start + _WINDOW]
    cut = _NEXT_SECTION.search(window)
    if cut is not None:
        window = window[: cut.start()]
    lines = window.split("\n")
    meaningful: list[str] = []
    for index, line in enumerate(lines):
        body = _LIST_MARKER.sub("", line, count=1).strip()
        if not body:
            continue
        isolated = (index > 0 and not lines[index - 1].strip()) and (
            index + 1 < len(lines) and not lines[index + 1].strip()
        )
        if meaningful == [] and isolated and len(body) <= 60 and not body.endswith(".") and index > 1:
            break  # a short line standing alone after a blank line: the next section's heading
        meaningful.append(body)
        if len(meaningful) >= 3:
            break
    if not meaningful:
        return False
    return not all(_PLACEHOLDER.fullmatch(line.rstrip(".!")) for line in meaningful)


def _clause_prefix(text: str, start: int) -> tuple[str, bool, bool]:
    """What stands before ``start`` in its clause: the text after the line start (or a collapsed-newline gap),
    whether such a boundary is close by, and whether a wiki heading mark ("h3.") introduces it."""
    line_start = text.rfind("\n", max(0, start - 200), start)
    bounded = line_start >= 0 or start <= 200
    prefix = text[line_start + 1 if line_start >= 0 else max(0, start - 200) : start]
    if _WIKI_HEADING_MARK.search(prefix.rstrip(" \t")):
        return "", True, True
    gap = prefix.rfind("  ")
    if gap >= 0:
        prefix, bounded = prefix[gap + 2 :], True
    return prefix, bounded, False


def _phrase_kind(text: str, match: re.Match[str]) -> int | None:
    """Where the criteria of one "acceptance criteria" mention start, or None if it is not a heading or label."""
    prefix, bounded, marked = _clause_prefix(text, match.start())
    words = [w for w in _words(prefix) if w and w not in {"-", "*", "#", ">"}]
    if any(w in _NEGATIONS for w in words[-3:]):
        return None
    after = match.end()
    rest = text[after : after + 8]
    stripped = rest.lstrip(" \t")
    pos = after + len(rest) - len(stripped)
    if stripped[:1] == ":":
        return pos + 1
    if stripped[:2] in ("- ", "– ", "— "):
        return pos + 2
    heading_prefix = bounded and len(words) <= 3 and all(w in _HEADING_WORDS for w in words)
    if not heading_prefix:
        return None
    if marked or stripped[:1] in ("", "\n") or rest.startswith(("  ", "\t")):
        return pos
    return None


_CLAUSE_ENDS = ("  ", ". ", "! ", "? ", ": ")


def _abbreviation_start(text: str, match: re.Match[str]) -> int | None:
    """Where the criteria after "AC:" / "ACs -" start, if this "AC" opens a line or clause."""
    line_start = text.rfind("\n", max(0, match.start() - 200), match.start()) + 1
    prefix = text[line_start : match.start()]
    opens = not prefix.strip(" \t-*#>") or prefix.endswith(_CLAUSE_ENDS)
    if not opens:
        return None
    after = text[match.end() : match.end() + 6]
    stripped = after.lstrip(" \t")
    offset = match.end() + len(after) - len(stripped)
    if stripped[:1] == ":":
        return offset + 1
    if stripped[:2] in ("- ", "– ", "— "):
        return offset + 2
    return None


# A task-list item as the markup converters write it: "[ ] ..." / "[x] ...", maybe after a list marker.
_TASK_ITEM = re.compile(r"^[ \t]*(?:[-*#]+[ \t]+|\d+[.)][ \t]+)?\[[ xX]\][ \t]*\S", re.MULTILINE)
_DONE_WHEN = re.compile(r"(?:^|\n|[ \t]{2,})[ \t>*#-]*done when[ \t]*:", re.IGNORECASE)
_TEST_HEADING = re.compile(r"acceptance[ \t]+tests?\b", re.IGNORECASE)
# What makes steps acceptance tests: each states what should happen.
_EXPECTATION = re.compile(
    r"\bexpect(?:ed|s)?\b|\bresults?\b|\bshould\b|\bmust\b|->|=>|\bthen\b", re.IGNORECASE
)
# "The acceptance criteria for this (story|Jira|...) is/are that ..." and "Acceptance tests is that ...".
_AC_SENTENCE = re.compile(
    r"\bacceptance[ \t]+(?:criteri(?:a|on)|tests?)[ \t]+(?:for[ \t]+(?:this|the|that)(?:[ \t]+[\w-]+)?[ \t]+)?"
    r"(?:is|are|will[ \t]+be)[ \t]+(?:that|when|:)[ \t]*",
    re.IGNORECASE,
)
_SENTENCE_MIN_WORDS = 3


def _has_checklist(text: str, lower: str) -> bool:
    """Two or more task-list items, or a "Done when:" label followed by content (``lower``: the text
    lower-cased)."""
    if "[" in text and sum(1 for _ in zip(range(2), _TASK_ITEM.finditer(text), strict=False)) >= 2:
        return True
    if "one when" in lower:
        for match in _DONE_WHEN.finditer(text):
            if _section_has_content(text, match.end()):
                return True
    return False


def _has_acceptance_tests(text: str) -> bool:
    """An "Acceptance test(s)" heading or label followed by steps that state expected results."""
    for match in _TEST_HEADING.finditer(text):
        start = _phrase_kind(text, match)
        if start is None or not _section_has_content(text, start):
            continue
        window = text[start : start + _WINDOW]
        cut = _NEXT_SECTION.search(window)
        if _EXPECTATION.search(window if cut is None else window[: cut.start()]):
            return True
    return False


def _has_ac_sentence(text: str) -> bool:
    """ "The acceptance criteria for this is that <at least three words>", not a placeholder or "not ..."."""
    for match in _AC_SENTENCE.finditer(text):
        rest = text[match.end() : match.end() + 200].split("\n", 1)[0]
        clause = re.split(r"[.;!?](?:\s|$)", rest, maxsplit=1)[0].strip()
        words = _words(clause)
        if (
            len(words) >= _SENTENCE_MIN_WORDS
            and words[0] not in _NEGATIONS
            and not _PLACEHOLDER.fullmatch(clause)
        ):
            return True
    return False


def has_gherkin(lower: str) -> bool:
    """Given ... When ... Then, in that order, within one scenario (a sentence end or blank line resets).

    Takes the lower-cased text, which the caller has already made."""
    state = 0
    for token in _GWT_TOKENS.finditer(lower):
        word = token.group()
        if word == "given":
            state = 1
        elif word == "when" and state >= 1:
            state = 2
        elif word == "then" and state == 2:
            return True
        elif word not in ("when", "then"):
            state = 0  # ".", ";" or a blank line ends the scenario
    return False


def find_acceptance_criteria(text: str) -> str | None:
    """How acceptance criteria are written in a plain-text description: ``heading``, ``label``, ``gherkin``,
    ``checklist``, ``acceptance tests``, ``sentence``, or None when there are none."""
    if not text:
        return None
    return _find(text, text.lower())


def acceptance_criteria_or_empty(text: str) -> tuple[str | None, bool]:
    """``find_acceptance_criteria(text)``, and when that is None, ``empty_section(text)``: the text is
    lower-cased once for both (the rule asks both of every story's description)."""
    if not text:
        return None, False
    lower = text.lower()
    found = _find(text, lower)
    if found is not None:
        return found, False
    return None, _empty_section(text, lower)


def _find(text: str, lower: str) -> str | None:
    # Cheap substring tests first: most descriptions contain none of the markers.
    if "criteri" in lower:
        for match in _PHRASE.finditer(text):
            start = _phrase_kind(text, match)
            if start is not None and _section_has_content(text, start):
                label = text[match.end() : start].strip(" \t") in (":", "-", "–", "—")
                return "label" if label else "heading"
    if "AC" in text:
        for match in _ABBREVIATION.finditer(text):
            start = _abbreviation_start(text, match)
            if start is not None and _section_has_content(text, start):
                return "label"
    if "given" in lower and "then" in lower and has_gherkin(lower):
        return "gherkin"
    if _has_checklist(text, lower):
        return "checklist"
    if "acceptance" in lower:
        if _has_acceptance_tests(text):
            return "acceptance tests"
        if _has_ac_sentence(text):
            return "sentence"
    return None


def empty_section(text: str) -> bool:
    """Whether the text has an "Acceptance criteria" heading or label whose section is empty or a placeholder.

    Call it when ``find_acceptance_criteria`` found none: it tells "the section is empty" from "there is no
    section", so the message can say which."""
    return bool(text) and _empty_section(text, text.lower())


def _empty_section(text: str, lower: str) -> bool:
    if "criteri" not in lower:
        return False
    return any(_phrase_kind(text, match) is not None for match in _PHRASE.finditer(text))


def has_content(text: str) -> bool:
    """True when a dedicated acceptance-criteria field holds more than a placeholder."""
    return _section_has_content(text, 0)
