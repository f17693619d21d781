"""The batch explanations and vectorised ranks give what the per-pair code gives, term for term and bit for bit."""

from __future__ import annotations

import csv
import pickle
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rules.duplicates.explain import SharedTerms, word_terms
from rules.duplicates.forked import SharedSlices
from rules.duplicates.ranking import ScoredPair, pair_ranks, ranking_score
from rules.duplicates.sklearn_hashers import WORD_ANALYZER as _WORD_ANALYZER
from rules.duplicates.stopwords import ENGLISH_STOP_WORDS as _STOP_WORDS
from rules.duplicates.text import Document, clean_body, normalise_title
from rules.duplicates.tokens import TokenTable
from rules.duplicates.vectors import Vectoriser, document_counts
from tests.shared_data import SHARED, require_shared


def _real_documents(limit: int) -> list[Document]:
    data = require_shared(SHARED / "data" / "jira-storypoints")
    csv.field_size_limit(sys.maxsize)
    documents: list[Document] = []
    for path in sorted(data.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                documents.append(
                    Document(normalise_title(row["title"]), clean_body(row["description"] or ""))
                )
    rng = random.Random(3)
    rng.shuffle(documents)
    return documents[:limit]


def _explainer(vectoriser: Vectoriser, documents: list[Document], tabled: bool) -> SharedTerms:
    """An explainer that tokenises the texts itself, or one that reads their tokens from a table
    built as the index's cleaning builds it: chunk by chunk (37 documents here), each chunk
    numbering its own ids, with equal descriptions in one group."""
    if not tabled:
        return SharedTerms(vectoriser, documents)
    tables = [document_counts(documents[start : start + 37])[2] for start in range(0, len(documents), 37)]
    groups: dict[str, int] = {}
    body_groups = np.asarray([groups.setdefault(d.body, len(groups)) for d in documents], dtype=np.int64)
    return SharedTerms(vectoriser, documents, TokenTable.joined(tables).with_body_groups(body_groups))


def test_word_terms_are_the_hashers_analyser_terms_on_real_text() -> None:
    for document in _real_documents(3000):
        assert word_terms(document.word_text) == Counter(_WORD_ANALYZER(document.word_text))


@pytest.mark.parametrize("tabled", [False, True])
def test_shared_terms_in_batch_equal_the_per_pair_explanation_on_real_text(tabled: bool) -> None:
    real = _real_documents(1500)
    # Near-copies (a suffix, a dropped sentence) share many terms and tie often; random pairs share few.
    copies = [Document(f"{d.title} again", d.body[: len(d.body) // 2]) for d in real[:300]]
    documents = real + copies
    vectoriser, _ = Vectoriser.fit(documents)
    rng = random.Random(5)
    pairs = [(row, len(real) + row) for row in range(300)]
    pairs += [(rng.randrange(len(real)), rng.randrange(len(real))) for _ in range(700)]
    explained = _explainer(vectoriser, documents, tabled).of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        expected = vectoriser.shared_terms(documents[first], documents[second])
        assert terms == expected, (documents[first], documents[second])


@pytest.mark.parametrize("tabled", [False, True])
def test_shared_terms_over_several_chunks_and_shared_descriptions_equal_the_per_pair_ones(
    monkeypatch: pytest.MonkeyPatch, tabled: bool
) -> None:
    """Pairs split over chunks, documents in more than one chunk, descriptions shared by copies
    (tokenised once), a title equal to another item's description, empty texts, a pair of a
    document with itself, and a term counted many times."""
    import rules.duplicates.explain as explain

    monkeypatch.setattr(explain, "_CHUNK", 7)
    real = _real_documents(200)
    documents = list(real)
    documents += [Document(f"{d.title} on staging", d.body) for d in real[:60]]
    documents += [Document(f"{d.title} again", d.body) for d in real[:60]]
    documents += [Document(real[0].body[:80], real[1].body), Document("", ""), Document("", real[2].body)]
    documents += [Document("retry retry retry", " ".join(["retry storm"] * 40))] * 2
    vectoriser, _ = Vectoriser.fit(documents)
    rng = random.Random(8)
    pairs = [(row, 200 + row) for row in range(60)] + [(200 + row, 260 + row) for row in range(60)]
    pairs += [(rng.randrange(len(documents)), rng.randrange(len(documents))) for _ in range(150)]
    pairs += [(320, 1), (321, 322), (322, 2), (323, 324), (5, 5), (324, 323)]
    explained = _explainer(vectoriser, documents, tabled).of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second]), (first, second)
    assert explained[-3] == ["retry storm", "storm retry", "retry retry"]  # "retry" is in them


def test_ties_are_broken_by_the_term_and_bigrams_replace_their_words() -> None:
    documents = [
        Document("zeta alpha beta gamma delta", "omega"),
        Document("zeta alpha beta gamma delta", "omega"),
        Document("unrelated words only", ""),
    ]
    vectoriser, _ = Vectoriser.fit(documents)
    explainer = SharedTerms(vectoriser, documents)
    assert explainer.of(0, 1) == vectoriser.shared_terms(documents[0], documents[1])
    # The title's bigrams (counted twice: the title is read twice) tie and come in name order, before
    # the body's; their words are not repeated.
    assert explainer.of(0, 1) == ["alpha beta", "beta gamma", "gamma delta", "zeta alpha", "delta omega"]
    assert explainer.of(0, 2) == [] == vectoriser.shared_terms(documents[0], documents[2])
    assert explainer.of_pairs([(0, 2), (1, 0)]) == [[], explainer.of(0, 1)]
    assert explainer.of_pairs([]) == []


def test_vectorised_ranks_equal_the_scalar_ranking_score() -> None:
    options: Any = SimpleNamespace(recency_weight=0.2, recency_days=365.0)
    rng = random.Random(9)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    created: list[datetime | None] = [
        start + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(10**6)) for _ in range(400)
    ]
    created[3] = None  # undated: no preference
    created[4] = datetime(2024, 5, 1, 12, 0)  # naive: read as UTC
    created[5] = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    pairs = [
        ScoredPair(rng.randrange(400), rng.randrange(400), s, s) for s in (rng.random() for _ in range(3000))
    ]
    pairs += [ScoredPair(3, 7, 0.8, 0.8), ScoredPair(4, 5, 0.6, 0.6), ScoredPair(1, 2, 0.9995, 0.9995)]
    ranks = pair_ranks(pairs, created, options).tolist()

    def aware(moment: datetime | None) -> datetime | None:
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)

    for pair, rank in zip(pairs, ranks, strict=True):
        a, b = aware(created[pair.first]), aware(created[pair.second])
        days = float("inf") if a is None or b is None else abs((a - b).total_seconds()) / 86_400.0
        assert rank == float(ranking_score(pair.score, days, options))
    assert ranks[-2] == pytest.approx(0.6 * 1.2)  # 14:00+02:00 is 12:00 UTC: the same moment


