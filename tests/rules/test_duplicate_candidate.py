"""Tests of the duplicate-candidate rule: data cases, normalisation, hooks, incremental index."""

from __future__ import annotations

import gc
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from refinebot.models import Issue, Link, LinkKind, SourceKind, StatusCategory
from rules import embeddings
from rules.base import MemoryRuleCache, RuleContext
from rules.duplicates import (
    DuplicateCandidate,
    DuplicateIndex,
    DuplicateOptions,
    ScoredPair,
    TitleBoilerplate,
    build_index,
    clean_body,
    documents_and_counts,
    normalise_title,
    rerank,
    score_candidates,
    slot_penalty,
    update_index,
)
from rules.duplicates.ranking import SEMANTIC_FLOOR, distinct_best, meaning_pairs, mutual_best
from rules.duplicates.rule import _uncollected, signal_of
from rules.duplicates.stored import load_index
from rules.registry import build_registry

# The tests of the MiniLM path pin it: the default model (mpnet) is tested in test_semantic_hub.py.
MINILM = "all-MiniLM-L6-v2"

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


# The YAML data cases (tests/rules/cases/duplicate-candidate.yml) run in tests/rules/test_rule_cases.py.


# --- behaviour
# ----------------------------------------------------------------------------------------


def _item(key: str, title: str, description: str = "", day: int = 1, **fields: Any) -> Issue:
    return Issue(
        key=key,
        project="TEST",
        source_kind=SourceKind.FILE,
        title=title,
        description=description,
        created=datetime(2026, 9, day, tzinfo=UTC),
        **fields,
    )


COUPON = _item(
    "T-1",
    "Checkout fails when a coupon code is applied",
    "Applying a discount coupon at checkout throws an error and the order is not placed.",
    day=1,
)
COUPON_AGAIN = _item(
    "T-2",
    "Coupon code breaks the checkout",
    "When a customer enters a coupon code during checkout an error is shown and no order is placed",
    day=2,
)
DARK_MODE = _item("T-3", "Add dark mode to the settings page", "Users want a dark theme.", day=3)
BACKLOG = [COUPON, COUPON_AGAIN, DARK_MODE]


def test_finding_names_the_older_item_with_score_candidates_and_shared_terms() -> None:
    findings = list(DuplicateCandidate().check(BACKLOG, RuleContext(project="TEST", now=NOW)))
    assert [f.issue for f in findings] == ["T-2"]
    details = findings[0].details
    assert details["duplicate_of"] == "T-1"
    assert 0.6 <= details["score"] <= 1.0
    assert details["candidates"][0] == {
        "issue": "T-1",
        "score": details["score"],
        "status": "todo",
        "title": COUPON.title,
    }
    assert "coupon code" in details["shared_terms"]
    assert "possible duplicate of T-1" in findings[0].message
    assert "coupon code" in findings[0].message
    assert findings[0].rule == "duplicate-candidate"
    assert findings[0].code == "RB501"


@pytest.mark.parametrize("newer_key", ["KEY-1", "KEY-9"])
def test_subject_is_the_sorted_pair_whichever_side_is_newer(newer_key: str) -> None:
    older_key = "KEY-9" if newer_key == "KEY-1" else "KEY-1"
    older = replace(COUPON, key=older_key)
    newer = replace(COUPON_AGAIN, key=newer_key)
    findings = list(DuplicateCandidate().check([older, newer, DARK_MODE], RuleContext("TEST", NOW)))
    assert [(f.issue, f.details["duplicate_of"]) for f in findings] == [(newer_key, older_key)]
    assert findings[0].subject == "KEY-1|KEY-9"
    assert findings[0].identity == ("TEST", newer_key, "duplicate-candidate", "KEY-1|KEY-9")
    # The subject is identity for the store, not part of the public JSON.
    assert "subject" not in findings[0].to_json()
    assert "subject" not in findings[0].to_json()["details"]


