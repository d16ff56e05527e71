"""The teacher logit cache: per response token, the teacher's top-k ids, log-probs and tail mass, keyed by row id.

Why this shape (REFERENCE §4, DESIGN "Files and formats"): EasyDistill 1.x kept one JSON dict per position and read
it back by row order, so shuffling or gradient accumulation silently paired a student step with another row's
teacher. Here every row is found by its dataset `id`, and every position carries the sequence index it belongs to
and the token the teacher was forced on, so the trainer can check it is comparing the same token.

Layout of a version-2 cache folder (workspace/cache/<name>/), ~43 bytes per token at k = 10 and a 151,936 vocabulary:

    meta.json           sidecar: teacher, tokenizer hash, vocab size, k, temperature, storage, counts
    shard-000000.bin    immutable shards written atomically: "EDSLC2\\0\\0", row blobs, then the shard's own row table
                        (JSON [[row_id, offset, nbytes], ...], its length and "EDSLCEND") for rebuilding the index
    index.bin           the one row index, rewritten when a writer closes: row-id hashes (sorted), where each row's
                        blob is, the ids themselves; a lookup is a binary search in a memory map, so opening the cache
                        and fetching a row cost the same at 100k or 100M tokens

A row blob holds a 20-byte header (positions, runs, escapes, explicit top-1 values, body length) and a body,
optionally zstd-compressed (pyarrow's codec):
    runs        (start, length) pairs: the positions are runs of consecutive indices (one run per answer), so they
                cost nothing per token
    ids         the k top-k ids per position, ceil(log2 vocab) bits each (18 for 151,936), sorted by log-prob
    codes       per position, the rank of the forced token among the top-k, or k when it is outside them
                (ceil(log2(k + 1)) bits); those tokens follow as `escapes`, packed like the ids
    log-probs   "float16" storage: 16-bit fixed point of −log p, step 2⁻¹¹ (every value within 2.5e-4 in log space,
                i.e. 0.025 % relative, down to p = e⁻³²: tighter than IEEE half precision over that whole range) for
                ranks 2..k, then one slot and one bit per position: the top-k and the tail sum to 1, so of the top-1
                and the tail only the smaller is stored and the larger derived (1 − the rest; its relative error is
                then at most ~2.5e-4·(1 − x)/x, x ≥ 1/(k + 1)); positions where the derived value would be off by
                more than 2⁻¹¹ in log space are stored as (index, value) pairs. "float32" storage: the k log-probs
                and the tail as float32

Version-1 caches (safetensors shards with per-token positions, int32 ids, fp16 log-probs, fp32 tails, the row table
in each shard's header) are still read, and appended to in their own format.

Appending writes new shards; a crash loses at most the rows not yet flushed (shards the index does not cover yet are
read from their own tables until the next writer closes), and a resumed capture skips the ids the shards hold.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import UserError

if TYPE_CHECKING:
    from core.workspace import Workspace

FORMAT = "eds-logit-cache"
VERSION = 2
META_FILE = "meta.json"
INDEX_FILE = "index.bin"
SHARD_GLOB = "shard-*.safetensors"  # version 1
SHARD_GLOB_V2 = "shard-*.bin"
COMPRESSIONS = ("none", "zstd")
# Fields that must agree between a cache and the job that appends to (or trains from) it.
IDENTITY_FIELDS = ("teacher", "tokenizer_hash", "vocab_size", "k", "temperature", "logprob_dtype")

LOG_STEP = 2.0**-11  # 16-bit log-prob quantum: −log p = q·LOG_STEP, q in 0..65535 (p down to e^-32)
DERIVED_TOLERANCE = 2.0**-11  # a derived log-prob further than this from the captured one is stored instead


class CacheError(UserError, ValueError):
    """A cache that cannot be used as asked: missing, incompatible, or a row it does not hold."""


@dataclass
class CacheMeta:
    teacher: str
    tokenizer_hash: str
    vocab_size: int
    k: int
    temperature: float = 1.0
    logprob_dtype: str = "float16"
    dataset: str = ""
    max_length: int | None = None
    template_hash: str = ""
    rows: int = 0
    positions: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    format: str = FORMAT
    version: int = VERSION
    compression: str = "none"  # version 2: "zstd" compresses each row's body (new rows; each row says its own)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = META_FILE) -> CacheMeta:
        if data.get("format") != FORMAT:
            raise CacheError(f"{where}: not a logit cache (format {data.get('format')!r}, expected {FORMAT!r})")
        if int(data.get("version", 0)) > VERSION:
            raise CacheError(
                f"{where}: cache version {data.get('version')} is newer than this studio reads ({VERSION})"
            )
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def mismatches(self, other: CacheMeta) -> list[str]:
        """Identity fields that differ, as 'field: this vs other' lines."""
        out = []
        for name in IDENTITY_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            same = abs(float(a) - float(b)) < 1e-9 if name == "temperature" else a == b
            if not same:
                out.append(f"{name}: {a!r} vs {b!r}")
        return out


@dataclass
class CachedRow:
    """One row's teacher data, positions in increasing order, top-k sorted by log-prob (highest first)."""

    positions: np.ndarray  # (n,) int32
    token_ids: np.ndarray  # (n,) int32
    topk_ids: np.ndarray  # (n, k) int32
    topk_logprobs: np.ndarray  # (n, k) float32
    tail: np.ndarray  # (n,) float32

    def __len__(self) -> int:
        return int(self.positions.shape[0])


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_meta(folder: str | os.PathLike) -> CacheMeta:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise CacheError(f"{folder}: no logit cache here ({META_FILE} missing); run a capture job first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CacheError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e
    return CacheMeta.from_json(data, str(path))


# --------------------------------------------------------------------------------------------------------------------
# Version 2: row blobs.

SHARD_MAGIC = b"EDSLC2\0\0"
SHARD_END = b"EDSLCEND"
INDEX_MAGIC = b"EDSLCIX2"
_ROW_HEAD = struct.Struct("<IIIII")  # positions, runs, escapes, explicit top-1 values, body bytes (+ flag bit 31)
_ZSTD_FLAG = 1 << 31
_INDEX_HEAD = struct.Struct("<8sIIQQQQ")  # magic, version, reserved, rows, shards covered, id bytes, positions
_INDEX_HEAD_SIZE = 64
_INDEX_RECORD = np.dtype([("shard", "<u4"), ("nbytes", "<u4"), ("offset", "<u8"), ("id_off", "<u8"),
                          ("id_len", "<u4"), ("reserved", "<u4")])


def id_bits(vocab_size: int) -> int:
    """Bits per packed token id: ceil(log2 vocab) (18 for 151,936), at least 1."""
    return max(1, int(vocab_size - 1).bit_length())


def code_bits(k: int) -> int:
    """Bits per forced-token code: its rank among the k ids, or k for 'not among them'."""
    return max(1, int(k).bit_length())


def _pack(values: np.ndarray, bits: int) -> bytes:
    """Unsigned integers (< 2**bits, bits ≤ 32) as a big-endian bit string, padded to whole bytes."""
    if values.size == 0:
        return b""
    be = np.ascontiguousarray(values.reshape(-1), dtype=">u4").view(np.uint8).reshape(-1, 4)
    return np.packbits(np.unpackbits(be, axis=1)[:, 32 - bits:]).tobytes()


def _unpack(buf: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    """Inverse of `_pack`: `count` values as int32."""
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    b = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=count * bits).reshape(count, bits)
    full = np.zeros((count, 32), dtype=np.uint8)
    full[:, 32 - bits:] = b
    return np.packbits(full, axis=1).view(">u4").reshape(-1).astype(np.int32)


def _packed_len(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def _q16(logp: np.ndarray) -> np.ndarray:
    """log-probabilities (≤ 0) -> uint16 steps of LOG_STEP below 0; −inf and anything under −32 -> 65535."""
    q = np.rint(-np.nan_to_num(logp, nan=0.0, neginf=-1e9) / LOG_STEP)
    return np.clip(q, 0, 65535).astype("<u2")


def _deq16(q: np.ndarray) -> np.ndarray:
    return q.astype(np.float64) * -LOG_STEP


def _derived(rest_logp: np.ndarray, log_slot: np.ndarray) -> np.ndarray:
    """log of the one mass left out: log(1 − Σᵢ₌₂ pᵢ − slot), float64, floored at the smallest stored value. The
    slot holds the tail (the top-1 is derived) or the top-1 (the tail is derived)."""
    left = 1.0 - np.exp(log_slot) - np.exp(rest_logp).sum(-1)
    return np.log(np.maximum(left, np.exp(-65535 * LOG_STEP)))


def _zstd():
    try:
        import pyarrow as pa

        if pa.Codec.is_available("zstd"):
            return pa.Codec("zstd", compression_level=9)
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    raise CacheError("zstd compression needs pyarrow built with zstd; use compression 'none'")


def encode_row(meta: CacheMeta, pos: np.ndarray, tok: np.ndarray, ids: np.ndarray, lps: np.ndarray,
               tail: np.ndarray) -> bytes:
    """One row's blob (version 2). ids / lps (n, k) are already sorted by log-prob, highest first."""
    n, k = ids.shape
    bits = id_bits(meta.vocab_size)
    if n and (int(ids.max()) >= meta.vocab_size or int(ids.min()) < 0 or int(tok.max()) >= meta.vocab_size
              or int(tok.min()) < 0):
        raise CacheError(f"token ids must lie in 0..{meta.vocab_size - 1} (the cache's vocabulary)")
    if n:
        cut = np.flatnonzero(np.diff(pos) != 1) + 1
        starts = pos[np.concatenate([[0], cut])]
        lengths = np.diff(np.concatenate([[0], cut, [n]]))
    else:
        starts = lengths = np.zeros(0, dtype=np.int64)
    runs = np.stack([starts, lengths], 1).astype("<u4")
    hit = ids == tok[:, None]
    codes = np.where(hit.any(1), hit.argmax(1), k)
    escapes = tok[codes == k]
    parts = [runs.tobytes(), _pack(ids, bits), _pack(codes, code_bits(k)), _pack(escapes, bits)]
    explicit = np.zeros(0, dtype=np.int64)
    if meta.logprob_dtype == "float32":
        parts += [lps.astype("<f4").tobytes(), tail.astype("<f4").tobytes()]
    else:
        with np.errstate(divide="ignore"):  # a tail of 0 is log 0 = −inf, stored as the smallest value
            log_tail = np.log(np.clip(tail.astype(np.float64), 0.0, 1.0))
        tail_left_out = log_tail > lps[:, 0]  # derive the larger of top-1 and tail: its relative error is smaller
        truth = np.where(tail_left_out, log_tail, lps[:, 0])
        q_rest, q_slot = _q16(lps[:, 1:]), _q16(np.where(tail_left_out, lps[:, 0], log_tail))
        derived = _derived(_deq16(q_rest), _deq16(q_slot))
        explicit = np.flatnonzero(~(np.abs(derived - truth) <= DERIVED_TOLERANCE))
        parts += [q_rest.tobytes(), q_slot.tobytes(), _pack(tail_left_out.astype(np.int64), 1),
                  explicit.astype("<u4").tobytes(), _q16(truth[explicit]).tobytes()]
    body = b"".join(parts)
    size = len(body)
    if meta.compression == "zstd":
        packed = _zstd().compress(body, asbytes=True)
        if len(packed) < size:
            body, size = packed, size | _ZSTD_FLAG
    elif meta.compression != "none":
        raise CacheError(f"unknown compression {meta.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    return _ROW_HEAD.pack(n, len(runs), len(escapes), len(explicit), size) + body


def decode_row(meta: CacheMeta, blob: bytes | memoryview) -> CachedRow:
    n, n_runs, n_esc, n_explicit, size = _ROW_HEAD.unpack_from(blob, 0)
    k = meta.k
    body = memoryview(blob)[_ROW_HEAD.size:]
    if size & _ZSTD_FLAG:
        body = memoryview(_zstd().decompress(body, decompressed_size=size & ~_ZSTD_FLAG, asbytes=True))
    bits = id_bits(meta.vocab_size)
    at = 0

    def take(nbytes: int) -> memoryview:
        nonlocal at
        at += nbytes
        return body[at - nbytes: at]

    runs = np.frombuffer(take(8 * n_runs), dtype="<u4").reshape(-1, 2).astype(np.int64)
    if n_runs == 1:
        positions = np.arange(runs[0, 0], runs[0, 0] + runs[0, 1], dtype=np.int32)
    else:
        positions = np.concatenate([np.arange(s, s + m) for s, m in runs]).astype(np.int32) if n_runs else \
            np.zeros(0, dtype=np.int32)
    ids = _unpack(take(_packed_len(n * k, bits)), n * k, bits).reshape(n, k)
    codes = _unpack(take(_packed_len(n, code_bits(k))), n, code_bits(k))
    escapes = _unpack(take(_packed_len(n_esc, bits)), n_esc, bits)
    tokens = ids[np.arange(n), np.minimum(codes, k - 1)]
    tokens[codes == k] = escapes
    if meta.logprob_dtype == "float32":
        lps = np.frombuffer(take(4 * n * k), dtype="<f4").reshape(n, k).astype(np.float32)
        tail = np.frombuffer(take(4 * n), dtype="<f4").astype(np.float32)
    else:
        rest = _deq16(np.frombuffer(take(2 * n * (k - 1)), dtype="<u2").reshape(n, k - 1))
        slot = _deq16(np.frombuffer(take(2 * n), dtype="<u2"))
        tail_left_out = _unpack(take(_packed_len(n, 1)), n, 1).astype(bool)
        derived = _derived(rest, slot)
        where = np.frombuffer(take(4 * n_explicit), dtype="<u4").astype(np.int64)
        derived[where] = _deq16(np.frombuffer(take(2 * n_explicit), dtype="<u2"))
        top1 = np.where(tail_left_out, slot, derived)
        lps = np.concatenate([top1[:, None], rest], 1).astype(np.float32)
        tail = np.exp(np.where(tail_left_out, derived, slot)).astype(np.float32)
    return CachedRow(positions, tokens.astype(np.int32), ids, lps, tail)


def _row_hash(row_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(row_id.encode("utf-8"), digest_size=8).digest(), "little")


def _shard_path(folder: Path, version: int, index: int) -> Path:
    return folder / (f"shard-{index:06d}.safetensors" if version == 1 else f"shard-{index:06d}.bin")


def _shard_number(path: Path) -> int:
    return int(path.name.split("-")[1].split(".")[0])


def _shard_table(path: Path) -> list[tuple[str, int, int, int]]:
    """A v2 shard's own row table: [(row_id, offset, nbytes, positions)]."""
    try:
        with open(path, "rb") as f:
            f.seek(-16, os.SEEK_END)
            size, end = struct.unpack("<Q8s", f.read(16))
            if end != SHARD_END:
                raise ValueError("no end marker")
            f.seek(-16 - size, os.SEEK_END)
            return [(str(r), int(o), int(b), int(n)) for r, o, b, n in json.loads(f.read(size))]
    except (OSError, ValueError, TypeError, struct.error) as e:
        raise CacheError(f"{path}: shard has no valid row table ({e})") from e


def _shard_rows_v1(path: Path) -> list[tuple[str, int, int]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    try:
        return [(str(r), int(o), int(n)) for r, o, n in json.loads(meta["rows"])]
    except (KeyError, ValueError, TypeError) as e:
        raise CacheError(f"{path}: shard header has no valid row index") from e


def write_index(folder: Path, entries: Iterable[tuple[str, int, int, int]], covered: int, positions: int) -> None:
    """index.bin for the (row_id, shard, offset, nbytes) entries of shards 0..covered−1 (holding `positions` tokens),
    sorted by row-id hash."""
    rids, shards, offsets, sizes = [], [], [], []
    for rid, shard, off, nbytes in entries:
        rids.append(rid.encode("utf-8"))
        shards.append(shard)
        offsets.append(off)
        sizes.append(nbytes)
    _write_index_arrays(folder, rids, np.asarray(shards, dtype=np.int64), np.asarray(offsets, dtype=np.int64),
                        np.asarray(sizes, dtype=np.int64), covered, positions)


def _write_index_arrays(folder: Path, rids: list[bytes], shards, offsets, sizes, covered: int,
                        positions: int) -> None:
    n = len(rids)
    hashes = np.fromiter((int.from_bytes(hashlib.blake2b(r, digest_size=8).digest(), "little") for r in rids),
                         dtype=np.uint64, count=n)
    lens = np.fromiter((len(r) for r in rids), dtype=np.int64, count=n)
    id_off = np.concatenate([[0], np.cumsum(lens)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    rec = np.zeros(n, dtype=_INDEX_RECORD)
    rec["shard"], rec["nbytes"], rec["offset"] = shards[order], sizes[order], offsets[order]
    rec["id_off"], rec["id_len"] = id_off[order], lens[order]
    blob = b"".join(rids)
    path = folder / INDEX_FILE
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(_INDEX_HEAD.pack(INDEX_MAGIC, VERSION, 0, n, covered, len(blob), positions)
                .ljust(_INDEX_HEAD_SIZE, b"\0"))
        f.write(hashes[order].astype("<u8").tobytes())
        f.write(rec.tobytes())
        f.write(blob)
    os.replace(tmp, path)


class _Index:
    """index.bin in a memory map: lookups by binary search over the sorted hashes, nothing parsed up front."""

    def __init__(self, path: Path):
        self.rows = self.covered = self.positions = 0
        self._mm = None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            if os.fstat(fd).st_size < _INDEX_HEAD_SIZE:
                raise CacheError(f"{path}: truncated row index; delete it and the next writer rebuilds it")
            self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        magic, _version, _, n, covered, _blob, positions = _INDEX_HEAD.unpack_from(self._mm, 0)
        if magic != INDEX_MAGIC:
            raise CacheError(f"{path}: not a logit-cache row index")
        self.rows, self.covered, self.positions = int(n), int(covered), int(positions)
        self._hashes = np.frombuffer(self._mm, dtype="<u8", count=n, offset=_INDEX_HEAD_SIZE)
        self._rec = np.frombuffer(self._mm, dtype=_INDEX_RECORD, count=n, offset=_INDEX_HEAD_SIZE + 8 * n)
        self._blob_at = _INDEX_HEAD_SIZE + (8 + _INDEX_RECORD.itemsize) * n

    def _id(self, i: int) -> bytes:
        r = self._rec[i]
        start = self._blob_at + int(r["id_off"])
        return self._mm[start: start + int(r["id_len"])]

    def find(self, row_id: str) -> tuple[int, int, int] | None:
        """(shard, offset, nbytes) of a row, or None."""
        if not self.rows:
            return None
        h = np.uint64(_row_hash(row_id))
        i = int(np.searchsorted(self._hashes, h))
        want = row_id.encode("utf-8")
        while i < self.rows and self._hashes[i] == h:
            if self._id(i) == want:
                r = self._rec[i]
                return int(r["shard"]), int(r["offset"]), int(r["nbytes"])
            i += 1
        return None

    def entries(self) -> Iterator[tuple[str, int, int, int]]:
        for i in range(self.rows):
            r = self._rec[i]
            yield self._id(i).decode("utf-8"), int(r["shard"]), int(r["offset"]), int(r["nbytes"])

    def nbytes(self) -> int:
        return len(self._mm) if self._mm is not None else 0

    def close(self) -> None:
        if self._mm is not None:
            self._hashes = self._rec = None
            self._mm.close()
            self._mm = None


def _uncovered(folder: Path, covered: int) -> list[tuple[int, list[tuple[str, int, int, int]]]]:
    """Shards written after the index (a writer that has not closed, or crashed): (number, row table) each.
    Shards are numbered consecutively, so this costs one stat when there are none."""
    out, n = [], covered
    while True:
        path = _shard_path(folder, 2, n)
        if not path.exists():
            return out
        out.append((n, _shard_table(path)))
        n += 1


# --------------------------------------------------------------------------------------------------------------------
# Writer and reader.


class LogitCacheWriter:
    """Appends rows to a cache folder, one immutable shard per `shard_rows` rows; resumable by row id.

    New caches are written in `version` (2 by default; 1 writes the old safetensors layout, kept for compatibility
    tests); an existing cache is appended to in its own version. `close()` (or leaving the `with` block, also on
    error) flushes the last rows and rewrites the row index.
    """

    def __init__(self, folder: str | os.PathLike, meta: CacheMeta, shard_rows: int = 256, version: int = VERSION):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_rows = max(1, shard_rows)
        for stale in self.folder.glob("*.tmp"):
            stale.unlink()
        if (self.folder / META_FILE).exists():
            old = read_meta(self.folder)
            diff = old.mismatches(meta)
            if diff:
                raise CacheError(
                    f"{self.folder}: the cache was captured with different settings ({'; '.join(diff)}); "
                    "choose another output name or delete the old cache"
                )
            meta.created = old.created
            version = old.version
        if version not in (1, 2):
            raise CacheError(f"logit cache version {version} cannot be written (1 or 2)")
        if meta.compression not in COMPRESSIONS:
            raise CacheError(f"unknown compression {meta.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        if meta.compression == "zstd":
            _zstd()
        meta.version = self.version = version
        self._ids: set[str] = set()
        positions = 0
        if version == 1:
            shards = sorted(self.folder.glob(SHARD_GLOB))
            self._next_shard = (_shard_number(shards[-1]) + 1) if shards else 0
            for shard in shards:
                for rid, _off, n in _shard_rows_v1(shard):
                    self._ids.add(rid)
                    positions += n
            self._reindex = False
        else:
            index = _Index(self.folder / INDEX_FILE)
            try:
                self._ids.update(rid for rid, *_ in index.entries())
                positions, covered = index.positions, index.covered
            finally:
                index.close()
            late = _uncovered(self.folder, covered)
            for _num, table in late:
                for rid, _off, _nbytes, n in table:
                    self._ids.add(rid)
                    positions += n
            self._next_shard = covered + len(late)
            self._reindex = bool(late) or not (self.folder / INDEX_FILE).exists()
        self.meta = meta
        self.meta.rows, self.meta.positions = len(self._ids), positions
        self._buf: list[tuple[str, Any, int]] = []
        self._write_meta()

    def __contains__(self, row_id: str) -> bool:
        return row_id in self._ids

    @property
    def row_ids(self) -> set[str]:
        return set(self._ids)

    def add(
        self,
        row_id: str,
        positions: Iterable[int],
        token_ids: Iterable[int],
        topk_ids: Any,
        topk_logprobs: Any,
        tail: Any | None = None,
    ) -> None:
        """Queue one row; written with the next full shard (or `flush`). A repeated id is an error.

        The top-k at each position may come in any order; it is stored (and read back) highest log-prob first.
        """
        rid = str(row_id)
        if rid in self._ids:
            raise CacheError(f"row id {rid!r} is already in the cache {self.folder}")
        k = self.meta.k
        ids = np.asarray(topk_ids, dtype=np.int64).reshape(-1, k)
        lps = np.minimum(np.asarray(topk_logprobs, dtype=np.float64).reshape(-1, k), 0.0)
        n = ids.shape[0]
        pos = np.asarray(list(positions) if not isinstance(positions, np.ndarray) else positions, dtype=np.int64)
        tok = np.asarray(list(token_ids) if not isinstance(token_ids, np.ndarray) else token_ids, dtype=np.int64)
        if tail is not None and not isinstance(tail, np.ndarray):
            tail = list(tail)
            if any(t is None for t in tail):  # a backend that did not say: derived like an absent tail
                tail = None
        if tail is None:
            tail_arr = np.clip(1.0 - np.exp(lps).sum(-1), 0.0, 1.0)
        else:
            tail_arr = np.asarray(tail, dtype=np.float64).reshape(-1)
        if not (pos.shape == tok.shape == tail_arr.shape == (n,)) or lps.shape != (n, k):
            raise CacheError(f"row {rid!r}: inconsistent lengths (positions {pos.shape}, tokens {tok.shape}, "
                             f"top-k ids {ids.shape}, log-probs {lps.shape}, tail {tail_arr.shape})")
        if n > 1 and not (np.diff(pos) > 0).all():
            raise CacheError(f"row {rid!r}: positions must increase")
        if n and (pos.min() < 0 or pos.max() >= 2**32):
            raise CacheError(f"row {rid!r}: positions must lie in 0..2^32-1")
        order = np.argsort(-lps, axis=-1, kind="stable")
        ids, lps = np.take_along_axis(ids, order, -1), np.take_along_axis(lps, order, -1)
        if self.version == 1:
            row = CachedRow(pos.astype(np.int32), tok.astype(np.int32), ids.astype(np.int32),
                            lps.astype(np.float32), tail_arr.astype(np.float32))
        else:
            try:
                row = encode_row(self.meta, pos, tok, ids, lps, tail_arr)
            except CacheError as e:
                raise CacheError(f"row {rid!r}: {e}") from None
        self._ids.add(rid)
        self._buf.append((rid, row, n))
        if len(self._buf) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows as one new shard (atomic rename) and update the sidecar counts."""
        if not self._buf:
            return
        path = _shard_path(self.folder, self.version, self._next_shard)
        tmp = path.with_name(path.name + ".tmp")
        if self.version == 1:
            self._write_shard_v1(tmp)
        else:
            table, offset = [], len(SHARD_MAGIC)
            with open(tmp, "wb") as f:
                f.write(SHARD_MAGIC)
                for rid, blob, n in self._buf:
                    f.write(blob)
                    table.append([rid, offset, len(blob), n])
                    offset += len(blob)
                tail = json.dumps(table, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                f.write(tail)
                f.write(struct.pack("<Q8s", len(tail), SHARD_END))
            self._reindex = True
        os.replace(tmp, path)
        self._next_shard += 1
        self.meta.rows += len(self._buf)
        self.meta.positions += sum(n for _, _, n in self._buf)
        self._buf.clear()
        self._write_meta()

    def _write_shard_v1(self, tmp: Path) -> None:
        from safetensors.numpy import save_file

        index, offset = [], 0
        rows = [r for _, r, _ in self._buf]
        for rid, _row, n in self._buf:
            index.append([rid, offset, n])
            offset += n
        lp_dtype = np.float16 if self.meta.logprob_dtype == "float16" else np.float32
        tensors = {
            "positions": np.concatenate([r.positions for r in rows]),
            "token_ids": np.concatenate([r.token_ids for r in rows]),
            "topk_ids": np.concatenate([r.topk_ids for r in rows]).reshape(-1, self.meta.k),
            "topk_logprobs": np.concatenate([r.topk_logprobs for r in rows]).reshape(-1, self.meta.k)
            .clip(np.finfo(lp_dtype).min, 0).astype(lp_dtype),
            "tail": np.concatenate([r.tail for r in rows]),
        }
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "rows": json.dumps(index, ensure_ascii=False)})

    def _write_meta(self) -> None:
        self.meta.updated = time.time()
        _atomic_write_json(self.folder / META_FILE, self.meta.to_json())

    def close(self) -> None:
        self.flush()
        if self.version == 2 and self._reindex:
            rebuild_index(self.folder)
            self._reindex = False

    def __enter__(self) -> LogitCacheWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # also on error: what was captured so far stays


def rebuild_index(folder: str | os.PathLike) -> None:
    """Rewrite index.bin over every shard of a version-2 cache: the old index's rows plus the shards it missed."""
    folder = Path(folder)
    index = _Index(folder / INDEX_FILE)
    try:
        entries = list(index.entries())
        positions, covered = index.positions, index.covered
    finally:
        index.close()
    late = _uncovered(folder, covered)
    for num, table in late:
        entries += [(rid, num, off, nbytes) for rid, off, nbytes, _n in table]
        positions += sum(n for *_, n in table)
    write_index(folder, entries, covered + len(late), positions)


class LogitCache:
    """Read side: random access by row id. Version 2: one memory-mapped index, one read per row; version 1: lazily
    opened safetensors shards (their headers are read when the cache is opened)."""

    _MAX_OPEN = 16

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        self._index: _Index | None = None
        self._extra: dict[str, tuple[int, int, int]] = {}
        self._fds: dict[int, int] = {}
        if self.meta.version == 1:
            self._shards: list[Path] = sorted(self.folder.glob(SHARD_GLOB))
            for si, shard in enumerate(self._shards):
                for rid, off, n in _shard_rows_v1(shard):
                    self._extra[rid] = (si, off, n)
            self._handles: dict[int, Any] = {}
        else:
            self._index = _Index(self.folder / INDEX_FILE)
            for num, table in _uncovered(self.folder, self._index.covered):
                for rid, off, nbytes, _n in table:
                    self._extra[rid] = (num, off, nbytes)

    def __reduce__(self):  # DataLoader workers get their own maps and file handles
        return (LogitCache, (str(self.folder),))

    def __len__(self) -> int:
        return len(self._extra) + (self._index.rows if self._index else 0)

    def _locate(self, row_id: str) -> tuple[int, int, int] | None:
        loc = self._extra.get(row_id)
        if loc is None and self._index is not None:
            loc = self._index.find(row_id)
        return loc

    def __contains__(self, row_id: object) -> bool:
        return self._locate(str(row_id)) is not None

    def ids(self) -> list[str]:
        out = [rid for rid, *_ in self._index.entries()] if self._index else []
        return out + list(self._extra)

    def get(self, row_id: str) -> CachedRow:
        loc = self._locate(str(row_id))
        if loc is None:
            raise CacheError(
                f"row id {row_id!r} is not in the logit cache {self.folder} ({len(self)} rows); "
                "capture the teacher on this dataset first"
            )
        if self.meta.version == 1:
            return self._get_v1(*loc)
        shard, offset, nbytes = loc
        blob = os.pread(self._fd(shard), nbytes, offset)
        if len(blob) != nbytes:
            raise CacheError(f"{_shard_path(self.folder, 2, shard)}: truncated shard (row {row_id!r})")
        return decode_row(self.meta, blob)

    def _fd(self, shard: int) -> int:
        fd = self._fds.get(shard)
        if fd is None:
            if len(self._fds) >= self._MAX_OPEN:
                self.close()
            fd = self._fds[shard] = os.open(_shard_path(self.folder, 2, shard), os.O_RDONLY)
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self):
        try:
            self.close()
            if self._index is not None:
                self._index.close()
        except (OSError, AttributeError, TypeError, BufferError):  # interpreter shutdown, or a view still held
            pass

    def _get_v1(self, si: int, off: int, n: int) -> CachedRow:
        h = self._handles.get(si)
        if h is None:
            from safetensors import safe_open

            h = self._handles[si] = safe_open(str(self._shards[si]), framework="numpy")
        sl = slice(off, off + n)
        return CachedRow(
            positions=h.get_slice("positions")[sl],
            token_ids=h.get_slice("token_ids")[sl],
            topk_ids=h.get_slice("topk_ids")[sl],
            topk_logprobs=h.get_slice("topk_logprobs")[sl].astype(np.float32),
            tail=h.get_slice("tail")[sl],
        )

    def __iter__(self) -> Iterator[tuple[str, CachedRow]]:
        for rid in self.ids():
            yield rid, self.get(rid)

    def nbytes(self) -> int:
        """Bytes on disk: shards, index and sidecar."""
        total = 0
        with os.scandir(self.folder) as it:
            for entry in it:
                if entry.name.startswith("shard-") or entry.name in (INDEX_FILE, META_FILE):
                    total += entry.stat().st_size
        return total

    def summary(self) -> dict[str, Any]:
        """What the UI shows about a cache."""
        if self.meta.version == 1:
            positions = sum(n for _, _, n in self._extra.values())
        else:
            positions = self.meta.positions
        size = self.nbytes()
        return {
            "teacher": self.meta.teacher, "k": self.meta.k, "temperature": self.meta.temperature,
            "vocab_size": self.meta.vocab_size, "rows": len(self), "positions": positions, "bytes": size,
            "bytes_per_token": size / positions if positions else None,
        }

    def check_compatible(self, expected: CacheMeta | None = None, **fields: Any) -> None:
        """Raise a CacheError naming each identity field that differs from what the trainer expects."""
        problems = []
        if expected is not None:
            problems += self.meta.mismatches(expected)
        for name, want in fields.items():
            have = getattr(self.meta, name)
            if want is not None and (abs(float(have) - float(want)) > 1e-9 if name == "temperature" else have != want):
                problems.append(f"{name}: cache has {have!r}, the job uses {want!r}")
        if problems:
            raise CacheError(f"logit cache {self.folder} does not fit this job: " + "; ".join(problems))


def cache_summary(ws: Workspace, name: str) -> dict[str, Any]:
    """`LogitCache.summary()` of a workspace cache picked by name, plus the name (what the Training tab shows beside
    its cache picker). A name that would leave the workspace is refused; a folder that is no cache is a CacheError."""
    folder = ws.resolve(name, base="cache")
    try:
        return {"name": name, **LogitCache(folder).summary()}
    except CacheError:
        raise
    except (OSError, ValueError) as e:  # a damaged shard: say which cache, not a traceback
        raise CacheError(f"logit cache '{name}' cannot be read: {e}") from None