class _PicklingCache:
    """A cache that keeps a copy made at ``put``, as the store's does (a later change is not kept)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def get(self, key: str) -> object | None:
        blob = self.blobs.get(key)
        return None if blob is None else pickle.loads(blob)

    def put(self, key: str, value: object) -> None:
        self.blobs[key] = pickle.dumps(value)

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)


def test_the_cached_index_keeps_the_shared_terms_of_the_findings() -> None:
    from refinebot.models import Issue, SourceKind
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate, DuplicateIndex
    from rules.duplicates.stored import load_index

    titles = [
        "Checkout fails when a coupon code is applied",
        "Coupon code breaks the checkout",
        "Add dark mode",
    ]
    issues = [
        Issue(key=f"T-{n}", project="T", source_kind=SourceKind.FILE, title=title, description=f"{title}.")
        for n, title in enumerate(titles, start=1)
    ]
    cache = _PicklingCache()
    ctx = RuleContext("T", datetime(2026, 11, 20, tzinfo=UTC), cache=cache)
    (finding,) = DuplicateCandidate().check(issues, ctx)
    index = load_index(cache, "duplicate-candidate:T:window=180")
    assert isinstance(index, DuplicateIndex)
    assert index.terms[("T-1", "T-2")] == finding.details["shared_terms"] != []


def _copies_backlog(
    rng: random.Random, bases: int, copies: int
) -> tuple[list[Document], list[tuple[int, int]]]:
    """Real documents, each with near-copies (a suffix on the title, the same description), and
    pairs among each group as the duplicate-heavy backlog reports them."""
    real = _real_documents(bases)
    documents = list(real)
    pairs = []
    for row, document in enumerate(real):
        for copy in range(copies):
            pairs.append((row, len(documents)))
            if copy:
                pairs.append((len(documents) - 1, len(documents)))
            documents.append(
                Document(f"{document.title} {rng.choice(['again', 'on staging'])}", document.body)
            )
    pairs += [(rng.randrange(len(documents)), rng.randrange(len(documents))) for _ in range(100)]
    return documents, pairs


def test_forked_workers_give_the_same_terms_as_one_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os
    import time

    import rules.duplicates.explain as explain

    monkeypatch.setattr(explain, "_CHUNK", 50)
    documents, pairs = _copies_backlog(random.Random(4), 150, 3)
    vectoriser, _ = Vectoriser.fit(documents)
    expected = SharedTerms(vectoriser, documents).of_pairs(pairs)
    parent, chunks = os.getpid(), tmp_path / "chunks"
    in_chunks = SharedTerms._in_chunks

    def marked(self: SharedTerms, chunk: Any, limit: int) -> list[list[str]]:
        if os.getpid() == parent:
            time.sleep(0.02)  # so that the worker surely takes some
        else:
            with chunks.open("a") as handle:
                handle.write(f"{len(chunk)}\n")
        return in_chunks(self, chunk, limit)

    monkeypatch.setattr(SharedTerms, "_in_chunks", marked)
    forked = SharedTerms(vectoriser, documents)  # one in each process: the worker's is its copy
    slices = SharedSlices(lambda start, stop: forked.of_pairs(pairs[start:stop]), len(pairs), 50, 2)
    assert [terms for _, part in sorted(slices, key=lambda part: part[0]) for terms in part] == expected
    if "fork" in __import__("multiprocessing").get_all_start_methods():
        assert chunks.exists() and slices.worker_cpu > 0.0  # the worker did some of the work
        assert 0 < sum(map(int, chunks.read_text().split())) < len(pairs)  # and this process too
    for (first, second), terms in list(zip(pairs, expected, strict=True))[::7]:
        assert terms == vectoriser.shared_terms(documents[first], documents[second])


def test_keys_too_wide_to_pack_are_sorted_by_lexsort_with_the_same_terms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import rules.duplicates.explain as explain

    documents, pairs = _copies_backlog(random.Random(6), 80, 2)
    vectoriser, _ = Vectoriser.fit(documents)
    packed = SharedTerms(vectoriser, documents).of_pairs(pairs)
    monkeypatch.setattr(explain, "_KEY_BITS", 8)  # every packed sort falls back to np.lexsort
    assert SharedTerms(vectoriser, documents).of_pairs(pairs) == packed
    for (first, second), terms in zip(pairs, packed, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second])


def test_term_columns_are_the_term_hashers_columns_on_real_text() -> None:
    import numpy as np
    import scipy.sparse as sp

    from rules.duplicates.explain import _squared_idf
    from rules.duplicates.sklearn_hashers import TERM_HASHER as _TERM_HASHER

    documents = _real_documents(2000)
    vectoriser, _ = Vectoriser.fit(documents)
    terms = sorted({term for document in documents for term in word_terms(document.word_text)})
    columns = sp.csr_matrix(_TERM_HASHER.transform([[term] for term in terms])).indices
    expected = [float(w) ** 2 for w in vectoriser.word_idf[columns]]
    assert _squared_idf(vectoriser, terms).tolist() == expected
    assert len(np.unique(columns)) > 1000


def test_the_finding_names_the_terms_the_pair_shares_strongest_first() -> None:
    """Through the rule: a near-copy's finding lists the bigrams both items' titles share (a title
    counts twice), then the descriptions' (ties in name order), and the message names them."""
    from refinebot.models import Issue, SourceKind
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate

    texts = [
        (
            "Checkout fails when a coupon code is applied",
            "The payment page shows error 502 after the coupon.",
        ),
        (
            "Checkout fails when a coupon code is applied again",
            "The payment page shows error 502 after the coupon.",
        ),
        ("Add dark mode", "Users want a dark theme for the settings page."),
    ]
    issues = [
        Issue(
            key=f"T-{n}",
            project="T",
            source_kind=SourceKind.FILE,
            title=title,
            description=body,
            created=datetime(2026, 1, n, tzinfo=UTC),
        )
        for n, (title, body) in enumerate(texts, start=1)
    ]
    (finding,) = DuplicateCandidate().check(issues, RuleContext("T", datetime(2026, 11, 20, tzinfo=UTC)))
    terms = ["checkout fails", "code applied", "coupon code", "fails coupon", "502 coupon"]
    assert finding.issue == "T-2"
    assert finding.details["shared_terms"] == terms
    assert f"; shared terms: {', '.join(terms)})." in finding.message