def test_order_of_the_input_does_not_change_which_item_is_reported() -> None:
    ctx = RuleContext(project="TEST", now=NOW)
    forward = list(DuplicateCandidate().check(BACKLOG, ctx))
    backward = list(DuplicateCandidate().check(list(reversed(BACKLOG)), ctx))
    assert [(f.issue, f.details["duplicate_of"]) for f in forward] == [
        (f.issue, f.details["duplicate_of"]) for f in backward
    ]


def test_suppressed_pair_is_never_flagged() -> None:
    ctx = RuleContext(project="TEST", now=NOW, suppressed_pairs=frozenset({frozenset({"T-1", "T-2"})}))
    assert list(DuplicateCandidate().check(BACKLOG, ctx)) == []


def test_suppression_of_another_pair_changes_nothing() -> None:
    ctx = RuleContext(project="TEST", now=NOW, suppressed_pairs=frozenset({frozenset({"T-1", "T-3"})}))
    assert [f.issue for f in DuplicateCandidate().check(BACKLOG, ctx)] == ["T-2"]


def test_newer_closed_item_reports_on_the_open_older_one() -> None:
    closed = replace(
        COUPON_AGAIN,
        status_category=StatusCategory.DONE,
        updated=datetime(2026, 11, 1, tzinfo=UTC),
    )
    findings = list(DuplicateCandidate().check([COUPON, closed, DARK_MODE], RuleContext("TEST", NOW)))
    assert [(f.issue, f.details["duplicate_of"]) for f in findings] == [("T-1", "T-2")]
    assert "(closed)" in findings[0].message


def test_two_closed_items_are_never_flagged() -> None:
    done = {"status_category": StatusCategory.DONE, "updated": datetime(2026, 11, 1, tzinfo=UTC)}
    issues = [replace(COUPON, **done), replace(COUPON_AGAIN, **done), DARK_MODE]
    assert list(DuplicateCandidate().check(issues, RuleContext("TEST", NOW))) == []


def test_duplicate_link_from_the_other_side_also_counts() -> None:
    linked = replace(COUPON, links=(Link(kind=LinkKind.DUPLICATED_BY, target="T-2"),))
    assert list(DuplicateCandidate().check([linked, COUPON_AGAIN, DARK_MODE], RuleContext("TEST", NOW))) == []


def test_rule_is_registered_and_runs_in_the_demo_registry() -> None:
    registry = build_registry(plugins=False)
    assert registry.get("duplicate-candidate") is DuplicateCandidate
    assert registry.get("RB501") is DuplicateCandidate


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="threshold"):
        DuplicateOptions(threshold=1.5)
    with pytest.raises(ValueError, match="unknown_option"):
        DuplicateOptions.model_validate({"unknown_option": 1})


# --- normalisation
# ------------------------------------------------------------------------------------


def test_title_tags_and_case_are_normalised() -> None:
    assert normalise_title("[UI] [Mobile]  Login BUTTON misaligned") == "login button misaligned"
    assert normalise_title("[WIP]") == "[wip]"  # nothing else left: keep the tag


def test_boilerplate_prefixes_and_suffixes_repeating_across_titles_are_stripped() -> None:
    titles = [f"sub-task: part {n} - acme portal" for n in range(5)] + ["fix: one-off title"]
    boilerplate = TitleBoilerplate.learn(titles)
    assert "sub-task" in boilerplate.prefixes
    assert "acme portal" in boilerplate.suffixes
    assert "fix" not in boilerplate.prefixes  # seen once: content, not a template
    assert boilerplate.remove_from("sub-task: part 9 - acme portal") == "part 9"
    assert boilerplate.remove_from("fix: one-off title") == "fix: one-off title"


def test_body_loses_stack_frames_and_log_prefixes_but_keeps_code_opening() -> None:
    body = "\n".join(
        [
            "Export stops.",
            "```",
            "java.lang.NullPointerException: order is null",
            "    at com.shop.export.Job.run(Job.java:42)",
            "```",
            "2026-09-01 00:00:01,123 ERROR [main] Export failed for batch 7",
        ]
    )
    cleaned = clean_body(body)
    assert "job.java:42" not in cleaned
    assert "java.lang.nullpointerexception: order is null" in cleaned
    assert "2026-09-01" not in cleaned
    assert "export failed for batch 7" in cleaned


