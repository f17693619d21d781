"""The duplicate-candidate backlog rule: flag open items that look like another open or recent item.

How it scores (benchmarks/README.md has the measurements behind these choices):

1. Normalise text. Titles lose leading ``[tags]`` and prefixes/suffixes that repeat across many
   titles of the same backlog ("Sub-task: ", "www.example.com - "); a title shared by sub-tasks of
   different parents is a template and is ignored for them. Descriptions lose stack frames and
   log-line prefixes, code blocks are cut to their opening, and the text to its first 2,000
   characters.
2. Vectorise with feature hashing (no vocabulary to hold; new words need no refit): word 1-2-gram
   TF-IDF over the title twice plus the body, and character 4-gram TF-IDF over the title plus the
   body's first 300 characters. Features used by very many items are dropped (like ``max_df``),
   words used by one item only are damped. Each space is L2-normalised and the two are stacked with
   weight 1/2 each, so one sparse dot product gives the score, a cosine in 0-1.
3. Candidates: a multi-threaded sparse top-k matrix product (``sparse_dot_topn``), never a Python
   loop over pairs, plus every pair with identical normalised titles. Titles that are one template
   with a different value in a slot ("... to 2021" / "... to 2022") have their score lowered.
4. A pair is flagged when its score reaches the per-project threshold, at least one side is open,
   the two are not already linked in the tracker (or parent and child), and nobody dismissed the
   pair. It is reported once, on the newer item when that one is open (``duplicate_of`` = the
   older), otherwise on the open one.

The index (vectors, document frequencies, scored candidate pairs) can be kept in
``RuleContext.cache`` between runs; a later run then re-vectorises and searches only new or changed
items.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sparse_dot_topn import sp_matmul_topn

from refinebot.models import Finding, Issue, Severity, StatusCategory
from rules.base import BacklogRule, RuleContext, RuleOptions

logger = logging.getLogger(__name__)

# --- text normalisation --------------------------------------------------------------------------

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


# --- vectors -------------------------------------------------------------------------------------

WORD_FEATURES = 2**21
CHAR_FEATURES = 2**20
WORD_WEIGHT = 0.5
CHAR_WEIGHT = 0.5
# Characters of the body that join the title in the character space (where reports state the
# problem).
CHAR_BODY_CHARS = 300
# Terms only one item uses cannot match anything; at full weight they mostly punish long
# descriptions.
SINGLETON_WEIGHT = 0.3
TOKEN_PATTERN = r"(?u)\b\w[\w.]*\w\b|\b\w\b"
_FLOAT = np.float32

_WORD_HASHER = HashingVectorizer(
    n_features=WORD_FEATURES,
    ngram_range=(1, 2),
    stop_words="english",
    token_pattern=TOKEN_PATTERN,
    lowercase=False,  # already case-folded
    alternate_sign=False,
    norm=None,
    dtype=_FLOAT,
)
_CHAR_HASHER = HashingVectorizer(
    n_features=CHAR_FEATURES,
    analyzer="char_wb",
    ngram_range=(4, 4),
    lowercase=False,
    alternate_sign=False,
    norm=None,
    dtype=_FLOAT,
)
_WORD_ANALYZER = _WORD_HASHER.build_analyzer()
_TERM_HASHER = FeatureHasher(n_features=WORD_FEATURES, input_type="string", alternate_sign=False)


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


def _counts(docs: Sequence[Document]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    if not docs:
        return sp.csr_matrix((0, WORD_FEATURES), dtype=_FLOAT), sp.csr_matrix(
            (0, CHAR_FEATURES), dtype=_FLOAT
        )
    words = sp.csr_matrix(_WORD_HASHER.transform([d.word_text for d in docs]))
    chars = sp.csr_matrix(_CHAR_HASHER.transform([d.char_text for d in docs]))
    return words, chars


def _document_frequencies(counts: sp.csr_matrix) -> npt.NDArray[np.int64]:
    frequencies: npt.NDArray[np.int64] = np.bincount(counts.indices, minlength=counts.shape[1])
    return frequencies.astype(np.int64)


# Features in more than this share of items are dropped, like scikit-learn's max_df: they say little
# about duplicates and dominate the cost of the sparse product (which grows with the square of a
# feature's document frequency). Character 4-grams are far more common than words, so they are
# capped lower.
COMMON_SHARE = 0.03
_MIN_COMMON_DF = 50
MAX_WORD_DF = 1000
MAX_CHAR_DF = 300


def _idf(df: npt.NDArray[np.int64], n_docs: int, max_df: int) -> npt.NDArray[np.float32]:
    """Smoothed IDF as scikit-learn's (unseen terms weigh most); zero for too common features."""
    idf: npt.NDArray[np.float32] = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(_FLOAT)
    idf[df > min(max(_MIN_COMMON_DF, COMMON_SHARE * n_docs), max_df)] = 0.0
    return idf


