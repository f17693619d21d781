"""The template penalty is checked only on pairs that can still be candidates, without changing a finding."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from refinebot.models import Issue, SourceKind
from rules.base import MemoryRuleCache, RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateOptions, build_index, score_candidates
from rules.duplicates.stored import load_index

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

_TITLES = [
    "Update the year to 2021 in the NOTICE file",
    "Update the year to 2022 in the NOTICE file",
    "Upgrade jetty to 9.4.40",
    "Upgrade jetty to 9.4.43 for the CVE fix",
    "Add Dockerfile for Fedora 33",
    "Add Dockerfile for Debian 10",
    "Checkout fails when a coupon code is applied",
    "Coupon code breaks the checkout",
    "Dark mode for the settings page",
    "Settings page dark mode toggle missing",
]


# A templated pair (scoring about 0.76 before its penalty): under a floor of 0.8, penalised or not.
_FAR_APART = [
    (
        "Bump protobuf to 3.21 in the build",
        "the generated sources of the client are stale and break the nightly run",
    ),
    (
        "Bump protobuf to 3.25 in the build",
        "security scanner reports a vulnerable transitive jar in the server image",
    ),
]


def _backlog() -> list[Issue]:
    far = [
        Issue(
            key=f"F-{n + 1}",
            project="TEST",
            source_kind=SourceKind.FILE,
            title=title,
            description=description,
            created=datetime(2026, 10, n + 1, tzinfo=UTC),
        )
        for n, (title, description) in enumerate(_FAR_APART)
    ]
    return far + [
        Issue(
            key=f"T-{n + 1}",
            project="TEST",
            source_kind=SourceKind.FILE,
            title=title,
            description=f"{title.lower()} so that the release notes are right",
            created=datetime(2026, 9, n + 1, tzinfo=UTC),
        )
        for n, title in enumerate(_TITLES)
    ]


def _findings(options: DuplicateOptions, cache: MemoryRuleCache | None) -> list[dict[str, object]]:
    rule = DuplicateCandidate(options)
    return [f.to_json() for f in rule.check(_backlog(), RuleContext("TEST", NOW, cache=cache))]


def test_candidates_above_the_floor_are_the_same_with_a_higher_penalty_floor() -> None:
    everywhere, limited = build_index(_backlog(), 0.0), build_index(_backlog(), 0.8)
    assert limited.penalty_floor == 0.8
    # Some pair under the floor kept its unpenalised score: the limit did skip work.
    assert not np.array_equal(everywhere.scores, limited.scores)
    assert score_candidates(everywhere, 0.8) == score_candidates(limited, 0.8)


def test_an_index_cached_at_a_higher_threshold_is_rebuilt_for_a_lower_one() -> None:
    cache = MemoryRuleCache()
    strict, loose = DuplicateOptions(threshold=0.9), DuplicateOptions(threshold=0.45)
    _findings(strict, cache)
    key = "duplicate-candidate:TEST:window=180"
    assert getattr(load_index(cache, key), "penalty_floor", None) == 0.45
    assert _findings(loose, cache) == _findings(loose, None)
    assert getattr(load_index(cache, key), "penalty_floor", None) == 0.225  # rebuilt at the lower floor
    assert _findings(strict, cache) == _findings(strict, None)  # a lower floor serves a higher threshold
    assert getattr(load_index(cache, key), "penalty_floor", None) == 0.225