def test_body_is_cut_and_case_folded() -> None:
    assert clean_body("Straße " * 1000, limit=20) == "strasse strasse stra"


@pytest.mark.parametrize(
    ("first", "second", "penalised"),
    [
        ("update the year to 2021", "update the year to 2022", True),
        ("add dockerfile for fedora 33", "add dockerfile for debian 10", True),
        ("fix settimeout syntax in chatzilla", "fix setinterval syntax in chatzilla", True),
        ("login fails on safari", "login failing on safari", False),
        ("disable jira plugin for yetus", "disable jira plugin for yetus", False),
        ("checkout fails with coupon", "coupon code breaks checkout", False),
    ],
)
def test_slot_penalty_hits_template_near_misses_only(first: str, second: str, penalised: bool) -> None:
    assert (slot_penalty(first, second) < 1.0) is penalised


# --- index and cache
# ----------------------------------------------------------------------------------


def _backlog(n: int) -> list[Issue]:
    topics = ["payment", "search", "export", "login", "avatar", "invoice", "shipping", "catalog"]
    verbs = ["fails", "is slow", "shows wrong totals", "times out", "crashes", "ignores filters"]
    issues = []
    for number in range(n):
        topic, verb = topics[number % len(topics)], verbs[(number // len(topics)) % len(verbs)]
        issues.append(
            _item(
                f"B-{number}",
                f"{topic} {verb} in region {number}",
                f"Customer {number}: the {topic} page {verb} since release {number % 7}.",
                day=1 + number % 28,
            )
        )
    return issues


def _pairs(index: DuplicateIndex) -> dict[frozenset[str], float]:
    low, high = index.pairs >> 32, index.pairs & 0xFFFFFFFF
    return {
        frozenset((index.keys[a], index.keys[b])): round(float(s), 4)
        for a, b, s in zip(low, high, index.scores, strict=True)
    }


def test_update_with_nothing_changed_returns_the_same_index() -> None:
    issues = _backlog(40)
    index = build_index(issues)
    assert update_index(index, issues) is index


def test_update_rescores_changed_items_like_a_rebuild_would() -> None:
    issues = _backlog(200)
    index = build_index(issues)
    changed = list(issues)
    changed[5] = replace(changed[5], title=COUPON.title, description=COUPON.description)
    changed[150] = replace(changed[150], title=COUPON_AGAIN.title, description=COUPON_AGAIN.description)
    updated = update_index(index, changed)
    assert updated is not index
    assert len(updated.keys) == 200
    pairs = _pairs(updated)
    assert pairs[frozenset(("B-5", "B-150"))] >= 0.6
    # Pairs between untouched items keep their scores.
    before = _pairs(index)
    untouched = [p for p in before if not p & {"B-5", "B-150"}]
    assert all(pairs[p] == before[p] for p in untouched)


def test_update_drops_items_that_left_and_adds_new_ones() -> None:
    issues = _backlog(100)
    index = build_index(issues)
    new = _item("B-NEW", issues[3].title, issues[3].description, day=28)
    updated = update_index(index, [*issues[1:], new])
    assert "B-0" not in updated.keys
    assert "B-NEW" in updated.keys
    assert all("B-0" not in pair for pair in _pairs(updated))
    # The copy is weighed with updated document frequencies, the original with those of the build.
    assert _pairs(updated)[frozenset(("B-3", "B-NEW"))] >= 0.9


def test_update_rebuilds_when_most_items_changed() -> None:
    issues = _backlog(50)
    index = build_index(issues)
    rewritten = [replace(i, description=i.description + " Rewritten.") for i in issues]
    updated = update_index(index, rewritten)
    assert updated.updates == 0  # a fresh build, not an update


def test_small_updates_add_up_to_a_rebuild() -> None:
    issues = _backlog(50)
    index = build_index(issues)
    history = []
    for round_ in range(3):
        issues = [
            replace(issue, description=f"{issue.description} Round {round_}.") if n < 4 else issue
            for n, issue in enumerate(issues)
        ]
        index = update_index(index, issues)
        history.append((index.updates, index.changed_since_build))
    # 4 of 50 items change per round; the third round passes a fifth of the backlog: rebuilt.
    assert history == [(1, 4), (2, 8), (0, 0)]


def test_rule_keeps_its_index_in_the_cache_between_runs() -> None:
    cache = MemoryRuleCache()
    ctx = RuleContext(project="TEST", now=NOW, cache=cache)
    issues = [*_backlog(60), COUPON]
    assert list(DuplicateCandidate().check(issues, ctx)) == []
    first_index = load_index(cache, "duplicate-candidate:TEST:window=180")
    assert isinstance(first_index, DuplicateIndex)
    findings = list(DuplicateCandidate().check([*issues, COUPON_AGAIN], ctx))
    assert [(f.issue, f.details["duplicate_of"]) for f in findings] == [("T-2", "T-1")]
    second_index = load_index(cache, "duplicate-candidate:TEST:window=180")
    assert isinstance(second_index, DuplicateIndex)
    assert second_index.updates == first_index.updates + 1  # updated, not rebuilt


def test_any_existing_link_means_the_pair_is_known() -> None:
    blocks = replace(COUPON_AGAIN, links=(Link(kind=LinkKind.BLOCKED_BY, target="T-1"),))
    relates = replace(COUPON, links=(Link(kind=LinkKind.RELATES, target="T-2"),))
    ctx = RuleContext("TEST", NOW)
    assert list(DuplicateCandidate().check([COUPON, blocks, DARK_MODE], ctx)) == []
    assert list(DuplicateCandidate().check([relates, COUPON_AGAIN, DARK_MODE], ctx)) == []


def test_demo_backlog_flags_its_one_real_duplicate() -> None:
    from refinebot.cli import DEMO_AS_OF, demo_config_path
    from refinebot.config import load_config
    from refinebot.pipeline import run

    registry = build_registry(plugins=False)
    loaded = load_config(demo_config_path(), registry)
    (result,) = run(loaded, registry=registry, now=DEMO_AS_OF)
    duplicates = [f for f in result.findings if f.rule == "duplicate-candidate"]
    assert [(f.issue, f.details["duplicate_of"]) for f in duplicates] == [("SHOP-41", "SHOP-2")]


def test_parallel_vectorising_gives_the_same_counts_as_sequential() -> None:
    issues = _backlog(6_000)  # two chunks and a remainder
    sequential = documents_and_counts(issues, parallel_min=10**9)
    parallel = documents_and_counts(issues, parallel_min=1)
    assert sequential[0] == parallel[0]
    assert (sequential[2] != parallel[2]).nnz == 0
    assert (sequential[3] != parallel[3]).nnz == 0


# --- the optional semantic re-ranking ---------------------------------------------------------


def test_threshold_default_depends_on_the_scoring() -> None:
    assert DuplicateOptions().resolved_threshold() == 0.55
    assert DuplicateOptions(semantic=True).resolved_threshold() == 0.45
    assert DuplicateOptions(semantic=True, threshold=0.4).resolved_threshold() == 0.4


@pytest.mark.skipif(embeddings.available(), reason="the semantic extra is installed here")
def test_semantic_without_the_extra_fails_with_a_clear_message() -> None:
    rule = DuplicateCandidate(DuplicateOptions(semantic=True))
    with pytest.raises(embeddings.SemanticUnavailableError, match=r"refinebot\[semantic\]"):
        list(rule.check(BACKLOG, RuleContext("TEST", NOW)))


@pytest.mark.skipif(not embeddings.available(), reason="needs the semantic extra")
def test_semantic_reranking_flags_the_paraphrase_and_caches_embeddings() -> None:
    cache = MemoryRuleCache()
    ctx = RuleContext(project="TEST", now=NOW, cache=cache)
    rule = DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM))
    findings = list(rule.check(BACKLOG, ctx))
    assert [(f.issue, f.details["duplicate_of"]) for f in findings] == [("T-2", "T-1")]
    vectors = cache.get(VECTORS_KEY)
    assert isinstance(vectors, dict)
    assert {"T-1", "T-2"} <= set(vectors)
    lexical = next(iter(DuplicateCandidate().check(BACKLOG, RuleContext("TEST", NOW))))
    assert findings[0].details["score"] != lexical.details["score"]  # meaning, not wording
    assert findings[0].details["score"] == findings[0].details["meaning_score"]