def _weigh(
    counts: sp.csr_matrix,
    idf: npt.NDArray[np.float32],
    df: npt.NDArray[np.int64],
    weight: float,
) -> sp.csr_matrix:
    """Sublinear TF times IDF, singletons damped, L2-normalised, scaled by sqrt(weight).

    The scaling makes the dot product of two stacked rows the weighted sum of the per-space cosines.
    """
    matrix = counts.copy()
    matrix.data = (1.0 + np.log(matrix.data)) * idf[matrix.indices]
    matrix.data[df[matrix.indices] <= 1] *= SINGLETON_WEIGHT
    matrix.eliminate_zeros()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    scale = np.repeat((np.sqrt(weight) / norms).astype(_FLOAT), np.diff(matrix.indptr))
    matrix.data *= scale
    return matrix


@dataclass(frozen=True, slots=True)
class Vectoriser:
    """Document frequencies and IDF of both feature spaces; turns counts into score vectors."""

    word_idf: npt.NDArray[np.float32]
    char_idf: npt.NDArray[np.float32]
    word_df: npt.NDArray[np.int64]
    char_df: npt.NDArray[np.int64]
    n_docs: int

    @classmethod
    def fit(cls, docs: Sequence[Document]) -> tuple[Vectoriser, sp.csr_matrix]:
        """Learn IDF from ``docs`` and return it with their vectors."""
        return cls.fit_counts(*_counts(docs))

    @classmethod
    def fit_counts(cls, words: sp.csr_matrix, chars: sp.csr_matrix) -> tuple[Vectoriser, sp.csr_matrix]:
        """Learn IDF from raw word and character counts; return it with the documents' vectors."""
        n_docs = words.shape[0]
        word_df, char_df = _document_frequencies(words), _document_frequencies(chars)
        vectoriser = cls(
            word_idf=_idf(word_df, n_docs, MAX_WORD_DF),
            char_idf=_idf(char_df, n_docs, MAX_CHAR_DF),
            word_df=word_df,
            char_df=char_df,
            n_docs=n_docs,
        )
        return vectoriser, vectoriser._combine(words, chars)

    def updated(self, removed: sp.csr_matrix, words: sp.csr_matrix, chars: sp.csr_matrix) -> Vectoriser:
        """Document frequencies after dropping the vector rows ``removed`` and adding raw counts.

        New items of one batch that share a new word then weigh it as shared, not as a singleton.
        Features dropped as too common are not in ``removed``; being common, one count more is moot.
        """
        columns = removed.indices
        word_gone = np.bincount(columns[columns < WORD_FEATURES], minlength=WORD_FEATURES)
        char_gone = np.bincount(columns[columns >= WORD_FEATURES] - WORD_FEATURES, minlength=CHAR_FEATURES)
        word_df = np.maximum(self.word_df - word_gone + _document_frequencies(words), 0)
        char_df = np.maximum(self.char_df - char_gone + _document_frequencies(chars), 0)
        n_docs = max(self.n_docs - removed.shape[0] + words.shape[0], 1)
        return Vectoriser(
            word_idf=_idf(word_df, n_docs, MAX_WORD_DF),
            char_idf=_idf(char_df, n_docs, MAX_CHAR_DF),
            word_df=word_df,
            char_df=char_df,
            n_docs=n_docs,
        )

    def transform_counts(self, words: sp.csr_matrix, chars: sp.csr_matrix) -> sp.csr_matrix:
        """Vectors from raw word and character counts under this IDF."""
        return self._combine(words, chars)

    def _combine(self, words: sp.csr_matrix, chars: sp.csr_matrix) -> sp.csr_matrix:
        stacked = sp.hstack(
            [
                _weigh(words, self.word_idf, self.word_df, WORD_WEIGHT),
                _weigh(chars, self.char_idf, self.char_df, CHAR_WEIGHT),
            ],
            format="csr",
            dtype=_FLOAT,
        )
        return sp.csr_matrix(stacked)

    def shared_terms(self, first: Document, second: Document, limit: int = 5) -> list[str]:
        """The word terms both documents share, strongest contribution to their score first."""
        terms_a = Counter(_WORD_ANALYZER(first.word_text))
        terms_b = Counter(_WORD_ANALYZER(second.word_text))
        shared = sorted(set(terms_a) & set(terms_b))
        if not shared:
            return []
        indices = sp.csr_matrix(_TERM_HASHER.transform([[t] for t in shared])).indices
        idf = self.word_idf[indices]
        weight = [
            (1 + np.log(terms_a[t])) * (1 + np.log(terms_b[t])) * float(w) ** 2
            for t, w in zip(shared, idf, strict=True)
        ]
        ranked = [t for _, t in sorted(zip(weight, shared, strict=True), key=lambda p: (-p[0], p[1]))]
        # A shared bigram says more than its two words; show it instead of them.
        bigrams = [term for term in ranked if " " in term][:limit]
        covered = {word for term in bigrams for word in term.split()}
        chosen = [t for t in ranked if (t in bigrams) or (" " not in t and t not in covered)]
        chosen = chosen[:limit]
        return chosen


