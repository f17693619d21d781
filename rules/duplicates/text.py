"""Text normalisation for duplicate detection: the scored title and body of each item.

Titles lose leading ``[tags]`` and prefixes/suffixes that repeat across many titles of the same
backlog ("Sub-task: ", "www.example.com - "); a title shared by sub-tasks of different parents is a
template and is blanked for them. Descriptions lose stack frames and log-line prefixes, code blocks
are cut to their opening, and the text to its first 2,000 characters. Pure Python: nothing here
needs numpy or scikit-learn.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from refinebot.models import Issue

BODY_CHARS = 2000
_DASHES = "\u2013\u2014"  # en and em dash, common title separators
_LEADING_TAGS = re.compile(r"^\s*(?:[\[(][^\])]{1,40}[\])]\s*[:|\-" + _DASHES + r"]?\s*)+")
# A title's prefix or suffix is the part before the first / after the last separator.
_SEPARATOR = re.compile(r"\s*(?::\s|\s[|\-" + _DASHES + r"]\s|\s::\s)\s*")
_MAX_AFFIX_CHARS = 60
_FENCED = re.compile(r"^\s*```.*?^\s*```[^\n]*$", re.MULTILINE | re.DOTALL)
_UNCLOSED_FENCE = re.compile(r"^\s*```.*\Z", re.MULTILINE | re.DOTALL)
_WIKI_BLOCK = re.compile(r"\{(code|noformat)(?::[^}]*)?\}.*?\{\1\}", re.IGNORECASE | re.DOTALL)
_STACK_FRAME = re.compile(
    # Java "at pkg.Class.method(File.java:1)" and "... 12 more"; Python "File ..., line 3"; native
    # "#3 0x..." frames.
    r"^\s*(?:at\s+[\w$.<>/]+\(.*\)|\.\.\.\s*\d+\s+more"
    r"|File \"[^\"]+\", line \d+.*|#\d+\s+0x[0-9a-f]+.*)\s*$",
    re.MULTILINE | re.IGNORECASE,
)
# Log-line prefixes (timestamp, thread, level) vary between reports of one bug; the message does
# not.
_LOG_PREFIX = re.compile(
    r"^\s*\[?\d{2,4}[-/]\d{2}[-/]\d{2}[ T]\d{2}:\d{2}:\d{2}[^\s\]]*\]?\s*(?:\[[^\]]*\]\s*)*"
    r"(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)?\s*",
    re.MULTILINE,
)
# Code blocks keep their opening (the command, error or config key); the rest is mostly noise.
CODE_BLOCK_CHARS = 200
_SPACES = re.compile(r"\s+")


def normalise_unicode(text: str) -> str:
    """NFKC-normalised, case-folded text with runs of whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _code_opening(match: re.Match[str]) -> str:
    inner = match.group(0).strip().strip("`")
    inner = _LOG_PREFIX.sub("", _STACK_FRAME.sub("", inner))
    return "\n" + _SPACES.sub(" ", inner)[:CODE_BLOCK_CHARS] + "\n"


def clean_body(text: str, limit: int = BODY_CHARS) -> str:
    """A description without stack frames and log-line prefixes, code blocks cut to their opening.

    Measured on the Hadoop set, dropping code blocks or URLs outright loses recall: the error
    message, command or file path in them is often what two reports of one bug share.
    """
    if not text:
        return ""
    text = _FENCED.sub(_code_opening, text)
    text = _UNCLOSED_FENCE.sub(_code_opening, text)
    text = _WIKI_BLOCK.sub(_code_opening, text)
    text = _LOG_PREFIX.sub("", _STACK_FRAME.sub("", text))
    return normalise_unicode(text)[:limit]


def one_copy(texts: Iterable[str]) -> list[str]:
    """``texts`` with equal strings as one object (the first): a description copied into many items
    (a cloned ticket) is then held once, and the explanations, which tokenise each distinct text
    once, find it again by identity instead of comparing it character by character."""
    first: dict[str, str] = {}
    return [first.setdefault(text, text) for text in texts]


def _strip_tags(title: str) -> str:
    stripped = _LEADING_TAGS.sub("", title)
    return stripped if stripped.strip() else title