# Two people describing one piece of work without a shared content word (from the story set, pair
# D14), among other stories of the same product.
_BIOMETRIC = _item(
    "S-1",
    "Log in with fingerprint or face",
    "As a mobile user I want to open the app with biometrics instead of typing my PIN each time.",
)
_BIOMETRIC_AGAIN = _item(
    "S-2",
    "Biometric sign-in",
    "Use the phone's Touch ID / Face ID / Android biometric prompt as an alternative to the six digit code.",
    day=2,
)
_STORIES = [
    _BIOMETRIC,
    _BIOMETRIC_AGAIN,
    _item(
        "S-3",
        "Freeze a lost debit card from the app",
        "As an account holder I want to temporarily block my card in the mobile app.",
        day=3,
    ),
    _item(
        "S-4",
        "Download monthly statement as PDF",
        "As an account holder I want my statement for a chosen month as a file.",
        day=4,
    ),
    _item(
        "S-5",
        "Round up card purchases into savings",
        "As a saver I want every card payment rounded up and the difference saved.",
        day=5,
    ),
    _item(
        "S-6",
        "Set a spending limit on the card",
        "As a parent I want to set a monthly spending limit on my child's card.",
        day=6,
    ),
]


@pytest.mark.skipif(not embeddings.available(), reason="needs the semantic extra")
def test_semantic_flags_a_reworded_story_that_the_lexical_setting_misses() -> None:
    assert list(DuplicateCandidate().check(_STORIES, RuleContext("TEST", NOW))) == []
    rule = DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM))
    findings = list(rule.check(_STORIES, RuleContext("TEST", NOW)))
    assert [(f.issue, f.details["duplicate_of"]) for f in findings] == [("S-2", "S-1")]
    assert findings[0].details["signal"] == "similar meaning"