def test_the_fast_token_pattern_finds_the_analysers_tokens() -> None:
    """Every string of up to 5 characters over word characters (ASCII, accented, digit, underscore),
    a combining accent, dots, spaces and dashes, and the real texts."""
    import itertools
    import re

    from rules.duplicates.explain import _FAST_TOKENS
    from rules.duplicates.vectors import TOKEN_PATTERN

    tokens = re.compile(TOKEN_PATTERN).findall
    alphabet = "aé1_.\u0301 -"
    for length in range(6):
        for letters in itertools.product(alphabet, repeat=length):
            text = "".join(letters)
            assert _FAST_TOKENS(text) == tokens(text), text
    for document in _real_documents(3000):
        for text in (document.title, document.body, document.word_text):
            assert _FAST_TOKENS(text) == tokens(text)


def _tokens_kept(explainer: SharedTerms, number: int) -> list[str]:
    start, length = int(explainer._starts[number]), int(explainer._lengths[number])
    return [explainer._vocab.names[i] for i in explainer._ids[start : start + length].tolist()]


@pytest.mark.parametrize("tabled", [False, True])
def test_texts_tokenised_in_one_batch_have_the_analysers_tokens(tabled: bool) -> None:
    """Every string of up to 4 characters over word characters (ASCII, accented, digit,
    underscore), a combining accent, dots, the batch's separator, spaces, dashes and commas, ASCII
    and not mixed in one batch and over two batches, and the real texts: each text's kept ids are
    its tokens without stop words, in order."""
    import itertools
    import re

    from rules.duplicates.stopwords import ENGLISH_STOP_WORDS
    from rules.duplicates.vectors import TOKEN_PATTERN

    tokens = re.compile(TOKEN_PATTERN).findall
    alphabet = "aé1_.\u0301\x01 -,"
    texts = [
        "".join(letters) for length in range(5) for letters in itertools.product(alphabet, repeat=length)
    ]
    texts += ["the end.", "...", "a.b..c. .d", "x\x01y z", "naïve—test.", "..net core 2.0."]
    real = _real_documents(500)
    texts += [text for document in real for text in (document.title, document.body)]
    rng = random.Random(4)
    rng.shuffle(texts)
    documents = [
        Document(title, body) for title, body in itertools.zip_longest(texts[::2], texts[1::2], fillvalue="")
    ]
    vectoriser, _ = Vectoriser.fit(real)
    explainer = _explainer(vectoriser, documents, tabled)
    half = len(documents) // 2
    explainer._tokenise(np.arange(half))  # a second batch adds to the first's vocabulary and ids
    explainer._tokenise(np.arange(len(documents)))
    for row, document in enumerate(documents):
        for text, number in (
            (document.title, explainer._title_of[row]),
            (document.body, explainer._body_of[row]),
        ):
            expected = [token for token in tokens(text) if token not in ENGLISH_STOP_WORDS]
            assert _tokens_kept(explainer, int(number)) == expected, text