# --- near-miss templates -------------------------------------------------------------------------

# Two titles that are one template with a different value in its slot ("Update the year to 2021" /
# "... 2022", "Add Dockerfile for Fedora 33" / "... Debian 10") are usually different work.
SLOT_PENALTY = 0.6
_TITLE_TOKEN = re.compile(r"\w[\w.+#/-]*")
_VERSION_V = re.compile(r"^v(?=\d)")


def _title_tokens(title: str) -> list[str]:
    """Content words of a title; stop words differ between paraphrases and are no slot."""
    tokens = (_VERSION_V.sub("", token.rstrip(".")) for token in _TITLE_TOKEN.findall(title))
    return [token for token in tokens if token not in ENGLISH_STOP_WORDS]


def _related(first: str, second: str) -> bool:
    """Whether two differing words are forms of one word (fails/failing, config/configuration)."""
    common = next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )
    return common >= max(4, 0.6 * min(len(first), len(second)))


def slot_penalty(first: str, second: str) -> float:
    """``SLOT_PENALTY`` when two normalised titles differ only in a slot value, else 1.

    A slot difference: the titles share at least two words and differ in at most two words on each
    side, which carry digits (versions, years, ticket numbers) except for at most one unrelated word
    each.
    """
    return _slot_penalty_tokens(_title_tokens(first), _title_tokens(second))


def _slot_penalty_tokens(tokens_a: Sequence[str], tokens_b: Sequence[str]) -> float:
    set_a, set_b = set(tokens_a), set(tokens_b)
    only_a, only_b = set_a - set_b, set_b - set_a
    if not only_a or not only_b or len(set_a & set_b) < 2 or max(len(only_a), len(only_b)) > 2:
        return 1.0
    words_a = [t for t in only_a if not any(ch.isdigit() for ch in t)]
    words_b = [t for t in only_b if not any(ch.isdigit() for ch in t)]
    if not words_a and not words_b:
        return SLOT_PENALTY
    if len(words_a) == len(words_b) == 1 and not _related(words_a[0], words_b[0]):
        return SLOT_PENALTY
    return 1.0


# --- candidate search ----------------------------------------------------------------------------

TOP_K = 20
_THREADS = 2
_PAIR_SHIFT = 32  # a pair of rows is one int64: low << 32 | high


def _top_pairs(
    queries: sp.csr_matrix, corpus: sp.csr_matrix, top_k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(query row, corpus row, score) of each query's ``top_k`` best positive-score matches."""
    if queries.shape[0] == 0 or corpus.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, _FLOAT)
    # top_k + 1: a query that is also in the corpus finds itself first.
    product = sp.csr_matrix(
        sp_matmul_topn(queries, corpus.T, top_n=top_k + 1, threshold=0.0, n_threads=_THREADS)
    )
    rows = np.repeat(np.arange(product.shape[0], dtype=np.int64), np.diff(product.indptr))
    return rows, product.indices.astype(np.int64), product.data.astype(_FLOAT)


def exact_scores(
    matrix: sp.csr_matrix,
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    chunk: int = 20_000,
) -> npt.NDArray[np.float32]:
    """Scores of the row pairs ``(first[i], second[i])`` (dot products of their rows)."""
    scores = np.zeros(len(first), dtype=_FLOAT)
    for start in range(0, len(first), chunk):
        stop = start + chunk
        left = matrix[first[start:stop]]
        right = matrix[second[start:stop]]
        scores[start:stop] = np.asarray(left.multiply(right).sum(axis=1)).ravel()
    return np.clip(scores, 0.0, 1.0)