def test_index_survives_pickling_for_the_store() -> None:
    import pickle

    issues = _backlog(80)
    index = build_index(issues)
    restored = pickle.loads(pickle.dumps(index))
    assert restored.keys == index.keys
    assert _pairs(restored) == _pairs(index)
    changed = [replace(issues[0], description="Completely different words now."), *issues[1:]]
    assert _pairs(update_index(restored, changed)) == _pairs(update_index(index, changed))


# --- mutual top-1 and the semantic path without the model (a stand-in embeds; no torch needed) --


def _pair(first: int, second: int, score: float) -> ScoredPair:
    return ScoredPair(first, second, score, score)


def test_mutual_top1_keeps_pairs_that_are_each_others_best_or_score_very_high() -> None:
    pairs = [_pair(0, 1, 0.9), _pair(1, 2, 0.6), _pair(3, 4, 0.58), _pair(5, 6, 0.56), _pair(5, 7, 0.56)]
    flagged = {(p.first, p.second) for p in mutual_best(pairs, threshold=0.55)}
    # 0-1: exempt (>= 0.7); 1-2: 1 has a better partner; 3-4: mutual; 5-6 and 5-7: ties count.
    assert flagged == {(0, 1), (3, 4), (5, 6), (5, 7)}
    assert {(p.first, p.second) for p in mutual_best(pairs, threshold=0.57)} == {(0, 1), (3, 4)}