def test_components_order_the_nodes_as_scipys_connected_components() -> None:
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from rules.duplicates.explain import components

    rng = random.Random(3)
    for size, edges in ((2, 1), (30, 12), (500, 400), (2000, 1800)):
        ends = np.asarray(
            [(rng.randrange(size), rng.randrange(size)) for _ in range(edges)] + [(0, size - 1)],
            dtype=np.int64,
        )
        graph = sp.coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(size, size))
        _, expected = connected_components(graph, directed=False)
        got = components(ends, size)
        # The same partition, and labels in the same order (scipy numbers by smallest node).
        assert (np.unique(got, return_inverse=True)[1] == expected).all()
        assert all(got[node] <= node for node in range(size))


def _copies_issues(rng: random.Random, bases: int) -> list[Any]:
    """A duplicate-heavy backlog of real texts: each real item with copies (a suffix on the title,
    the same description), some closed."""
    from refinebot.models import Issue, SourceKind, StatusCategory

    issues = []
    for number, document in enumerate(_real_documents(bases)):
        for copy in range(rng.randint(1, 4)):
            suffix = "" if not copy else f" {rng.choice(['again', 'on staging', 'still failing'])}"
            issues.append(
                Issue(
                    key=f"R-{len(issues) + 1}",
                    project="R",
                    source_kind=SourceKind.FILE,
                    title=f"{document.title}{suffix}",
                    description=document.body,
                    status_category=StatusCategory.DONE if rng.random() < 0.1 else StatusCategory.TODO,
                    created=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=len(issues)),
                )
            )
            if number % 7 == 0 and copy:
                break
    return issues