def _unique_pairs(
    first: npt.NDArray[np.int64], second: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Unordered pairs (self-pairs dropped) encoded as int64, each once with its score."""
    low, high = np.minimum(first, second), np.maximum(first, second)
    keep = low != high
    codes = (low[keep] << _PAIR_SHIFT) | high[keep]
    unique, where = np.unique(codes, return_index=True)
    return unique, np.clip(scores[keep][where], 0.0, 1.0)


def decode_pairs(
    codes: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The (low, high) rows of encoded pairs."""
    return codes >> _PAIR_SHIFT, codes & ((1 << _PAIR_SHIFT) - 1)


# --- the index -----------------------------------------------------------------------------------

INDEX_VERSION = 1


def _fingerprint(issue: Issue) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(issue.title.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(issue.description.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update((issue.parent or "").encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@dataclass(slots=True)
class DuplicateIndex:
    """Everything a later run can reuse: per-item text, vectors, document frequencies, scored pairs.

    Rows are items; ``pairs`` holds candidate row pairs (low, high) encoded as ``low << 32 | high``
    and ``scores`` their scores (near-miss penalty applied). ``update_index`` returns a new index;
    the rule puts it back into the cache.
    """

    keys: list[str]
    fingerprints: list[str]
    documents: list[Document]
    vectoriser: Vectoriser
    boilerplate: TitleBoilerplate
    matrix: sp.csr_matrix
    pairs: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    version: int = INDEX_VERSION
    updates: int = 0
    changed_since_build: int = 0
    # Shared terms of reported pairs, by sorted key pair: explaining is the slowest part of a
    # finding, and most findings repeat from run to run.
    terms: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # Sentence embeddings (semantic option) by key, with the fingerprint of the text embedded.
    embeddings: dict[str, tuple[str, npt.NDArray[np.float32]]] = field(default_factory=dict)
    row_of: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.row_of:
            self.row_of = {key: row for row, key in enumerate(self.keys)}


def _template_titles(issues: Sequence[Issue], titles: Sequence[str]) -> set[str]:
    """Normalised titles shared by sub-tasks of different parents ("Write unit tests")."""
    parents: dict[str, set[str]] = defaultdict(set)
    for issue, title in zip(issues, titles, strict=True):
        if issue.parent and title:
            parents[title].add(issue.parent)
    return {title for title, owners in parents.items() if len(owners) > 1}


def _titles(
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
    titles, boilerplate = _titles(issues, boilerplate)
    documents = [
        Document(title=title, body=clean_body(issue.description))
        for issue, title in zip(issues, titles, strict=True)
    ]
    return documents, boilerplate


# Cleaning and hashing are pure Python per item; big backlogs share them across processes.
PARALLEL_MIN_DOCS = 20_000
_CHUNK_DOCS = 5_000

_Chunk = tuple[list[str], list[str]]
_Counted = tuple[list[str], sp.csr_matrix, sp.csr_matrix]


def _clean_and_count(chunk: _Chunk) -> _Counted:
    titles, descriptions = chunk
    documents = [
        Document(title=title, body=clean_body(text)) for title, text in zip(titles, descriptions, strict=True)
    ]
    words, chars = _counts(documents)
    return [doc.body for doc in documents], words, chars


def _workers() -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1  # spawned workers would re-import everything; not worth it
    return max(1, min(_THREADS, os.cpu_count() or 1))


def documents_and_counts(
    issues: Sequence[Issue],
    boilerplate: TitleBoilerplate | None = None,
    *,
    parallel_min: int = PARALLEL_MIN_DOCS,
) -> tuple[list[Document], TitleBoilerplate, sp.csr_matrix, sp.csr_matrix]:
    """Scored documents, the boilerplate used, and raw word and character counts of ``issues``."""
    titles, boilerplate = _titles(issues, boilerplate)
    descriptions = [issue.description for issue in issues]
    chunks = [
        (titles[start : start + _CHUNK_DOCS], descriptions[start : start + _CHUNK_DOCS])
        for start in range(0, len(issues), _CHUNK_DOCS)
    ]
    workers = _workers()
    if len(issues) >= parallel_min and workers > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_clean_and_count, chunks))
    else:
        results = [_clean_and_count(chunk) for chunk in chunks]
    if not results:
        words, chars = _counts([])
        return [], boilerplate, words, chars
    bodies = [body for result in results for body in result[0]]
    words = sp.csr_matrix(sp.vstack([result[1] for result in results], format="csr"))
    chars = sp.csr_matrix(sp.vstack([result[2] for result in results], format="csr"))
    documents = [Document(title, body) for title, body in zip(titles, bodies, strict=True)]
    return documents, boilerplate, words, chars


def _exact_title_pairs(
    documents: Sequence[Document], rows: Iterable[int] | None = None
) -> list[tuple[int, int]]:
    """Row pairs with identical non-empty normalised titles (all pairs, or those touching
    ``rows``)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for row, doc in enumerate(documents):
        if doc.title:
            groups[doc.title].append(row)
    wanted = None if rows is None else set(rows)
    pairs: list[tuple[int, int]] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        # Very large identical-title groups are templates or bursts; pair each member with a few
        # neighbours.
        for position, row in enumerate(members):
            if wanted is not None and row not in wanted:
                continue
            for other in members[max(0, position - TOP_K) : position + TOP_K + 1]:
                if other != row:
                    pairs.append((row, other))
    return pairs


def _search(
    matrix: sp.csr_matrix,
    documents: Sequence[Document],
    query_rows: npt.NDArray[np.int64] | None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Candidate pairs with scores for the query rows (all rows when None) against every row."""
    queries = matrix if query_rows is None else matrix[query_rows]
    rows, cols, scores = _top_pairs(queries, matrix, TOP_K)
    if query_rows is not None:
        rows = query_rows[rows]
    exact = _exact_title_pairs(documents, None if query_rows is None else query_rows.tolist())
    if exact:
        extra = np.asarray(exact, dtype=np.int64)
        extra_scores = exact_scores(matrix, extra[:, 0], extra[:, 1])
        rows = np.concatenate([rows, extra[:, 0]])
        cols = np.concatenate([cols, extra[:, 1]])
        scores = np.concatenate([scores, extra_scores])
    codes, unique_scores = _unique_pairs(rows, cols, scores)
    return codes, _penalise(documents, codes, unique_scores)


def build_index(issues: Sequence[Issue]) -> DuplicateIndex:
    """A fresh index of ``issues`` with candidate pairs among all of them."""
    documents, boilerplate, words, chars = documents_and_counts(issues)
    vectoriser, matrix = Vectoriser.fit_counts(words, chars)
    pairs, scores = _search(matrix, documents, None)
    return DuplicateIndex(
        keys=[issue.key for issue in issues],
        fingerprints=[_fingerprint(issue) for issue in issues],
        documents=documents,
        vectoriser=vectoriser,
        boilerplate=boilerplate,
        matrix=matrix,
        pairs=pairs,
        scores=scores,
    )


REBUILD_SHARE = 0.2


def update_index(index: DuplicateIndex, issues: Sequence[Issue]) -> DuplicateIndex:
    """``index`` brought up to ``issues``: new or changed items re-vectorised and searched.

    Items no longer in ``issues`` are dropped.

    Document frequencies follow the changed items, but unchanged items keep the weights of the last
    build and the title boilerplate stays as learned then, so scores drift a little; once more than
    a fifth of the items changed since the last build, the index is rebuilt from scratch.
    """
    fingerprints = [_fingerprint(issue) for issue in issues]
    changed = [
        position
        for position, (issue, print_) in enumerate(zip(issues, fingerprints, strict=True))
        if (row := index.row_of.get(issue.key)) is None or index.fingerprints[row] != print_
    ]
    current = {issue.key for issue in issues}
    gone = [row for row, key in enumerate(index.keys) if key not in current]
    if not changed and not gone and len(index.keys) == len(issues):
        return index
    drifted = index.changed_since_build + len(changed) + len(gone)
    if drifted > REBUILD_SHARE * max(len(index.keys), 1):
        logger.info("duplicate index: %d changed, %d gone: rebuilding", len(changed), len(gone))
        return build_index(issues)
    changed_keys = {issues[position].key for position in changed}
    # Keep unchanged rows in their old order, then append the new versions of changed items.
    keep_rows = np.asarray(
        [row for row, key in enumerate(index.keys) if key in current and key not in changed_keys],
        dtype=np.int64,
    )
    new_row = np.full(len(index.keys), -1, dtype=np.int64)
    new_row[keep_rows] = np.arange(len(keep_rows), dtype=np.int64)
    changed_issues = [issues[position] for position in changed]
    changed_docs, _, words, chars = documents_and_counts(changed_issues, index.boilerplate)
    leaving = np.setdiff1d(np.arange(len(index.keys)), keep_rows)
    vectoriser = index.vectoriser.updated(index.matrix[leaving], words, chars)
    matrix = sp.csr_matrix(
        sp.vstack([index.matrix[keep_rows], vectoriser.transform_counts(words, chars)], format="csr")
    )
    documents = [index.documents[row] for row in keep_rows] + changed_docs
    keys = [index.keys[row] for row in keep_rows] + [issue.key for issue in changed_issues]
    prints = [index.fingerprints[row] for row in keep_rows] + [fingerprints[p] for p in changed]
    # Old pairs survive while both ends exist; a pair with a changed end is rescored (its partner
    # may not be in the changed item's own top k). Changed items also get a fresh search against
    # everything.
    low, high = decode_pairs(index.pairs)
    low, high = new_row[low], new_row[high]
    changed_rows = np.zeros(len(index.keys), dtype=bool)
    changed_rows[[index.row_of[k] for k in changed_keys if k in index.row_of]] = True
    old_low, old_high = decode_pairs(index.pairs)
    touched = changed_rows[old_low] | changed_rows[old_high]
    # Rows of changed items in the new matrix, by key.
    position_of = {key: row for row, key in enumerate(keys)}
    old_low_keys = [index.keys[r] for r in old_low[touched]]
    old_high_keys = [index.keys[r] for r in old_high[touched]]
    kept_low = np.asarray([position_of.get(k, -1) for k in old_low_keys], dtype=np.int64)
    kept_high = np.asarray([position_of.get(k, -1) for k in old_high_keys], dtype=np.int64)
    exists = (kept_low >= 0) & (kept_high >= 0)
    alive = (low >= 0) & (high >= 0) & ~touched
    query_rows = np.arange(len(keep_rows), len(keys), dtype=np.int64)
    fresh, fresh_scores = _search(matrix, documents, query_rows)
    rescored_low, rescored_high = kept_low[exists], kept_high[exists]
    rescored, rescored_scores = _unique_pairs(
        rescored_low, rescored_high, exact_scores(matrix, rescored_low, rescored_high)
    )
    rescored_scores = _penalise(documents, rescored, rescored_scores)
    unchanged = (low[alive] << _PAIR_SHIFT) | high[alive]
    merged = np.concatenate([unchanged, fresh, rescored])
    merged_scores = np.concatenate([index.scores[alive], fresh_scores, rescored_scores])
    pairs, first = np.unique(merged, return_index=True)
    scores = merged_scores[first]
    logger.info("duplicate index: updated %d changed, dropped %d gone", len(changed), len(gone))
    return DuplicateIndex(
        keys=keys,
        fingerprints=prints,
        documents=documents,
        vectoriser=vectoriser,
        boilerplate=index.boilerplate,
        matrix=matrix,
        pairs=pairs,
        scores=scores,
        updates=index.updates + 1,
        changed_since_build=drifted,
        embeddings={k: v for k, v in index.embeddings.items() if k in current},
        terms={
            pair: terms
            for pair, terms in index.terms.items()
            if pair[0] in current
            and pair[1] in current
            and pair[0] not in changed_keys
            and pair[1] not in changed_keys
        },
    )


# --- the rule ------------------------------------------------------------------------------------


# Defaults from the Hadoop sweeps in benchmarks/README.md: where precision stops improving as the
# threshold rises while recall keeps falling. Fused semantic scores run higher than lexical ones.
LEXICAL_THRESHOLD = 0.55
SEMANTIC_THRESHOLD = 0.65


class DuplicateOptions(RuleOptions):
    """Options of ``duplicate-candidate``."""

    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="flag a pair whose similarity score reaches this (0-1); default 0.55, "
        "or 0.65 with semantic re-ranking",
    )
    closed_window_days: int = Field(
        default=180, ge=0, description="also compare with items closed at most this many days ago"
    )
    max_candidates: int = Field(default=3, ge=1, le=10, description="similar items listed per finding")
    semantic: bool = Field(
        default=False,
        # No square brackets here: the CLI prints descriptions as rich markup.
        description="re-rank candidates with a bundled sentence-embedding model "
        "(needs the optional 'semantic' extra of refinebot)",
    )

    recency_weight: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="rank a candidate filed close in time to the item up to this much higher "
        "(duplicates are usually reported close together); 0 ranks by similarity alone",
    )
    recency_days: float = Field(default=365.0, gt=0, description="how fast that preference fades, in days")

    def resolved_threshold(self) -> float:
        """The configured threshold, or the default measured for the scoring in use."""
        if self.threshold is not None:
            return self.threshold
        return SEMANTIC_THRESHOLD if self.semantic else LEXICAL_THRESHOLD


IDENTICAL_SCORE = 0.999


def recency_boost(days_apart: Any, weight: float, scale_days: float) -> Any:
    """A ranking multiplier of 1 to 1 + ``weight`` that favours candidates filed close in time.

    Duplicates cluster in time (the same failure is reported again soon), so among similar candidates the
    nearer one is likelier the original. It orders candidates only: thresholds apply to the similarity
    itself, so it never makes a pair flagged. Works on numbers and numpy arrays alike.
    """
    return 1.0 + weight * np.exp(-np.abs(days_apart) / scale_days)


def ranking_score(score: Any, days_apart: Any, options: DuplicateOptions) -> Any:
    """How candidates are ordered: similarity times the recency preference.

    Identical copies say nothing about which came first: they all get the full preference, so ties among them
    go to the oldest (the natural one to keep). Works on numbers and numpy arrays alike; the accuracy benchmark
    ranks with this same function.
    """
    days = np.where(np.asarray(score) >= IDENTICAL_SCORE, 0.0, days_apart)
    return score * recency_boost(days, options.recency_weight, options.recency_days)


def _days_apart(a: Issue, b: Issue) -> float:
    first, second = _aware(a.created), _aware(b.created)
    if first is None or second is None:
        return float("inf")  # unknown: no preference
    return abs((first - second).total_seconds()) / 86_400.0


def _linked_pairs(issues: Iterable[Issue]) -> set[frozenset[str]]:
    """Pairs already linked in the tracker, of any kind, or parent and child (read from either
    side).

    Duplicate and parent/child links settle the question; a "blocks" or "relates" link means someone
    already looked at both items together and chose another relation, so flagging them is noise.
    """
    linked: set[frozenset[str]] = set()
    for issue in issues:
        if issue.parent:
            linked.add(frozenset((issue.key, issue.parent)))
        for link in issue.links:
            linked.add(frozenset((issue.key, link.target)))
    return linked


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _age_key(issue: Issue) -> tuple[datetime, tuple[int, str]]:
    """Sort key of creation order; items without a date sort by the number in their key."""
    created = _aware(issue.created) or datetime.min.replace(tzinfo=UTC)
    digits = re.findall(r"\d+", issue.key)
    return created, (int(digits[-1]) if digits else 0, issue.key)


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """Two items, by position in the indexed list, and their exact score."""

    first: int
    second: int
    score: float


PENALTY_FLOOR = 0.2


def _penalise(
    documents: Sequence[Document], pairs: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """``scores`` with the near-miss template penalty applied."""
    scores = scores.copy()
    low, high = decode_pairs(pairs)
    tokens: dict[int, list[str]] = {}

    def title_tokens(row: int) -> list[str]:
        if row not in tokens:
            tokens[row] = _title_tokens(documents[row].title)
        return tokens[row]

    # The slot check is a Python loop: run it only where a penalty could still matter.
    for position in np.flatnonzero(scores >= PENALTY_FLOOR):
        first, second = title_tokens(int(low[position])), title_tokens(int(high[position]))
        scores[position] *= _slot_penalty_tokens(first, second)
    return scores


def score_candidates(index: DuplicateIndex, min_score: float = 0.0) -> list[ScoredPair]:
    """Candidate pairs of the index scoring above zero and at least ``min_score``, best first."""
    keep = np.flatnonzero((index.scores >= min_score) & (index.scores > 0))
    keep = keep[np.argsort(-index.scores[keep], kind="stable")]
    low, high = decode_pairs(index.pairs[keep])
    return [
        ScoredPair(int(a), int(b), float(v)) for a, b, v in zip(low, high, index.scores[keep], strict=True)
    ]


CANDIDATE_SHARE = 0.5
# Semantic re-ranking looks at candidate pairs down to this lexical score; the fused score is the
# mean of the lexical and the embedding cosine, so lower pairs cannot reach a useful threshold.
SEMANTIC_FLOOR = 0.2
SEMANTIC_BODY_CHARS = 500


def rerank(index: DuplicateIndex, candidates: Sequence[ScoredPair]) -> list[ScoredPair]:
    """``candidates`` rescored as the mean of lexical score and embedding cosine, best first.

    Embeddings are cached in the index by item and text fingerprint, so a later run embeds only new
    or changed items. Needs the ``semantic`` extra (``SemanticUnavailableError`` otherwise).
    """
    from rules import embeddings

    rows = sorted({p.first for p in candidates} | {p.second for p in candidates})
    missing = [
        row for row in rows if index.embeddings.get(index.keys[row], ("", None))[0] != index.fingerprints[row]
    ]
    if missing:
        texts = [
            f"{index.documents[row].title}. {index.documents[row].body[:SEMANTIC_BODY_CHARS]}"
            for row in missing
        ]
        for row, vector in zip(missing, embeddings.embed(texts), strict=True):
            index.embeddings[index.keys[row]] = (index.fingerprints[row], vector)
    fused = []
    for pair in candidates:
        first = index.embeddings[index.keys[pair.first]][1]
        second = index.embeddings[index.keys[pair.second]][1]
        cosine = max(0.0, float(first @ second))
        fused.append(ScoredPair(pair.first, pair.second, 0.5 * (pair.score + cosine)))
    fused.sort(key=lambda p: -p.score)
    return fused


def _cache_key(ctx: RuleContext, window: int) -> str:
    return f"duplicate-candidate:{ctx.project}:window={window}"


class DuplicateCandidate(BacklogRule):
    """Open items that look like another open or recently closed item may be duplicates.

    Each open item is compared with every other open item and with items closed in the last
    ``closed_window_days`` days (default 180). A pair is flagged when its similarity score (0-1:
    word and character TF-IDF over titles and descriptions, after removing title templates and stack
    traces and cutting code blocks to their opening) reaches ``threshold``. The finding goes on the
    newer item and names the older one (or, when the newer one is closed, goes on the open one); it
    lists the top candidates and the words they share. Pairs already linked in the tracker
    (duplicate, blocks, relates...) or parent and child, and pairs someone marked "not a duplicate",
    are never flagged. Titles that are one template with another value in a slot ("Upgrade X to 1.2"
    / "Upgrade X to 1.3") score lower. With ``semantic`` (optional extra) a bundled
    sentence-embedding model re-scores the candidates. This is a hint for a human: nothing is linked
    or closed.
    """

    code = "RB501"
    name = "duplicate-candidate"
    default_severity = Severity.WARNING  # a possible duplicate needs a decision before refinement
    Options = DuplicateOptions

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterator[Finding]:
        options: DuplicateOptions = self.options  # type: ignore[assignment]
        eligible = self._eligible(issues, ctx, options)
        if len(eligible) < 2:
            return
        index = self._index(eligible, ctx, options)
        by_key = {issue.key: issue for issue in eligible}
        blocked = _linked_pairs(issues) | set(ctx.suppressed_pairs)
        # Per item: its scored neighbours (for the candidate list) and the flagged pairs it reports.
        neighbours: dict[str, list[tuple[float, str]]] = defaultdict(list)
        reported: dict[str, list[tuple[float, str]]] = defaultdict(list)
        threshold = options.resolved_threshold()
        floor = CANDIDATE_SHARE * threshold
        if options.semantic:
            candidates = [
                p for p in rerank(index, score_candidates(index, SEMANTIC_FLOOR)) if p.score >= floor
            ]
        else:
            candidates = score_candidates(index, floor)
        for pair in candidates:
            key_a, key_b = index.keys[pair.first], index.keys[pair.second]
            if frozenset((key_a, key_b)) in blocked:
                continue
            issue_a, issue_b = by_key[key_a], by_key[key_b]
            neighbours[key_a].append((pair.score, key_b))
            neighbours[key_b].append((pair.score, key_a))
            if pair.score < threshold:
                continue
            older, newer = sorted((issue_a, issue_b), key=_age_key)
            if newer.is_open:
                reported[newer.key].append((pair.score, older.key))
            elif older.is_open:
                reported[older.key].append((pair.score, newer.key))
        for key in sorted(reported, key=lambda k: _age_key(by_key[k])):
            yield self._finding(ctx, index, by_key, key, reported[key], neighbours[key], options)

    @staticmethod
    def _eligible(issues: Sequence[Issue], ctx: RuleContext, options: DuplicateOptions) -> list[Issue]:
        """Open items plus items closed within the window.

        Closing time is read as the last update: the ``Issue`` model carries no resolution date.
        """
        cutoff = ctx.now - timedelta(days=options.closed_window_days)
        eligible = []
        for issue in issues:
            if issue.is_open:
                eligible.append(issue)
                continue
            closed = _aware(issue.updated) or _aware(issue.created)
            if closed is not None and closed >= cutoff:
                eligible.append(issue)
        return eligible

    @staticmethod
    def _index(issues: Sequence[Issue], ctx: RuleContext, options: DuplicateOptions) -> DuplicateIndex:
        cache = ctx.cache
        if cache is None:
            return build_index(issues)
        key = _cache_key(ctx, options.closed_window_days)
        cached = cache.get(key)
        if isinstance(cached, DuplicateIndex) and cached.version == INDEX_VERSION:
            index = update_index(cached, issues)
        else:
            index = build_index(issues)
        cache.put(key, index)
        return index

    def _finding(
        self,
        ctx: RuleContext,
        index: DuplicateIndex,
        by_key: Mapping[str, Issue],
        key: str,
        reported: list[tuple[float, str]],
        neighbours: list[tuple[float, str]],
        options: DuplicateOptions,
    ) -> Finding:
        issue = by_key[key]

        def rank_key(pair: tuple[float, str]) -> float:
            return float(ranking_score(pair[0], _days_apart(issue, by_key[pair[1]]), options))

        # The best partner by similarity with the recency preference; on a tie the oldest, the natural one
        # to keep.
        score, other = min(reported, key=lambda p: (-rank_key(p), _age_key(by_key[p[1]])))
        # Candidates far below the threshold are noise, not evidence; the flagged partner always
        # shows.
        floor = min(score, CANDIDATE_SHARE * options.resolved_threshold())
        ranked = sorted((p for p in neighbours if p[0] >= floor), key=lambda p: (-rank_key(p), p[1]))
        ranked = ranked[: options.max_candidates]
        candidates = [
            {
                "issue": candidate,
                "score": round(value, 3),
                "status": by_key[candidate].status_category.value,
                "title": by_key[candidate].title,
            }
            for value, candidate in ranked
        ]
        pair = (key, other) if key < other else (other, key)
        shared = index.terms.get(pair)
        if shared is None:
            shared = index.vectoriser.shared_terms(
                index.documents[index.row_of[key]], index.documents[index.row_of[other]]
            )
            index.terms[pair] = shared
        target = by_key[other]
        closed = " (closed)" if target.status_category is StatusCategory.DONE else ""
        because = f"; shared terms: {', '.join(shared)}" if shared else ""
        others = [candidate for _, candidate in ranked if candidate != other]
        also = f" Also similar: {', '.join(others)}." if others else ""
        message = (
            f'This may be a possible duplicate of {other}{closed} "{_short(target.title)}" '
            f"(similarity {score:.2f}{because}).{also} A human should confirm and link it; "
            "nothing is closed automatically."
        )
        return self.finding(
            ctx,
            issue,
            message,
            duplicate_of=other,
            score=round(score, 3),
            candidates=candidates,
            shared_terms=shared,
        )


def _short(title: str, limit: int = 80) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


RULES = (DuplicateCandidate,)

__all__ = [
    "DuplicateCandidate",
    "DuplicateIndex",
    "DuplicateOptions",
    "TitleBoilerplate",
    "Vectoriser",
    "build_index",
    "clean_body",
    "normalise_title",
    "prepare_documents",
    "ranking_score",
    "recency_boost",
    "score_candidates",
    "slot_penalty",
    "update_index",
]