class _FakeModel:
    """Stands in for ``rules.embeddings.embed``: one fixed unit vector per text, and a tally."""

    def __init__(self, vectors: dict[str, list[float]] | None = None) -> None:
        self.vectors = vectors or {}
        self.calls: list[int] = []

    def __call__(self, texts: Any, model: str = embeddings.MODEL_NAME) -> Any:
        import numpy as np

        self.calls.append(len(texts))
        rows = []
        for text in texts:
            row = next((v for word, v in self.vectors.items() if word in text), [1.0, 0.0, 0.0])
            rows.append(np.asarray(row, dtype=np.float32) / np.linalg.norm(row))
        return np.stack(rows)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> _FakeModel:
    model = _FakeModel({"coupon": [0.0, 1.0, 0.0], "dark": [0.0, 0.0, 1.0]})
    monkeypatch.setattr(embeddings, "embed", model)
    return model


VECTORS_KEY = "duplicate-candidate:TEST:sentence-vectors:all-MiniLM-L6-v2"


def test_semantic_vectors_live_in_the_rule_cache_and_only_changed_items_are_embedded(
    fake_model: _FakeModel,
) -> None:
    cache = MemoryRuleCache()
    ctx = RuleContext(project="TEST", now=NOW, cache=cache)
    rule = DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM))
    issues = [*_backlog(30), *BACKLOG]
    list(rule.check(issues, ctx))
    first = sum(fake_model.calls)
    assert first > 0
    vectors = cache.get(VECTORS_KEY)
    assert isinstance(vectors, dict) and {"T-1", "T-2"} <= set(vectors)
    neighbours = cache.get("duplicate-candidate:TEST:sentence-neighbours:all-MiniLM-L6-v2:window=180")
    assert isinstance(neighbours, dict) and ("T-1", "T-2") in neighbours["pairs"]
    fake_model.calls.clear()
    list(rule.check(issues, ctx))
    assert fake_model.calls == []  # nothing changed: nothing embedded
    edited = [
        replace(COUPON_AGAIN, description=COUPON_AGAIN.description + " Seen on mobile too."),
        COUPON,
        DARK_MODE,
    ]
    list(rule.check([*_backlog(30), *edited], ctx))
    assert sum(fake_model.calls) == 1  # the edited item only
    # The vectors survive an index rebuild (most items changed): the index is not where they live.
    cache.put("duplicate-candidate:TEST:window=180", None)
    fake_model.calls.clear()
    list(rule.check([*_backlog(30), *edited], ctx))
    assert fake_model.calls == []


def test_semantic_explanation_names_the_signal_and_the_candidate_title(fake_model: _FakeModel) -> None:
    rule = DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM))
    (finding,) = rule.check(BACKLOG, RuleContext("TEST", NOW))
    assert finding.issue == "T-2" and finding.subject == "T-1|T-2"
    assert f'possible duplicate of T-1 "{COUPON.title}"' in finding.message
    # The coupon pair's wording score alone reaches the lexical default: the wording is what fired.
    assert finding.details["signal"] == "similar wording"
    assert finding.details["meaning_score"] == pytest.approx(1.0)
    # A pair that needed the sentence model: its wording alone stays under the lexical default.
    reworded = ScoredPair(0, 1, 0.58, lexical=0.21, meaning=0.95)
    assert signal_of(reworded) == ("similar meaning", ": wording 0.21, meaning 0.95")
    assert signal_of(_pair(0, 1, 0.6)) == ("similar wording", "")


def test_semantic_fused_score_keeps_the_slot_penalty(fake_model: _FakeModel) -> None:
    # The stand-in rates every pair 1.0 here, as embeddings rate templated titles near 0.99.
    first = _item("T-1", "www.example.com - Menu is not displayed", "The menu is missing on the page.")
    second = _item("T-2", "www.example.com - Menu is not rendered", "The menu is missing on the page.", day=2)
    index = build_index([first, second])
    (lexical,) = score_candidates(index)
    (fused,) = rerank(index, [lexical], {})
    penalty = slot_penalty(index.documents[0].title, index.documents[1].title)
    assert penalty < 1.0
    assert fused.score == pytest.approx(0.5 * (lexical.lexical + penalty * 1.0))