def test_findings_built_in_forked_slices_are_the_ones_built_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through the rule, on a first run and on a second one that finds most pairs explained in the
    cache and a few new items: the same findings, in the same order, byte for byte, and the same
    terms kept in the index. Slices here are slowed, so that the worker surely builds some."""
    import dataclasses
    import os
    import time

    import rules.duplicates.explain as explain
    import rules.duplicates.rule as rule
    from rules.base import MemoryRuleCache, RuleContext
    from rules.duplicates import DuplicateCandidate
    from rules.duplicates.stored import load_index

    if "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("workers are forked")
    issues = _copies_issues(random.Random(12), 160)
    later = [
        dataclasses.replace(issue, key=f"N-{n}")
        for n, issue in enumerate(_copies_issues(random.Random(13), 6))
    ]
    now = datetime(2026, 11, 20, tzinfo=UTC)

    def runs() -> tuple[list[object], list[object], object]:
        cache = MemoryRuleCache()
        first = [f.to_json() for f in DuplicateCandidate().check(issues, RuleContext("R", now, cache=cache))]
        context = RuleContext("R", now, cache=cache)
        second = [f.to_json() for f in DuplicateCandidate().check([*issues, *later], context)]
        index = load_index(cache, "duplicate-candidate:R:window=180")
        return first, second, dict(index.terms) if index is not None else None

    expected = runs()
    assert len(expected[0]) > 100 and len(expected[1]) > len(expected[0])
    # Oldest reporting item first (the pairs were explained in another order: near-copies together).
    created = {issue.key: issue.created for issue in [*issues, *later]}
    for findings in expected[:2]:
        reporters = [created[finding["issue"]] for finding in findings]  # type: ignore[index]
        assert reporters == sorted(reporters)
    parent = os.getpid()
    slices = tmp_path / "slices"
    slice_terms = rule.DuplicateCandidate._slice_terms

    def marked(explainer: Any, rows: Any, start: int, stop: int) -> Any:
        if os.getpid() == parent:
            time.sleep(0.02)
        else:
            with slices.open("a") as handle:  # in the worker's memory: written where this one sees it
                handle.write(f"{start}\n")
        return slice_terms(explainer, rows, start, stop)

    monkeypatch.setattr(rule.DuplicateCandidate, "_slice_terms", staticmethod(marked))
    monkeypatch.setattr(explain, "PARALLEL_MIN_PAIRS", 1)
    monkeypatch.setattr(explain, "workers", lambda: 2)
    monkeypatch.setattr(rule, "_EXPLAIN_CHUNK", 9)
    assert runs() == expected
    assert slices.exists() and len(slices.read_text().split()) > 2  # the worker built some


def test_a_failure_making_a_finding_stops_the_worker_at_its_next_claim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The rule closes the shared slices on the way out, even while the failure is still held."""
    import os
    import time

    import rules.duplicates.explain as explain
    import rules.duplicates.rule as rule
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate

    if "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("workers are forked")
    issues = _copies_issues(random.Random(12), 160)
    parent = os.getpid()
    slices = tmp_path / "slices"
    slice_terms = rule.DuplicateCandidate._slice_terms

    def marked(explainer: Any, rows: Any, start: int, stop: int) -> Any:
        time.sleep(0.05)
        if os.getpid() != parent:
            with slices.open("a") as handle:
                handle.write(f"{start}\n")
        return slice_terms(explainer, rows, start, stop)

    def failing(*args: Any) -> Any:
        raise RuntimeError("no finding")

    monkeypatch.setattr(rule.DuplicateCandidate, "_slice_terms", staticmethod(marked))
    monkeypatch.setattr(rule.DuplicateCandidate, "_finding", failing)
    monkeypatch.setattr(explain, "PARALLEL_MIN_PAIRS", 1)
    monkeypatch.setattr(explain, "workers", lambda: 2)
    monkeypatch.setattr(rule, "_EXPLAIN_CHUNK", 2)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    # The failure is held (as a handler that logs it holds it): its frames stay alive meanwhile.
    with pytest.raises(RuntimeError, match="no finding") as caught:
        list(DuplicateCandidate().check(issues, RuleContext("R", now)))
    time.sleep(1.0)  # a worker left running would take about 20 more slices of 2 meanwhile
    finished = slices.read_text().split() if slices.exists() else []
    assert len(finished) < 10  # of the run's more than 50 slices (over 100 findings)
    del caught