def _affixes(title: str) -> tuple[str | None, str | None]:
    """Boilerplate candidates of a normalised title: prefix and suffix (None without separator)."""
    parts = _SEPARATOR.split(title)
    if len(parts) < 2:
        return None, None
    prefix = parts[0] if len(parts[0]) <= _MAX_AFFIX_CHARS else None
    suffix = parts[-1] if len(parts[-1]) <= _MAX_AFFIX_CHARS else None
    return prefix, suffix


@dataclass(frozen=True, slots=True)
class TitleBoilerplate:
    """Title prefixes and suffixes repeated across many titles of one backlog (templates)."""

    prefixes: frozenset[str] = frozenset()
    suffixes: frozenset[str] = frozenset()

    @classmethod
    def learn(
        cls, titles: Iterable[str], *, min_share: float = 0.002, min_count: int = 3
    ) -> TitleBoilerplate:
        """Affixes found in at least ``max(min_count, min_share * titles)`` normalised titles."""
        prefixes: Counter[str] = Counter()
        suffixes: Counter[str] = Counter()
        total = 0
        for title in titles:
            total += 1
            prefix, suffix = _affixes(title)
            if prefix:
                prefixes[prefix] += 1
            if suffix:
                suffixes[suffix] += 1
        floor = max(min_count, int(min_share * total))
        return cls(
            prefixes=frozenset(p for p, n in prefixes.items() if n >= floor),
            suffixes=frozenset(s for s, n in suffixes.items() if n >= floor),
        )

    def remove_from(self, title: str) -> str:
        """``title`` without its boilerplate prefix and suffix (unchanged if nothing is left)."""
        parts = _SEPARATOR.split(title)
        if len(parts) < 2:
            return title
        start = 1 if parts[0] in self.prefixes else 0
        end = len(parts) - 1 if parts[-1] in self.suffixes else len(parts)
        if (start, end) == (0, len(parts)):
            return title
        kept = parts[start:end]
        return " ".join(kept) if kept else title


def normalise_title(title: str) -> str:
    """Title without leading bracketed tags, NFKC case-folded (boilerplate goes later)."""
    return normalise_unicode(_strip_tags(title))


# Characters of the body that join the title in the character space (where reports state the
# problem).
CHAR_BODY_CHARS = 300


@dataclass(frozen=True, slots=True)
class Document:
    """The normalised text of one item, as scored."""

    title: str
    body: str

    @property
    def word_text(self) -> str:
        """Title twice (titles say more per word than bodies) plus body."""
        return f"{self.title} {self.title} {self.body}"

    @property
    def char_text(self) -> str:
        """Title plus the body's opening, for character n-grams (typos, identifiers, plurals)."""
        return f"{self.title} {self.body[:CHAR_BODY_CHARS]}"


def _template_titles(issues: Sequence[Issue], titles: Sequence[str]) -> set[str]:
    """Normalised titles shared by sub-tasks of different parents ("Write unit tests")."""
    parents: dict[str, set[str]] = defaultdict(set)
    for issue, title in zip(issues, titles, strict=True):
        if issue.parent and title:
            parents[title].add(issue.parent)
    return {title for title, owners in parents.items() if len(owners) > 1}


def scored_titles(
    issues: Sequence[Issue], boilerplate: TitleBoilerplate | None
) -> tuple[list[str], TitleBoilerplate]:
    """Scored titles: normalised, boilerplate stripped, parent-templated titles blanked."""
    raw_titles = [normalise_title(issue.title) for issue in issues]
    if boilerplate is None:
        boilerplate = TitleBoilerplate.learn(raw_titles)
    titles = [boilerplate.remove_from(title) for title in raw_titles]
    templates = _template_titles(issues, titles)
    titles = [
        "" if issue.parent and title in templates else title
        for issue, title in zip(issues, titles, strict=True)
    ]
    return titles, boilerplate


def prepare_documents(
    issues: Sequence[Issue], boilerplate: TitleBoilerplate | None = None
) -> tuple[list[Document], TitleBoilerplate]:
    """The scored text of each issue; learns the backlog's title boilerplate unless given one."""
    titles, boilerplate = scored_titles(issues, boilerplate)
    documents = [
        Document(title=title, body=clean_body(issue.description))
        for issue, title in zip(issues, titles, strict=True)
    ]
    return documents, boilerplate