def test_distinct_best_needs_a_margin_over_each_sides_runner_up() -> None:
    pairs = [
        ScoredPair(0, 1, 0.60, 0.1, 0.60),  # mutual best; runners-up 0.50 (0) and 0.30 (1)
        ScoredPair(0, 2, 0.50, 0.1, 0.50),
        ScoredPair(1, 3, 0.30, 0.1, 0.30),
        ScoredPair(4, 5, 0.62, 0.1, 0.62),  # mutual best but 5 has a rival at 0.60
        ScoredPair(5, 6, 0.60, 0.1, 0.60),
        ScoredPair(7, 8, 0.40, 0.1, 0.40),  # distinct, under the threshold
    ]
    assert {(p.first, p.second) for p in distinct_best(pairs, 0.45, margin=0.05)} == {(0, 1)}
    assert {(p.first, p.second) for p in distinct_best(pairs, 0.45, margin=0.15)} == set()
    assert {(p.first, p.second) for p in distinct_best(pairs, 0.45, margin=0.0)} == {(0, 1), (4, 5)}


def test_distinct_best_skips_ties_but_flags_near_copies_on_their_wording() -> None:
    # A burst of three items that all look alike: no pair stands out by meaning, yet the two
    # near-copies in wording (lexical >= 0.7) are flagged.
    pairs = [
        ScoredPair(0, 1, 0.9, 0.95, 0.9),
        ScoredPair(0, 2, 0.9, 0.40, 0.9),
        ScoredPair(1, 2, 0.9, 0.40, 0.9),
    ]
    assert {(p.first, p.second) for p in distinct_best(pairs, 0.45)} == {(0, 1)}
    assert distinct_best(pairs[1:], 0.45) == []


_REFUND = _item("R-1", "Customers ask for a refund online", "Start it from the account page.")
_MONEY_BACK = _item("R-2", "Self-service money back form", "Print a label, send the parcel.", day=2)


@pytest.fixture
def story_model(monkeypatch: pytest.MonkeyPatch) -> _FakeModel:
    """A stand-in that rates the refund pair alike although they share no word."""
    model = _FakeModel({"refund": [0.0, 1.0, 0.0], "money back": [0.0, 0.95, 0.3], "coupon": [0.6, 0.0, 0.8]})
    monkeypatch.setattr(embeddings, "embed", model)
    return model


def test_semantic_finds_candidates_by_meaning_when_no_word_is_shared(story_model: _FakeModel) -> None:
    issues = [*_backlog(12), _REFUND, _MONEY_BACK, COUPON]
    assert list(DuplicateCandidate().check(issues, RuleContext("TEST", NOW))) == []
    index = build_index(issues)
    # Lexically the pair is noise: under the floor from which the lexical candidates are read.
    lexical = score_candidates(index, SEMANTIC_FLOOR)
    assert not any({index.keys[p.first], index.keys[p.second]} == {"R-1", "R-2"} for p in lexical)
    pairs = meaning_pairs(index, lexical, {})
    refund = next(p for p in pairs if {index.keys[p.first], index.keys[p.second]} == {"R-1", "R-2"})
    assert refund.lexical < SEMANTIC_FLOOR and refund.score == pytest.approx(refund.meaning)
    (finding,) = DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM)).check(
        issues, RuleContext("TEST", NOW)
    )
    assert (finding.issue, finding.details["duplicate_of"]) == ("R-2", "R-1")
    assert finding.details["signal"] == "similar meaning"
    assert 'possible duplicate of R-1 "Customers ask for a refund online": similar meaning' in finding.message


