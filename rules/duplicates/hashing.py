"""MurmurHash3 (x86, 32 bits, seed 0) of many strings at once, in numpy: the hashers' function.

The word and character features are scikit-learn's hashing (``FeatureHasher``: ``murmurhash3_32``
of each term's UTF-8 bytes, signed), and a stored index depends on them. Importing scikit-learn for
that function imported scipy.stats too, about a second of every scan; here the same hashes are
computed for a whole batch of strings: every 4-byte block of every string is read and mixed in one
vectorised step, then the blocks are folded into the hashes one position at a time across all the
strings that long (strings sorted by length, so each step is a prefix). A test checks the values
against scikit-learn's on many strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)


def _rotl(x: npt.NDArray[np.uint32], r: int) -> npt.NDArray[np.uint32]:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k1(k1: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    return _rotl(k1 * _C1, 15) * _C2


def _fold(h: npt.NDArray[np.uint32], mixed: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """MurmurHash3's step that folds one mixed block into hashes ``h``."""
    return _rotl(h ^ mixed, 13) * np.uint32(5) + np.uint32(0xE6546B64)


def fmix(h: npt.NDArray[np.uint32], length: npt.NDArray[np.uint32] | int) -> npt.NDArray[np.uint32]:
    """MurmurHash3's finalisation of hashes ``h`` of keys of ``length`` bytes."""
    h = h ^ np.asarray(length, dtype=np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def murmur_packed4(k: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """``murmurhash3_32`` (unsigned) of 4-byte keys, the bytes packed little-endian in ``k``: one block."""
    return fmix(_fold(np.zeros_like(k), _mix_k1(k)), 4)


def murmur_packed3(k: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """``murmurhash3_32`` (unsigned) of 3-byte keys packed little-endian in ``k``: the tail path only."""
    return fmix(_mix_k1(k), 3)


def _encoded(strings: Sequence[str]) -> tuple[bytes, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The strings' UTF-8 bytes in one buffer, where each one starts and its length in bytes, from
    one encoding call for the batch (none per string)."""
    joined = "\x00".join(strings)
    if "\x00" not in joined:
        # NUL-terminated: the terminators' places give every start and length in one scan.
        raw = (joined + "\x00").encode("utf-8")  # a lone surrogate fails, as in scikit-learn
        ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 0)
        starts = np.zeros(len(strings), dtype=np.int64)
        starts[1:] = ends[:-1] + 1
        return raw, starts, ends - starts
    parts = [string.encode("utf-8") for string in strings]
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return b"".join(parts), starts, lengths


def murmurhash3_32(strings: Sequence[str]) -> npt.NDArray[np.int32]:
    """``sklearn.utils.murmurhash3_32(s, positive=False)`` of each string (UTF-8 bytes, seed 0)."""
    count = len(strings)
    if not count:
        return np.zeros(0, dtype=np.int32)
    return hash_spans(*encode(strings))


def encode(
    strings: Sequence[str],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The strings' UTF-8 bytes in one buffer (with the padding ``hash_spans`` reads), where each
    one starts, and its length in bytes."""
    raw, starts, lengths = _encoded(strings)
    # Zero bytes of padding: a tail is read as a (partial) little-endian word like a block.
    return np.frombuffer(raw + b"\x00\x00\x00\x00", dtype=np.uint8), starts, lengths


def joined_pairs(
    data: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    firsts: npt.NDArray[np.int64],
    seconds: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``encode([f"{s[a]} {s[b]}" for a, b in zip(firsts, seconds)])`` from the strings' encoding
    (``encode(s)``), assembled in numpy: no bigram string is built (UTF-8 is concatenative)."""
    left, right = lengths[firsts], lengths[seconds]
    sizes = left + 1 + right
    out_starts = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=out_starts[1:])
    total = int(sizes.sum())
    out = np.zeros(total + 4, dtype=np.uint8)
    for source, length, shift in ((starts[firsts], left, 0), (starts[seconds], right, left + 1)):
        span, at = spans(source, source + length)
        out[at + (out_starts + shift - source)[span]] = data[at]
    out[out_starts + left] = ord(" ")
    return out, out_starts, sizes


def spans(
    starts: npt.NDArray[np.int64], stops: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(span number, position) of every position of the spans ``starts[i]:stops[i]``, in order."""
    lengths = stops - starts
    span = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    first = np.zeros(len(starts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    return span, starts[span] + np.arange(len(span), dtype=np.int64) - first[span]


def hash_spans(
    data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.int32]:
    """``murmurhash3_32`` of the byte strings ``data[starts[i] : starts[i] + lengths[i]]``; ``data``
    must have 3 readable bytes after the last string."""
    count = len(starts)
    if not count:
        return np.zeros(0, dtype=np.int32)
    blocks = lengths // 4
    # Longest first: the strings with more than j blocks are a prefix of this order.
    # (A stable sort of 16-bit integers is numpy's radix sort; any order by length would do.)
    small = int(blocks.max()) < 2**15
    order = np.argsort(-(blocks.astype(np.int16) if small else blocks), kind="stable")
    blocks_sorted, starts_sorted = blocks[order], starts[order]
    h = np.zeros(count, dtype=np.uint32)
    if int(blocks_sorted[0]):
        # Every block of every string at once: its position, its little-endian word, mixed.
        first_block = np.zeros(count, dtype=np.int64)
        np.cumsum(blocks_sorted[:-1], out=first_block[1:])
        total = int(blocks_sorted.sum())
        owner = np.repeat(np.arange(count, dtype=np.int64), blocks_sorted)
        at = starts_sorted[owner] + 4 * (np.arange(total, dtype=np.int64) - first_block[owner])
        words = _word(data, at)
        mixed = _mix_k1(words)
        # Fold block j into the hashes of the strings that have one: a prefix of the order.
        having = np.searchsorted(-blocks_sorted, -np.arange(1, int(blocks_sorted[0]) + 1), side="right")
        for j, n in enumerate(having.tolist()):
            h[:n] = _fold(h[:n], mixed[first_block[:n] + j])
    tails = (lengths[order] & 3).astype(np.int64)
    tailed = np.flatnonzero(tails)
    if len(tailed):
        at = starts_sorted[tailed] + 4 * blocks_sorted[tailed]
        word = _word(data, at)
        keep = (np.uint32(1) << (8 * tails[tailed]).astype(np.uint32)) - np.uint32(1)
        h[tailed] ^= _mix_k1(word & keep)
    h = fmix(h, lengths[order].astype(np.uint32))
    result = np.empty(count, dtype=np.uint32)
    result[order] = h
    return result.view(np.int32)


def _word(data: npt.NDArray[np.uint8], at: npt.NDArray[np.int64]) -> npt.NDArray[np.uint32]:
    """The little-endian 32-bit words at byte offsets ``at`` of ``data`` (which has 3 bytes of
    padding after the last offset read): one gather from a view whose element i is the word at
    byte i."""
    words: npt.NDArray[np.uint32] = np.ndarray(
        shape=(len(data) - 3,), dtype="<u4", buffer=data.data, offset=0, strides=(1,)
    )[at].astype(np.uint32)
    return words