@pytest.mark.parametrize("sorted_bytes", [0, 48])
@pytest.mark.parametrize("tabled", [False, True])
def test_copies_of_one_description_with_titles_that_touch_it_equal_the_per_pair_ones(
    monkeypatch: pytest.MonkeyPatch, tabled: bool, sorted_bytes: int
) -> None:
    """Pairs with one description (worked out from the description's own list) beside pairs with
    two, in one chunk: titles holding the description's words and bigrams, the bigram from the
    title into the description, repeated words, empty titles and descriptions, an item paired with
    itself; words from a small vocabulary of prefixes of each other ("log", "log.in", "login",
    "log_in"), so that weights tie all the time and the term's spelling decides (names ordered by
    their bytes in numpy, or with ``sorted_bytes`` 0 by Python's sort)."""
    import rules.duplicates.explain as explain

    monkeypatch.setattr(explain, "_CHUNK", 97)
    monkeypatch.setattr(explain, "_SORTED_BYTES", sorted_bytes)
    rng = random.Random(21)
    words = ["log", "login", "log.in", "log_in", "logs", "in", "page", "pages", "page.x", "fail", "fails"]
    words += ["error", "retry", "timeout", "é", "éclair", "z9", "z", "ÿ", "ā", "日本", "zz_é"]

    def text(low: int, high: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(low, high)))

    bodies = [text(0, 30) for _ in range(25)] + [""]
    documents: list[Document] = []
    for _ in range(400):
        body = rng.choice(bodies)
        title = rng.choice(
            [text(0, 6), body[: rng.randint(0, 40)], f"{body.split(' ')[0]} {text(0, 2)}", "log log log", ""]
        )
        documents.append(Document(title.strip(), body))
    vectoriser, _ = Vectoriser.fit(documents)
    by_body: dict[str, list[int]] = {}
    for row, document in enumerate(documents):
        by_body.setdefault(document.body, []).append(row)
    pairs = [(rng.choice(rows), rng.choice(rows)) for rows in by_body.values() for _ in range(12)]
    pairs += [(rng.randrange(400), rng.randrange(400)) for _ in range(150)]
    pairs += [(7, 7), (len(documents) - 1, len(documents) - 1)]
    same = sum(documents[a].body == documents[b].body for a, b in pairs)
    assert 250 < same < len(pairs)  # both ways are taken
    explained = _explainer(vectoriser, documents, tabled).of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second]), (first, second)
    assert sum(bool(terms) for terms in explained) > 300
    # Real descriptions (many terms each) under titles made of their own words: the terms a title
    # touches leave the description's list, and the pair's best come from further down it.
    real = [document for document in _real_documents(400) if len(document.body.split()) > 40][:120]
    documents = list(real)
    pairs = []
    for row, document in enumerate(real):
        body_words = document.body.split()
        for _ in range(2):
            title = " ".join(rng.sample(body_words[:30], rng.randint(3, 8)))
            documents.append(Document(title, document.body))
            pairs.append((row, len(documents) - 1))
        pairs.append((len(documents) - 2, len(documents) - 1))
    vectoriser, _ = Vectoriser.fit(documents)
    explained = _explainer(vectoriser, documents, tabled).of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second]), (first, second)


