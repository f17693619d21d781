"""The duplicate index in the rule cache as raw array buffers, in parts, so a second run rewrites little.

One pickle of the whole index was about 400 MB at 200k items: pickling, compressing and writing it
cost 8.5 s of every scan, and unpickling its 200k ``Document`` objects most of the load. Here the
index is a small *manifest* under the rule's key (document frequencies, scored pairs, shared terms,
boilerplate, and which segments hold the rows) plus *segments*, each a block of rows (keys,
fingerprints, documents, vector rows) stored under a key named by a digest of its content. A
segment never changes once written: an update marks its changed or gone rows dead in the manifest
and appends the new versions as one new segment, so a second run with 1 % changed writes that 1 %
and the manifest, not every row. A rebuild writes fresh segments and deletes the old ones.

Blobs are this module's own format (a header, msgpack metadata, 8-byte aligned array buffers read
back with ``numpy.frombuffer``), never pickles of classes, so a changed class cannot break reading.
Anything unreadable (a corrupted blob, an old pickled index, a missing segment) makes
``load_index`` return None: the rule rebuilds, it never fails the run.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from rules.base import RuleCache
from rules.duplicates.text import Document, TitleBoilerplate
from rules.duplicates.vectors import Vectoriser

logger = logging.getLogger(__name__)

MAGIC = b"RBDUPIX1"  # bump the digit when the layout of a blob changes
FORMAT = 1
_ALIGN = 8
# Rows per segment of a fresh build: each is encoded and written on its own, so the save never holds
# more than one segment's bytes next to the index.
SEGMENT_ROWS = 25_000
_META_MSGPACK, _META_PICKLE = 0, 1


class UnreadableIndexError(ValueError):
    """A stored blob that is not a readable index part."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stored block of rows: its content digest (None until written), its row count, and which of
    its rows are still part of the index (in order, they are the index's rows)."""

    digest: str | None
    rows: int
    live: npt.NDArray[np.bool_]


def segment_key(key: str, digest: str) -> str:
    """The cache key of one segment of the index saved under ``key``."""
    return f"{key}:segment:{digest}"


# --- blobs: header, metadata, aligned arrays -------------------------------------------------------


def _pack(meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    try:
        encoded, codec = msgspec.msgpack.encode(meta), _META_MSGPACK
    except (TypeError, UnicodeEncodeError, OverflowError):
        # Text msgpack cannot carry (a lone surrogate from a tracker's export) still round-trips.
        encoded, codec = pickle.dumps(dict(meta), protocol=pickle.HIGHEST_PROTOCOL), _META_PICKLE
    table: list[list[Any]] = []
    buffers: list[tuple[int, npt.NDArray[Any]]] = []
    offset = 0
    for name, array in arrays.items():
        flat = np.ascontiguousarray(array)
        table.append([name, flat.dtype.str, list(flat.shape), offset, flat.nbytes])
        buffers.append((offset, flat))
        offset += -(-flat.nbytes // _ALIGN) * _ALIGN
    header = msgspec.msgpack.encode({"codec": codec, "meta_size": len(encoded), "arrays": table})
    start = len(MAGIC) + 8 + len(header) + len(encoded)
    pad = -start % _ALIGN
    out = bytearray(start + pad + offset)
    out[: len(MAGIC)] = MAGIC
    out[len(MAGIC) : len(MAGIC) + 8] = len(header).to_bytes(8, "little")
    position = len(MAGIC) + 8
    out[position : position + len(header)] = header
    position += len(header)
    out[position : position + len(encoded)] = encoded
    base = start + pad
    target = np.frombuffer(out, dtype=np.uint8)  # a view: numpy copies each array in with one memcpy
    for array_offset, flat in buffers:
        target[base + array_offset : base + array_offset + flat.nbytes] = flat.reshape(-1).view(np.uint8)
    del target
    return bytes(out)


def _unpack(blob: object) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    if not isinstance(blob, bytes) or not blob.startswith(MAGIC):
        raise UnreadableIndexError("not an index blob")
    try:
        position = len(MAGIC)
        size = int.from_bytes(blob[position : position + 8], "little")
        position += 8
        header = msgspec.msgpack.decode(blob[position : position + size])
        position += size
        raw_meta = blob[position : position + header["meta_size"]]
        position += header["meta_size"]
        meta = pickle.loads(raw_meta) if header["codec"] == _META_PICKLE else msgspec.msgpack.decode(raw_meta)
        base = position + (-position % _ALIGN)
        arrays = {}
        for name, dtype, shape, offset, nbytes in header["arrays"]:
            if base + offset + nbytes > len(blob):
                raise UnreadableIndexError(f"array {name} runs past the end")
            flat = np.frombuffer(
                blob, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype).itemsize, offset=base + offset
            )
            # A copy: the index's arrays are written in place by scipy and numpy operations.
            arrays[name] = flat.reshape(shape).copy()
    except UnreadableIndexError:
        raise
    except Exception as exc:  # a truncated or altered blob can fail anywhere in decoding
        raise UnreadableIndexError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(meta, dict):
        raise UnreadableIndexError("metadata is not a mapping")
    return meta, arrays


def _digest(blob: bytes) -> str:
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


# --- segments --------------------------------------------------------------------------------------


def _encode_segment(
    keys: Sequence[str], fingerprints: Sequence[str], documents: Sequence[Document], matrix: sp.csr_matrix
) -> bytes:
    meta = {
        "format": FORMAT,
        "keys": list(keys),
        "fingerprints": list(fingerprints),
        "titles": [doc.title for doc in documents],
        "bodies": [doc.body for doc in documents],
        "columns": int(matrix.shape[1]),
    }
    arrays = {"data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr}
    return _pack(meta, arrays)


@dataclass(frozen=True, slots=True)
class _SegmentRows:
    keys: list[str]
    fingerprints: list[str]
    documents: list[Document]
    matrix: sp.csr_matrix


def _decode_segment(blob: object, live: npt.NDArray[np.bool_]) -> _SegmentRows:
    meta, arrays = _unpack(blob)
    rows = len(meta["keys"])
    if meta.get("format") != FORMAT or rows != len(live):
        raise UnreadableIndexError("segment of another format or size")
    matrix = sp.csr_matrix(
        (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(rows, int(meta["columns"]))
    )
    picked = np.flatnonzero(live)
    everything = len(picked) == rows
    pick = range(rows) if everything else picked.tolist()
    keys, prints, titles, bodies = meta["keys"], meta["fingerprints"], meta["titles"], meta["bodies"]
    if everything:
        return _SegmentRows(keys, prints, list(map(Document, titles, bodies)), matrix)
    return _SegmentRows(
        keys=[keys[i] for i in pick],
        fingerprints=[prints[i] for i in pick],
        documents=[Document(titles[i], bodies[i]) for i in pick],
        matrix=sp.csr_matrix(matrix[picked]),
    )


# --- the whole index -------------------------------------------------------------------------------


def _segments_of(index: Any) -> list[Segment]:
    """The index's segments; a fresh index is cut into blocks of ``SEGMENT_ROWS`` not yet written."""
    if index.segments:
        return list(index.segments)
    total = len(index.keys)
    return [
        Segment(None, min(SEGMENT_ROWS, total - start), np.ones(min(SEGMENT_ROWS, total - start), bool))
        for start in range(0, total, SEGMENT_ROWS)
    ]


def _encode_manifest(index: Any, segments: Sequence[Segment]) -> bytes:
    vectoriser: Vectoriser = index.vectoriser
    embedded = sorted(index.embeddings.items())
    meta = {
        "format": FORMAT,
        "version": index.version,
        "penalty_floor": index.penalty_floor,
        "updates": index.updates,
        "changed_since_build": index.changed_since_build,
        "n_docs": vectoriser.n_docs,
        "prefixes": sorted(index.boilerplate.prefixes),
        "suffixes": sorted(index.boilerplate.suffixes),
        "segments": [[s.digest, s.rows] for s in segments],
        "terms": [[a, b, terms] for (a, b), terms in index.terms.items()],
        "embedded": [[key, print_] for key, (print_, _) in embedded],
    }
    # Only the document frequencies, as int32 (no count reaches 2**31): the IDF follows from them,
    # and the vectoriser was 36 MB of every manifest.
    arrays: dict[str, npt.NDArray[Any]] = {
        "word_df": vectoriser.word_df.astype(np.int32),
        "char_df": vectoriser.char_df.astype(np.int32),
        "pairs": index.pairs,
        "scores": index.scores,
        "live": np.packbits(np.concatenate([s.live for s in segments]))
        if segments
        else np.zeros(0, np.uint8),
    }
    if embedded:
        arrays["embeddings"] = np.stack([vector for _, (_, vector) in embedded])
    return _pack(meta, arrays)


def save_index(cache: RuleCache, key: str, index: Any) -> int:
    """Write what the cache lacks of ``index`` (new segments, a changed manifest) under ``key``;
    delete segments no longer used. Returns the bytes written.

    ``index`` (a ``DuplicateIndex``) learns its segments' digests, so saving it again writes nothing.
    """
    segments = _segments_of(index)
    stored = set(index.stored)
    written = 0
    offset = 0
    done: list[Segment] = []
    for segment in segments:
        count = int(segment.live.sum())
        if segment.digest is None:
            # A segment not yet written holds only live rows: the last ``count`` of the index so far.
            rows = slice(offset, offset + count)
            blob = _encode_segment(
                index.keys[rows], index.fingerprints[rows], index.documents[rows], index.matrix[rows]
            )
            digest = _digest(blob)
            if digest not in stored:
                cache.put(segment_key(key, digest), blob)
                written += len(blob)
            segment = Segment(digest, segment.rows, segment.live)
            del blob
        done.append(segment)
        offset += count
    manifest = _encode_manifest(index, done)
    manifest_digest = _digest(manifest)
    if manifest_digest != index.manifest_digest:
        cache.put(key, manifest)
        written += len(manifest)
    kept = {s.digest for s in done if s.digest is not None}
    for digest in sorted(stored - kept):
        cache.delete(segment_key(key, digest))
    index.segments = tuple(done)
    index.stored = tuple(sorted(kept))
    index.manifest_digest = manifest_digest
    return written


def load_index(cache: RuleCache, key: str) -> Any:
    """The ``DuplicateIndex`` saved under ``key``, or None when there is none or it cannot be read
    (an older format, a corrupted or missing part: the caller rebuilds it)."""
    from rules.duplicates.index import DuplicateIndex

    manifest = cache.get(key)
    if manifest is None:
        return None
    try:
        meta, arrays = _unpack(manifest)
        if meta.get("format") != FORMAT:
            raise UnreadableIndexError(f"manifest format {meta.get('format')!r}")
        live_bits = np.unpackbits(arrays["live"]).astype(bool)
        segments: list[Segment] = []
        parts: list[_SegmentRows] = []
        start = 0
        for digest, rows in meta["segments"]:
            live = live_bits[start : start + rows]
            start += rows
            blob = cache.get(segment_key(key, digest))
            if blob is None:
                raise UnreadableIndexError(f"segment {digest} is missing")
            parts.append(_decode_segment(blob, live))
            del blob
            segments.append(Segment(digest, rows, live))
        vectoriser = Vectoriser.from_frequencies(
            arrays["word_df"].astype(np.int64), arrays["char_df"].astype(np.int64), int(meta["n_docs"])
        )
        embedded = meta["embedded"]
        vectors = arrays.get("embeddings")
        index = DuplicateIndex(
            keys=[k for part in parts for k in part.keys],
            fingerprints=[p for part in parts for p in part.fingerprints],
            documents=[d for part in parts for d in part.documents],
            vectoriser=vectoriser,
            boilerplate=TitleBoilerplate(frozenset(meta["prefixes"]), frozenset(meta["suffixes"])),
            matrix=_stack(
                [part.matrix for part in parts],
                int(arrays["word_df"].shape[0] + arrays["char_df"].shape[0]),
            ),
            pairs=arrays["pairs"],
            scores=arrays["scores"],
            version=int(meta["version"]),
            penalty_floor=float(meta["penalty_floor"]),
            updates=int(meta["updates"]),
            changed_since_build=int(meta["changed_since_build"]),
            terms={(a, b): list(terms) for a, b, terms in meta["terms"]},
            embeddings={k: (p, vectors[i]) for i, (k, p) in enumerate(embedded)}
            if vectors is not None
            else {},
            segments=tuple(segments),
            stored=tuple(sorted(s.digest for s in segments if s.digest is not None)),
            manifest_digest=_digest(manifest) if isinstance(manifest, bytes) else "",
        )
    except (UnreadableIndexError, KeyError, TypeError, ValueError) as exc:
        logger.warning("duplicate index %r cannot be read (%s); it is rebuilt", key, exc)
        return None
    if len(index.keys) != len(index.documents) or index.matrix.shape[0] != len(index.keys):
        logger.warning("duplicate index %r is inconsistent; it is rebuilt", key)
        return None
    return index


def _stack(matrices: list[sp.csr_matrix], columns: int) -> sp.csr_matrix:
    """The segments' rows stacked into one matrix, emptying the list (one copy of each segment's
    arrays into the result: scipy's ``vstack`` took most of a second at 200k items)."""
    from rules.duplicates.index import stack_rows

    if not matrices:
        return sp.csr_matrix((0, columns), dtype=np.float32)
    return stack_rows(matrices)
