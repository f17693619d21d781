"""The duplicate-candidate rule family: flag open items that look like another open or recent item.

How it scores (benchmarks/README.md has the measurements behind these choices), one module a step:

1. ``text``: normalise titles (tags, repeated prefixes/suffixes, sub-task templates) and bodies
   (stack frames, log prefixes, code blocks cut to their opening, first 2,000 characters).
2. ``vectors``: hashed word 1-2-gram and character 4-gram TF-IDF, stacked so that one sparse dot
   product gives the score, a cosine in 0-1.
3. ``search``: each item's best partners by a sparse top-k product, plus identical titles;
   ``templates`` lowers pairs whose titles are one template with another value in a slot.
4. ``index``: the cacheable, picklable index with its incremental update; ``ranking`` picks and
   orders candidates (recency preference, optional semantic re-ranking).
5. ``rule``: the ``duplicate-candidate`` rule and its options.

Importing this package loads only the rule and its options: the registry imports it to list rules,
and numpy and scipy cost a few tenths of a second. The other names below load their module on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from rules.duplicates.rule import DuplicateCandidate, DuplicateOptions

if TYPE_CHECKING:
    from rules.duplicates.index import DuplicateIndex, build_index, documents_and_counts, update_index
    from rules.duplicates.ranking import (
        SEMANTIC_BODY_CHARS,
        SEMANTIC_FLOOR,
        ScoredPair,
        ranking_score,
        recency_boost,
        rerank,
        score_candidates,
    )
    from rules.duplicates.templates import PENALTY_FLOOR, slot_penalty
    from rules.duplicates.text import (
        Document,
        TitleBoilerplate,
        clean_body,
        normalise_title,
        prepare_documents,
    )
    from rules.duplicates.vectors import Vectoriser

# Name -> the submodule that defines it. Document, TitleBoilerplate, Vectoriser and DuplicateIndex
# are listed also because indexes pickled before the split name them as ``rules.duplicates.X``.
_LAZY = {
    "Document": "text",
    "TitleBoilerplate": "text",
    "clean_body": "text",
    "normalise_title": "text",
    "prepare_documents": "text",
    "Vectoriser": "vectors",
    "PENALTY_FLOOR": "templates",
    "slot_penalty": "templates",
    "DuplicateIndex": "index",
    "build_index": "index",
    "documents_and_counts": "index",
    "update_index": "index",
    "SEMANTIC_BODY_CHARS": "ranking",
    "SEMANTIC_FLOOR": "ranking",
    "ScoredPair": "ranking",
    "ranking_score": "ranking",
    "recency_boost": "ranking",
    "rerank": "ranking",
    "score_candidates": "ranking",
}


def __getattr__(name: str) -> Any:
    """Load a heavy name from its submodule on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    """The loaded names and the lazy ones, for completion and ``help()``."""
    return sorted(set(globals()) | set(_LAZY))


RULES = (DuplicateCandidate,)

__all__ = [
    "PENALTY_FLOOR",
    "RULES",
    "SEMANTIC_BODY_CHARS",
    "SEMANTIC_FLOOR",
    "Document",
    "DuplicateCandidate",
    "DuplicateIndex",
    "DuplicateOptions",
    "ScoredPair",
    "TitleBoilerplate",
    "Vectoriser",
    "build_index",
    "clean_body",
    "documents_and_counts",
    "normalise_title",
    "prepare_documents",
    "ranking_score",
    "recency_boost",
    "rerank",
    "score_candidates",
    "slot_penalty",
    "update_index",
]
