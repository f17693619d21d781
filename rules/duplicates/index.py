"""The duplicate index a later run reuses: per-item text, vectors, document frequencies, scored pairs.

``build_index`` makes one from scratch; ``update_index`` brings a cached one up to date by
re-vectorising and searching only new or changed items (and rebuilds once too much has changed).
The index is a plain dataclass of lists, dicts, numpy arrays and scipy matrices; ``stored`` writes it
into the rule cache in parts (raw array buffers, one segment per block of rows) so an update rewrites
only the rows that changed. Imports numpy and scipy: load it only when the rule runs.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from refinebot.models import Issue
from rules.duplicates.forked import start_server
from rules.duplicates.search import PAIR_SHIFT, THREADS, decode_pairs, exact_scores, search, unique_pairs
from rules.duplicates.stored import Segment
from rules.duplicates.templates import PENALTY_FLOOR, penalise
from rules.duplicates.text import Document, TitleBoilerplate, clean_body, one_copy, scored_titles
from rules.duplicates.tokens import TokenTable
from rules.duplicates.vectors import Vectoriser, document_counts, raw_counts

logger = logging.getLogger(__name__)

INDEX_VERSION = 2  # 2: penalty_floor


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
    # Pairs scoring under this were not checked for the template penalty: a run whose candidate
    # floor is lower needs a rebuilt index.
    penalty_floor: float = PENALTY_FLOOR
    updates: int = 0
    changed_since_build: int = 0
    # Shared terms of reported pairs, by sorted key pair: explaining is the slowest part of a
    # finding, and most findings repeat from run to run.
    terms: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # Sentence embeddings (semantic option) by key, with the fingerprint of the text embedded.
    embeddings: dict[str, tuple[str, npt.NDArray[np.float32]]] = field(default_factory=dict)
    row_of: dict[str, int] = field(default_factory=dict)
    # How the rows are stored (``rules.duplicates.stored``): the segments whose live rows, in order,
    # are the rows here (empty: none written yet), the digests of the segments in the cache, and the
    # digest of the manifest last written or read (an unchanged index writes nothing).
    segments: tuple[Segment, ...] = ()
    stored: tuple[str, ...] = ()
    manifest_digest: str = ""
    # The documents' word tokens as counting found them (an index built in this run: one loaded or
    # updated has none, and the explanations tokenise what they need).
    tokens: TokenTable | None = None

    def __post_init__(self) -> None:
        if not self.row_of:
            self.row_of = dict(zip(self.keys, range(len(self.keys)), strict=True))


# Cleaning and hashing are pure Python per item; big backlogs share them across processes.
PARALLEL_MIN_DOCS = 20_000
# Fresh builds of this many items start the fork server (``forked.start_server``).
SERVER_MIN_ITEMS = 20_000
_CHUNK_DOCS = 5_000

_Chunk = tuple[list[str], list[str]]
_Counted = tuple[list[str], sp.csr_matrix, sp.csr_matrix, TokenTable]


def _clean_and_count(chunk: _Chunk) -> _Counted:
    titles, descriptions = chunk
    documents = [
        Document(title=title, body=clean_body(text)) for title, text in zip(titles, descriptions, strict=True)
    ]
    words, chars, tokens = document_counts(documents)
    return [doc.body for doc in documents], words, chars, tokens


def _workers() -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1  # spawned workers would re-import everything; not worth it
    return max(1, min(THREADS, os.cpu_count() or 1))


def _documents_and_chunks(
    issues: Sequence[Issue], boilerplate: TitleBoilerplate | None, parallel_min: int
) -> tuple[list[Document], TitleBoilerplate, list[tuple[sp.csr_matrix, sp.csr_matrix]], TokenTable]:
    """Scored documents, the boilerplate used, raw (word, character) counts per chunk of rows, and
    the documents' word tokens."""
    started, cpu = time.perf_counter(), time.process_time()
    titles, boilerplate = scored_titles(issues, boilerplate)
    descriptions = [issue.description for issue in issues]
    chunks = [
        (titles[start : start + _CHUNK_DOCS], descriptions[start : start + _CHUNK_DOCS])
        for start in range(0, len(issues), _CHUNK_DOCS)
    ]
    del descriptions
    workers = _workers()
    if len(issues) >= parallel_min and workers > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_clean_and_count, chunks))
    else:
        results = [_clean_and_count(chunk) for chunk in chunks]
    del chunks
    bodies = one_copy(body for result in results for body in result[0])
    groups: dict[str, int] = {}
    body_groups = np.fromiter(
        (groups.setdefault(body, len(groups)) for body in bodies), np.int64, len(bodies)
    )
    documents = [Document(title, body) for title, body in zip(titles, bodies, strict=True)]
    counts = [(result[1], result[2]) for result in results]
    tokens = TokenTable.joined([result[3] for result in results]).with_body_groups(body_groups)
    del results
    logger.debug(
        "phase dup-clean-hash: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    return documents, boilerplate, counts, tokens


def documents_and_counts(
    issues: Sequence[Issue],
    boilerplate: TitleBoilerplate | None = None,
    *,
    parallel_min: int = PARALLEL_MIN_DOCS,
) -> tuple[list[Document], TitleBoilerplate, sp.csr_matrix, sp.csr_matrix]:
    """Scored documents, the boilerplate used, and raw word and character counts of ``issues``."""
    documents, boilerplate, counts, _ = _documents_and_chunks(issues, boilerplate, parallel_min)
    if not counts:
        words, chars = raw_counts([])
        return [], boilerplate, words, chars
    words = sp.csr_matrix(sp.vstack([pair[0] for pair in counts], format="csr"))
    chars = sp.csr_matrix(sp.vstack([pair[1] for pair in counts], format="csr"))
    return documents, boilerplate, words, chars


def stack_rows(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """``sp.vstack(blocks, format="csr")``, the same arrays and dtypes, emptying ``blocks`` as it
    copies them: at the peak one block and the result are held, not every block and the result."""
    int32_max = np.iinfo(np.int32).max
    nnz = sum(block.nnz for block in blocks)
    columns = blocks[0].shape[1]
    wide = max(nnz, columns) > int32_max or any(not np.can_cast(b.indptr.dtype, np.int32) for b in blocks)
    index_dtype = np.int64 if wide else np.int32
    data = np.empty(nnz, dtype=np.result_type(*(block.data.dtype for block in blocks)))
    indices = np.empty(nnz, dtype=index_dtype)
    indptr = np.empty(sum(block.shape[0] for block in blocks) + 1, dtype=index_dtype)
    at = row = 0
    blocks.reverse()  # popped from the end, in order
    while blocks:
        block = blocks.pop()
        size, rows = block.nnz, block.shape[0]
        data[at : at + size] = block.data
        indices[at : at + size] = block.indices
        indptr[row : row + rows] = block.indptr[:-1]
        indptr[row : row + rows] += at
        at, row = at + size, row + rows
        del block
    indptr[-1] = at
    return sp.csr_matrix((data, indices, indptr), shape=(row, columns))


def _fit_chunks(counts: list[tuple[sp.csr_matrix, sp.csr_matrix]]) -> tuple[Vectoriser, sp.csr_matrix]:
    """``Vectoriser.fit_counts`` of the stacked counts, chunk by chunk, emptying ``counts``.

    Weights are per row once the document frequencies are known (summed over chunks: the same
    integers), so the vectors are those of one call on the whole matrix; but the raw counts of a
    chunk are dropped once weighed, and the whole-backlog count matrices are never built: the
    scan's memory peak was here, with the raw counts, their weighted copies and the stacked result
    all held at once.
    """
    if not counts:
        return Vectoriser.fit_counts(*raw_counts([]))
    n_docs = sum(words.shape[0] for words, _ in counts)
    word_df = np.zeros(counts[0][0].shape[1], dtype=np.int64)
    char_df = np.zeros(counts[0][1].shape[1], dtype=np.int64)
    for words, chars in counts:
        word_df += np.bincount(words.indices, minlength=words.shape[1])
        char_df += np.bincount(chars.indices, minlength=chars.shape[1])
    vectoriser = Vectoriser.from_frequencies(word_df, char_df, n_docs)
    weighted = []
    counts.reverse()  # popped from the end, in order
    while counts:
        words, chars = counts.pop()
        weighted.append(vectoriser.transform_counts(words, chars))
        del words, chars
    return vectoriser, stack_rows(weighted)


def build_index(issues: Sequence[Issue], penalty_floor: float = PENALTY_FLOOR) -> DuplicateIndex:
    """A fresh index of ``issues`` with candidate pairs among all of them (the template penalty
    checked on pairs scoring at least ``penalty_floor``: under it they are no candidate anyway)."""
    if len(issues) >= SERVER_MIN_ITEMS:
        # The explanations' worker comes from the fork server (it is sent this build's token
        # table); its imports overlap the build. An updated index has no table: no server.
        start_server(["rules.duplicates.explain"])
    documents, boilerplate, counts, tokens = _documents_and_chunks(issues, None, PARALLEL_MIN_DOCS)
    started, cpu = time.perf_counter(), time.process_time()
    vectoriser, matrix = _fit_chunks(counts)
    logger.debug(
        "phase dup-fit: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    started, cpu = time.perf_counter(), time.process_time()
    pairs, scores = search(matrix, documents, None, penalty_floor)
    logger.debug(
        "phase dup-search: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    return DuplicateIndex(
        keys=[issue.key for issue in issues],
        fingerprints=[_fingerprint(issue) for issue in issues],
        documents=documents,
        vectoriser=vectoriser,
        boilerplate=boilerplate,
        matrix=matrix,
        pairs=pairs,
        scores=scores,
        penalty_floor=penalty_floor,
        tokens=tokens,
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
        rebuilt = build_index(issues, index.penalty_floor)
        rebuilt.stored = index.stored  # so saving it deletes the old segments
        return rebuilt
    changed_keys = {issues[position].key for position in changed}
    # Keep unchanged rows in their old order, then append the new versions of changed items.
    kept = np.fromiter(
        (key in current and key not in changed_keys for key in index.keys), dtype=bool, count=len(index.keys)
    )
    keep_rows = np.flatnonzero(kept)
    new_row = np.full(len(index.keys), -1, dtype=np.int64)
    new_row[keep_rows] = np.arange(len(keep_rows), dtype=np.int64)
    changed_issues = [issues[position] for position in changed]
    changed_docs, _, words, chars = documents_and_counts(changed_issues, index.boilerplate)
    leaving = np.flatnonzero(~kept)
    vectoriser = index.vectoriser.updated(index.matrix[leaving], words, chars)
    matrix = _rows_and_block(index.matrix, keep_rows, vectoriser.transform_counts(words, chars))
    kept_list = keep_rows.tolist()
    documents = [index.documents[row] for row in kept_list] + changed_docs
    keys = [index.keys[row] for row in kept_list] + [issue.key for issue in changed_issues]
    prints = [index.fingerprints[row] for row in kept_list] + [fingerprints[p] for p in changed]
    del kept_list
    # Old pairs survive while both ends exist; a pair with a changed end is rescored (its partner
    # may not be in the changed item's own top k). Changed items also get a fresh search against
    # everything.
    old_low, old_high = decode_pairs(index.pairs)
    low, high = new_row[old_low], new_row[old_high]
    changed_rows = np.zeros(len(index.keys), dtype=bool)
    changed_rows[[index.row_of[k] for k in changed_keys if k in index.row_of]] = True
    touched = changed_rows[old_low] | changed_rows[old_high]
    # The new rows of the touched pairs' ends, by key (-1: gone). A kept row's is where it moved;
    # a changed item's, its appended row. With repeated keys (a malformed export) a key names its
    # last row, so every end is looked up by key.
    distinct = len(index.row_of) == len(index.keys) and len(current) == len(issues)
    first_new = len(keep_rows) if distinct else 0
    position_of = {key: row for row, key in enumerate(keys[first_new:], start=first_new)}

    def new_rows(old: npt.NDArray[np.int64], moved: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        ends = zip((index.keys[r] for r in old.tolist()), moved.tolist(), strict=True)
        found = [position_of.get(key, -1) if row < 0 or not distinct else row for key, row in ends]
        return np.asarray(found, dtype=np.int64)

    kept_low = new_rows(old_low[touched], low[touched])
    kept_high = new_rows(old_high[touched], high[touched])
    exists = (kept_low >= 0) & (kept_high >= 0)
    alive = (low >= 0) & (high >= 0) & ~touched
    query_rows = np.arange(len(keep_rows), len(keys), dtype=np.int64)
    fresh, fresh_scores = search(matrix, documents, query_rows, None)
    rescored_low, rescored_high = kept_low[exists], kept_high[exists]
    rescored, rescored_scores = unique_pairs(
        rescored_low, rescored_high, exact_scores(matrix, rescored_low, rescored_high)
    )
    # The penalty of a pair depends on that pair alone: one call for the fresh and the rescored
    # pairs splits each title once (they share most of their rows).
    extra = np.concatenate([fresh, rescored])
    started, cpu = time.perf_counter(), time.process_time()
    extra_scores = penalise(
        documents, *decode_pairs(extra), np.concatenate([fresh_scores, rescored_scores]), index.penalty_floor
    )
    logger.debug(
        "phase dup-penalty: %.3f s (cpu %.3f s)", time.perf_counter() - started, time.process_time() - cpu
    )
    # Rows keep their order, so the surviving pairs stay sorted and distinct: the few fresh and
    # rescored ones are merged in (the first of a pair found twice wins, as in one ``np.unique``
    # of all three) instead of sorting them all again.
    pairs, scores = _merge_pairs(
        (low[alive] << PAIR_SHIFT) | high[alive],
        index.scores[alive],
        extra,
        extra_scores,
    )
    segments = _updated_segments(index, keep_rows, len(changed_issues))
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
        penalty_floor=index.penalty_floor,
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
        segments=segments,
        stored=index.stored,
        manifest_digest=index.manifest_digest,
    )


def _rows_and_block(
    matrix: sp.csr_matrix, rows: npt.NDArray[np.int64], block: sp.csr_matrix
) -> sp.csr_matrix:
    """``sp.vstack([matrix[rows], block], format="csr")`` for sorted ``rows`` (the same arrays and
    dtypes), in one copy: the runs of consecutive rows are copied as slices, not row by row, and
    straight into the result (nearly every row is kept when 1 % changed)."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    firsts = rows[np.concatenate([[0], breaks]).astype(np.int64)] if len(rows) else rows
    lasts = rows[np.concatenate([breaks - 1, [len(rows) - 1]]).astype(np.int64)] + 1 if len(rows) else rows
    indptr = matrix.indptr.astype(np.int64)
    starts, stops = indptr[firsts], indptr[lasts]
    kept = int((stops - starts).sum())
    nnz = kept + block.nnz
    columns = matrix.shape[1]
    int32_max = np.iinfo(np.int32).max
    wide = max(nnz, columns) > int32_max or not all(
        np.can_cast(m.indptr.dtype, np.int32) for m in (matrix, block)
    )
    index_dtype = np.int64 if wide else np.int32
    data = np.empty(nnz, dtype=np.result_type(matrix.data.dtype, block.data.dtype))
    indices = np.empty(nnz, dtype=index_dtype)
    at = 0
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        data[at : at + stop - start] = matrix.data[start:stop]
        indices[at : at + stop - start] = matrix.indices[start:stop]
        at += stop - start
    data[at:] = block.data
    indices[at:] = block.indices
    lengths = np.concatenate([indptr[rows + 1] - indptr[rows], np.diff(block.indptr)])
    new_indptr = np.zeros(len(lengths) + 1, dtype=index_dtype)
    np.cumsum(lengths, out=new_indptr[1:])
    return sp.csr_matrix((data, indices, new_indptr), shape=(len(lengths), columns))


def _merge_pairs(
    base: npt.NDArray[np.int64],
    base_scores: npt.NDArray[np.float32],
    extra: npt.NDArray[np.int64],
    extra_scores: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """``np.unique`` of ``base`` then ``extra`` with the score of each pair's first occurrence;
    ``base`` must be sorted and distinct (and is the big one)."""
    if len(base) > 1 and not bool((base[1:] > base[:-1]).all()):
        merged, first = np.unique(np.concatenate([base, extra]), return_index=True)
        return merged, np.concatenate([base_scores, extra_scores])[first]
    extra, first = np.unique(extra, return_index=True)
    extra_scores = extra_scores[first]
    at = np.searchsorted(base, extra)
    known = np.zeros(len(extra), dtype=bool)
    inside = at < len(base)
    known[inside] = base[at[inside]] == extra[inside]
    at, extra, extra_scores = at[~known], extra[~known], extra_scores[~known]
    return np.insert(base, at, extra), np.insert(base_scores, at, extra_scores)


def _updated_segments(
    index: DuplicateIndex, keep_rows: npt.NDArray[np.int64], added: int
) -> tuple[Segment, ...]:
    """The stored segments of ``index`` with rows not in ``keep_rows`` marked dead, plus a segment
    not yet written for the ``added`` rows appended after them (none when the index was never
    stored: it is cut into segments when saved)."""
    if not index.segments:
        return ()
    kept = np.zeros(len(index.keys), dtype=bool)
    kept[keep_rows] = True
    segments = []
    row = 0
    for segment in index.segments:
        slots = np.flatnonzero(segment.live)
        live = np.zeros(segment.rows, dtype=bool)
        live[slots] = kept[row : row + len(slots)]
        row += len(slots)
        if live.any():
            segments.append(Segment(segment.digest, segment.rows, live))
    if added:
        segments.append(Segment(None, added, np.ones(added, dtype=bool)))
    return tuple(segments)