def test_table_names_spelled_and_compared_byte_for_byte() -> None:
    chunks = [["log", "login", "é", "ab", "ba"], ["ba", "log", "zz"], ["ab", "é", "ba", "login"]]
    table = TokenTable.joined([document_counts([Document(" ".join(words), "")])[2] for words in chunks])
    numbers = np.arange(table.names, dtype=np.int64)
    names = table.spelled(numbers)
    assert sorted(names) == sorted(word for words in chunks for word in words)
    assert table.spelled(np.zeros(0, dtype=np.int64)) == []
    pairs = [(a, b) for a in numbers.tolist() for b in numbers.tolist()]
    first, second = (np.asarray(side, dtype=np.int64) for side in zip(*pairs, strict=True))
    assert table.same(first, second).tolist() == [names[a] == names[b] for a, b in pairs]
    keys = table.keys(numbers)
    assert all((keys[a] == keys[b]) >= (names[a] == names[b]) for a, b in pairs)


@pytest.mark.parametrize("keyed", ["by hash", "by length only"])
def test_table_names_whose_keys_collide_are_told_apart(monkeypatch: pytest.MonkeyPatch, keyed: str) -> None:
    """Keys made of the name's length alone (every name of one length collides): each name still
    gets one id, and the terms are the per-pair ones."""
    if keyed != "by hash":
        monkeypatch.setattr(TokenTable, "keys", lambda self, numbers: self.name_lengths[numbers].copy())
    documents, pairs = _copies_backlog(random.Random(9), 120, 2)
    vectoriser, _ = Vectoriser.fit(documents)
    explainer = _explainer(vectoriser, documents, True)
    explained = explainer.of_pairs(pairs)
    for (first, second), terms in zip(pairs, explained, strict=True):
        assert terms == vectoriser.shared_terms(documents[first], documents[second]), (first, second)
    names = explainer._vocab.names
    assert len(set(names)) == len(names)  # one id per name
    # Names a colliding key brought in are looked up by spelling (the stop words are there anyway).
    assert (len(explainer._vocab) > len(_STOP_WORDS) + 100) == (keyed != "by hash")