def test_semantic_does_not_flag_a_cluster_without_a_clear_best_pair(story_model: _FakeModel) -> None:
    # The stand-in rates all twelve generated items alike (one vector): a topic cluster, not duplicates.
    issues = [*_backlog(12), _REFUND, _MONEY_BACK]
    flagged = {
        f.subject
        for f in DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM)).check(
            issues, RuleContext("TEST", NOW)
        )
    }
    assert flagged == {"R-1|R-2"}
    everything = DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model=MINILM, mutual_top1=False))
    assert len(list(everything.check(issues, RuleContext("TEST", NOW)))) > 1


def test_meaning_score_keeps_the_slot_penalty(fake_model: _FakeModel) -> None:
    first = _item("T-1", "www.example.com - Menu is not displayed", "The menu is missing on the page.")
    second = _item("T-2", "www.example.com - Menu is not rendered", "The menu is missing on the page.", day=2)
    index = build_index([first, second])
    (pair,) = meaning_pairs(index, score_candidates(index), {})
    penalty = slot_penalty(index.documents[0].title, index.documents[1].title)
    assert penalty < 1.0 and pair.meaning == pytest.approx(1.0)
    assert pair.score == pytest.approx(penalty * 1.0)


def test_nearest_pairs_are_searched_again_only_for_new_or_changed_items() -> None:
    import numpy as np

    from rules.duplicates.ranking import PAIR_SHIFT, nearest_pairs

    index = build_index(_backlog(40))
    vectors = np.random.default_rng(1).standard_normal((40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = {key: ("v1", vectors[row]) for row, key in enumerate(index.keys)}
    cache: dict[str, Any] = {}
    full = set(nearest_pairs(index, vectors, store, cache, top_k=2).tolist())
    assert full == set(nearest_pairs(index, vectors, store, None, top_k=2).tolist())
    # Plant a pair among unchanged items that no search would find: a later run that keeps what it
    # found before keeps it too, so it proves the unchanged items were not searched again.
    planted = next((a, b) for a in range(40) for b in range(a + 1, 40) if (a << PAIR_SHIFT) | b not in full)
    cache["pairs"] = [*cache["pairs"], (index.keys[planted[0]], index.keys[planted[1]])]
    moved = 5 if 5 not in planted else 6
    target = next(row for row in range(40) if row not in (moved, *planted))
    changed = vectors.copy()
    changed[moved] = vectors[target]  # the edited item now reads like another one
    edited = {**store, index.keys[moved]: ("v2", changed[moved])}
    again = set(nearest_pairs(index, changed, edited, cache, top_k=2).tolist())
    assert (planted[0] << PAIR_SHIFT) | planted[1] in again
    assert (min(moved, target) << PAIR_SHIFT) | max(moved, target) in again
    # Once more than a fifth of the items changed, everything is searched again.
    rebuilt = {key: ("v3", changed[row]) for row, key in enumerate(index.keys)}
    fresh = set(nearest_pairs(index, changed, rebuilt, cache, top_k=2).tolist())
    assert fresh == set(nearest_pairs(index, changed, rebuilt, None, top_k=2).tolist())


def _young(thing: object) -> bool:
    return any(found is thing for generation in (0, 1) for found in gc.get_objects(generation))


def test_the_explanations_block_leaves_what_it_kept_out_of_the_young_generations() -> None:
    assert gc.isenabled() and not gc.get_freeze_count()
    with _uncollected():
        assert not gc.isenabled()
        kept = [[number] for number in range(100)]
    assert gc.isenabled()
    assert not gc.get_freeze_count()  # nobody had frozen objects: the kept ones are merely old
    assert not any(_young(item) for item in kept[:5]) and not _young(kept)
    gc.freeze()  # as the pipeline does while rules run
    try:
        frozen = gc.get_freeze_count()
        with _uncollected():
            more = [[number] for number in range(100)]
        assert gc.get_freeze_count() > frozen  # frozen with the caller's, until it unfreezes them
        assert not _young(more)
    finally:
        gc.unfreeze()
