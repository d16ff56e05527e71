"""Which rows repeat an earlier row's key, among any number of rows, in bounded memory.

Each key (a row's normalised prompt, prompt + answer, ...) is kept as a 16-byte BLAKE2b digest with the row's position:
24 bytes a row, never the text. Entries go to one of `k` buckets by their digest's first byte (equal keys share a
bucket), `k` chosen so that a bucket holds about BUCKET_ROWS entries; buckets stay in memory until MEMORY_BYTES of
entries are held, then every bucket is appended to its own file. At the end each bucket is read in chunks of
BUCKET_ROWS entries and sorted (stable, so among equal digests the earliest position comes first): every entry after
the first of its digest is a repeat. A bucket read in several chunks (the row estimate was low, or one key repeats a
million times) keeps the distinct digests it has seen with their first position, so a repeat in a later chunk still
finds its first occurrence.

Peak memory: MEMORY_BYTES while collecting, then one chunk (~70 MB for BUCKET_ROWS entries while it is sorted) plus
the bucket's distinct digests when it spans several chunks. Two different keys share a digest with probability about
n² / 2¹²⁹ — for a billion rows, 10⁻²¹.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ENTRY = np.dtype([("d", "S16"), ("pos", "<u8")])  # digest (big-endian bytes: sorts as unsigned) + row position
BUCKET_ROWS = 1 << 20
MEMORY_BYTES = 32 << 20
MAX_BUCKETS = 256


def digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class RepeatFinder:
    """Collect (key, position) in position order with `add`; `repeats()` then yields, bucket by bucket, the positions
    that repeat an earlier key and the position of that key's first occurrence."""

    def __init__(self, expected_rows: int, folder: str | Path | None = None):
        self.k = max(1, min(MAX_BUCKETS, math.ceil(expected_rows / BUCKET_ROWS)))
        self._bufs = [bytearray() for _ in range(self.k)]
        self._held = 0
        self._folder = folder
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._files: list[Path | None] = [None] * self.k
        self.count = 0

    def add(self, key: str, pos: int) -> None:
        d = digest(key)
        buf = self._bufs[d[0] * self.k >> 8]
        buf += d
        buf += pos.to_bytes(8, "little")
        self.count += 1
        self._held += 24
        if self._held >= MEMORY_BYTES:
            self._spill()

    def _spill(self) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=".digests-", dir=self._folder)
        for b, buf in enumerate(self._bufs):
            if not buf:
                continue
            if self._files[b] is None:
                self._files[b] = Path(self._tmp.name) / f"{b}.bin"
            with open(self._files[b], "ab") as f:  # type: ignore[arg-type]
                f.write(buf)
            self._bufs[b] = bytearray()
        self._held = 0

    def _chunks(self, b: int) -> Iterator[np.ndarray]:
        path = self._files[b]
        if path is not None:
            with open(path, "rb") as f:
                while True:
                    part = np.fromfile(f, dtype=ENTRY, count=BUCKET_ROWS)
                    if not len(part):
                        break
                    yield part
        buf = self._bufs[b]
        for start in range(0, len(buf), BUCKET_ROWS * ENTRY.itemsize):
            yield np.frombuffer(buf, dtype=ENTRY, count=min(BUCKET_ROWS, (len(buf) - start) // ENTRY.itemsize),
                                offset=start)

    def repeats(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions that repeat an earlier key, the first position of each one's key), one bucket at a time."""
        for b in range(self.k):
            seen_d = np.empty(0, dtype="S16")
            seen_pos = np.empty(0, dtype="<u8")
            chunks = self._chunks(b)
            chunk = next(chunks, None)
            while chunk is not None:
                after = next(chunks, None)
                rep, first, seen_d, seen_pos = _chunk_repeats(chunk, seen_d, seen_pos, keep=after is not None)
                if len(rep):
                    yield rep, first
                chunk = after
            self._bufs[b] = bytearray()
        self.close()

    def repeat_count(self) -> int:
        return sum(len(rep) for rep, _ in self.repeats())

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _chunk_repeats(chunk: np.ndarray, seen_d: np.ndarray, seen_pos: np.ndarray, keep: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Repeats in one chunk (entries in position order) given the distinct digests of earlier chunks (sorted, with
    their first positions); returns them with the distinct digests including this chunk's (`keep`: a later chunk of
    the bucket will need them)."""
    order = np.argsort(chunk["d"], kind="stable")  # equal digests: earliest position first
    d, pos = chunk["d"][order], chunk["pos"][order]
    starts = np.empty(len(d), dtype=bool)
    starts[0] = True
    starts[1:] = d[1:] != d[:-1]
    group = np.cumsum(starts) - 1
    g_d, g_first = d[starts], pos[starts]
    found = np.zeros(len(g_d), dtype=bool)
    if len(seen_d):
        at = np.minimum(np.searchsorted(seen_d, g_d), len(seen_d) - 1)
        found = seen_d[at] == g_d
        g_first = np.where(found, seen_pos[at], g_first)
    is_rep = ~starts | found[group]
    rep, first = pos[is_rep], g_first[group][is_rep]
    if not keep or found.all():
        return rep, first, seen_d, seen_pos
    new_d = np.concatenate([seen_d, g_d[~found]])
    new_pos = np.concatenate([seen_pos, pos[starts][~found]])
    keep = np.argsort(new_d, kind="stable")
    return rep, first, new_d[keep], new_pos[keep]


class Bitmap:
    """One bit per row position: n / 8 bytes (a billion rows: 125 MB)."""

    def __init__(self, n: int):
        self.bits = bytearray((n + 7) // 8)

    def set(self, positions: np.ndarray) -> None:
        view = np.frombuffer(self.bits, dtype=np.uint8)
        np.bitwise_or.at(view, (positions >> 3).astype(np.intp), (1 << (positions & 7)).astype(np.uint8))

    def __contains__(self, i: int) -> bool:
        j = i >> 3
        return j < len(self.bits) and bool(self.bits[j] >> (i & 7) & 1)