def test_the_rule_reads_the_tokens_the_index_counted_and_finds_what_it_finds_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first run over an index cleaned in many chunks (each numbering its own token ids) takes
    its tokens from them; the findings are those of an explainer that tokenises every text itself,
    byte for byte."""
    import rules.duplicates.index as index_module
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate

    monkeypatch.setattr(index_module, "_CHUNK_DOCS", 29)
    issues = _copies_issues(random.Random(31), 150)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    read: list[int] = []
    table_ids = SharedTerms._table_ids

    def counted(self: SharedTerms, *args: Any) -> Any:
        read.append(1)
        return table_ids(self, *args)

    monkeypatch.setattr(SharedTerms, "_table_ids", counted)
    with_table = [f.to_json() for f in DuplicateCandidate().check(issues, RuleContext("R", now))]
    assert read and len(with_table) > 100
    init = SharedTerms.__init__

    def untabled(self: SharedTerms, vectoriser: Vectoriser, documents: Any, tokens: Any = None) -> None:
        init(self, vectoriser, documents, None)

    monkeypatch.setattr(SharedTerms, "__init__", untabled)
    read.clear()
    assert [f.to_json() for f in DuplicateCandidate().check(issues, RuleContext("R", now))] == with_table
    assert not read


def test_a_subset_of_the_table_holds_the_same_tokens_and_description_groups() -> None:
    documents, pairs = _copies_backlog(random.Random(10), 60, 2)
    vectoriser, _ = Vectoriser.fit(documents)
    table = _explainer(vectoriser, documents, True)._table
    assert table is not None
    rows = np.asarray(sorted(random.Random(2).sample(range(len(documents)), 70)), dtype=np.int64)
    part = table.subset(rows)
    assert part.documents == len(rows) and part.names < table.names
    for mine, row in enumerate(rows.tolist()):
        for starts, lengths in (("title_starts", "title_lengths"), ("body_starts", "body_lengths")):

            def spelled(t: TokenTable, d: int, starts: str = starts, lengths: str = lengths) -> list[str]:
                start, length = int(getattr(t, starts)[d]), int(getattr(t, lengths)[d])
                return t.spelled(t.ids[start : start + length].astype(np.int64))

            assert spelled(part, mine) == spelled(table, row)
    same = table.body_groups[rows][:, None] == table.body_groups[rows][None, :]
    assert (same == (part.body_groups[:, None] == part.body_groups[None, :])).all() and same.sum() > len(rows)
    # The terms from the subset, with the word IDF alone, are the ones from the whole table.
    from rules.duplicates.explain import table_work

    inside = [(a, b) for a, b in pairs if a in set(rows.tolist()) and b in set(rows.tolist())]
    remapped = np.searchsorted(rows, np.asarray(inside, dtype=np.int64).reshape(-1, 2)).tolist()
    work = table_work(vectoriser.word_idf, part, [tuple(pair) for pair in remapped])
    assert work(0, len(inside)) == SharedTerms(vectoriser, documents, table).of_pairs(inside)
    assert len(inside) > 5


@pytest.mark.skipif(
    "forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork server"
)
def test_findings_explained_beside_a_worker_of_the_fork_server_are_the_ones_made_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the rule, on a first run (the token table at hand): a worker of the fork server,
    sent the tokens of the pairs' documents, takes slices (this process's are slowed), and the
    findings are the ones one process makes, byte for byte."""
    import time

    import rules.duplicates.explain as explain
    import rules.duplicates.forked as forked
    import rules.duplicates.rule as rule
    from rules.base import RuleContext
    from rules.duplicates import DuplicateCandidate

    issues = _copies_issues(random.Random(14), 160)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    expected = [f.to_json() for f in DuplicateCandidate().check(issues, RuleContext("R", now))]
    assert len(expected) > 100
    assert forked.start_server(["rules.duplicates.explain"])
    made: list[Any] = []
    shared = forked.SharedSlices.__init__

    def kept(self: Any, *args: Any) -> None:
        shared(self, *args)
        made.append(self)

    slice_terms = rule.DuplicateCandidate._slice_terms

    def slowed(explainer: Any, rows: Any, start: int, stop: int) -> Any:
        time.sleep(0.02)  # only here: the worker's work is built from the job
        return slice_terms(explainer, rows, start, stop)

    monkeypatch.setattr(forked.SharedSlices, "__init__", kept)
    monkeypatch.setattr(rule.DuplicateCandidate, "_slice_terms", staticmethod(slowed))
    monkeypatch.setattr(explain, "SERVED_MIN_PAIRS", 1)
    monkeypatch.setattr(explain, "workers", lambda: 2)
    monkeypatch.setattr(rule, "_SERVED_CHUNK", 9)
    assert [f.to_json() for f in DuplicateCandidate().check(issues, RuleContext("R", now))] == expected
    (slices,) = made
    assert slices._job is not None and slices.worker_slices > 2
