"""Each document's word tokens as the word counts found them, kept for the explanations.

Counting the word terms (``vectors.document_counts``, in the cleaning workers) tokenises every
title and description; the explanations (``explain.SharedTerms``) need the same tokens again for
the documents of the reported pairs, and tokenising them a second time, one Python string and one
dictionary lookup per token, was half of their cost. A ``TokenTable`` keeps what the counting found:
the token ids (stop words dropped) of each document's title and description, and the UTF-8 bytes of
the names those ids stand for. It is numpy arrays only, so a worker sends it back cheaply and a
forked process reads it without copying; it lives for one run (a stored index does not keep it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rules.duplicates.hashing import spans


@dataclass(frozen=True, slots=True)
class TokenTable:
    """Token ids of documents' titles and descriptions (stop words dropped), and the ids' names.

    Document ``d``'s title is ``ids[title_starts[d] : title_starts[d] + title_lengths[d]]``, its
    description likewise; id ``n`` is the token whose UTF-8 bytes are
    ``name_data[name_starts[n] : name_starts[n] + name_lengths[n]]``, and whose
    ``murmurhash3_32`` (the word hasher's) is ``name_hashes[n]``. Ids of different chunks of
    documents may name one token (each chunk numbered its own): compare names, not ids.
    """

    name_data: npt.NDArray[np.uint8]
    name_starts: npt.NDArray[np.int64]
    name_lengths: npt.NDArray[np.int64]
    name_hashes: npt.NDArray[np.int32]
    ids: npt.NDArray[np.int32]
    title_starts: npt.NDArray[np.int64]
    title_lengths: npt.NDArray[np.int64]
    body_starts: npt.NDArray[np.int64]
    body_lengths: npt.NDArray[np.int64]
    # Documents whose descriptions are one text have one number here (the explanations find pairs
    # of copies by it); a chunk's own table numbers each document apart, ``with_body_groups`` sets it.
    body_groups: npt.NDArray[np.int64]

    @property
    def documents(self) -> int:
        """How many documents the table holds."""
        return len(self.title_starts)

    @property
    def names(self) -> int:
        """How many name ids the table has."""
        return len(self.name_starts)

    def spelled(self, numbers: npt.NDArray[np.int64]) -> list[str]:
        """The names of the ids ``numbers``, decoded in one call (no token holds a space, and no
        character's UTF-8 holds a space byte but the space's own)."""
        if not len(numbers):
            return []
        starts, lengths = self.name_starts[numbers], self.name_lengths[numbers]
        sizes = lengths + 1
        first = np.zeros(len(numbers), dtype=np.int64)
        np.cumsum(sizes[:-1], out=first[1:])
        out = np.full(int(sizes.sum()) - 1, ord(" "), dtype=np.uint8)
        owner, at = spans(starts, starts + lengths)
        out[first[owner] + at - starts[owner]] = self.name_data[at]
        return out.tobytes().decode("utf-8").split(" ")

    def keys(self, numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """A key of each id's name: its hash and its length in bytes (equal names, equal keys; two
        names of one key are told apart by ``same``)."""
        hashes = self.name_hashes[numbers].view(np.uint32).astype(np.int64)
        keys: npt.NDArray[np.int64] = (hashes << 31) | np.minimum(self.name_lengths[numbers], (1 << 31) - 1)
        return keys

    def same(self, first: npt.NDArray[np.int64], second: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Whether ids ``first[i]`` and ``second[i]`` name one token, byte for byte."""
        lengths = self.name_lengths[first]
        equal: npt.NDArray[np.bool_] = lengths == self.name_lengths[second]
        lengths = np.where(equal, lengths, 0)
        mine, theirs = self.name_starts[first], self.name_starts[second]
        owner, at = spans(mine, mine + lengths)
        differs = self.name_data[at] != self.name_data[at - mine[owner] + theirs[owner]]
        equal[owner[differs]] = False
        return equal

    @classmethod
    def joined(cls, tables: Sequence[TokenTable]) -> TokenTable:
        """One table of the documents of ``tables``, in order (each table's ids renumbered after
        the ones before)."""
        name_base = np.cumsum([0] + [table.names for table in tables]).tolist()
        byte_base = np.cumsum([0] + [len(table.name_data) for table in tables]).tolist()
        id_base = np.cumsum([0] + [len(table.ids) for table in tables]).tolist()
        return cls(
            name_data=np.concatenate([np.zeros(0, np.uint8)] + [t.name_data for t in tables]),
            name_starts=_int64([t.name_starts + base for t, base in zip(tables, byte_base, strict=False)]),
            name_lengths=_int64([t.name_lengths for t in tables]),
            name_hashes=np.concatenate([np.zeros(0, np.int32)] + [t.name_hashes for t in tables]),
            ids=np.concatenate(
                [np.zeros(0, np.int32)]
                + [(t.ids + base).astype(np.int32) for t, base in zip(tables, name_base, strict=False)]
            ),
            title_starts=_int64([t.title_starts + base for t, base in zip(tables, id_base, strict=False)]),
            title_lengths=_int64([t.title_lengths for t in tables]),
            body_starts=_int64([t.body_starts + base for t, base in zip(tables, id_base, strict=False)]),
            body_lengths=_int64([t.body_lengths for t in tables]),
            body_groups=np.arange(sum(t.documents for t in tables), dtype=np.int64),
        )

    def with_body_groups(self, groups: npt.NDArray[np.int64]) -> TokenTable:
        """This table with each document's description group (equal descriptions, one group)."""
        return dataclasses.replace(self, body_groups=np.asarray(groups, dtype=np.int64))

    def subset(self, rows: npt.NDArray[np.int64]) -> TokenTable:
        """The table of the documents ``rows`` only, in that order, with only the names they use
        (a few MB to send to another process, where the whole table is tens)."""
        starts = np.stack([self.title_starts[rows], self.body_starts[rows]], axis=1).ravel()
        lengths = np.stack([self.title_lengths[rows], self.body_lengths[rows]], axis=1).ravel()
        numbers = self.ids[spans(starts, starts + lengths)[1]]
        # The ids used, renumbered in order (a mask and a table, not a sort of every id).
        seen = np.zeros(self.names, dtype=bool)
        seen[numbers] = True
        used = np.flatnonzero(seen)
        renumbered = np.zeros(self.names, dtype=np.int32)
        renumbered[used] = np.arange(len(used), dtype=np.int32)
        ids = renumbered[numbers]
        name_lengths = self.name_lengths[used]
        name_starts = np.zeros(len(used), dtype=np.int64)
        np.cumsum(name_lengths[:-1], out=name_starts[1:])
        at = spans(self.name_starts[used], self.name_starts[used] + name_lengths)[1]
        new_starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=new_starts[1:])
        _, groups = np.unique(self.body_groups[rows], return_inverse=True)
        return TokenTable(
            name_data=np.concatenate([self.name_data[at], np.zeros(4, dtype=np.uint8)]),
            name_starts=name_starts,
            name_lengths=name_lengths,
            name_hashes=self.name_hashes[used],
            ids=ids,
            title_starts=new_starts[0::2].copy(),
            title_lengths=lengths[0::2].copy(),
            body_starts=new_starts[1::2].copy(),
            body_lengths=lengths[1::2].copy(),
            body_groups=groups.ravel().astype(np.int64),
        )


def _int64(parts: Sequence[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    return np.concatenate([np.zeros(0, np.int64), *parts])


def token_table(
    encoded: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    hashes: npt.NDArray[np.int32],
    ids: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
) -> TokenTable:
    """The table of documents whose title and description have the token ``ids`` (stop words
    dropped) one after another, ``lengths`` (title, description, title, ...) long each, the ids
    numbering the names whose UTF-8 ``encode`` gave ``encoded`` and whose hashes are ``hashes``."""
    data, name_starts, name_lengths = encoded
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return TokenTable(
        name_data=np.asarray(data, dtype=np.uint8),
        name_starts=name_starts.astype(np.int64),
        name_lengths=name_lengths.astype(np.int64),
        name_hashes=hashes.astype(np.int32),
        ids=ids.astype(np.int32),
        title_starts=starts[0::2].copy(),
        title_lengths=lengths[0::2].copy(),
        body_starts=starts[1::2].copy(),
        body_lengths=lengths[1::2].copy(),
        body_groups=np.arange(len(lengths) // 2, dtype=np.int64),
    )
