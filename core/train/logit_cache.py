"""The teacher logit cache: per response token, the teacher's top-k ids, log-probs and tail mass, keyed by row id.

Why this shape (REFERENCE §4, DESIGN "Files and formats"): EasyDistill 1.x kept one JSON dict per position and read
it back by row order, so shuffling or gradient accumulation silently paired a student step with another row's
teacher. Here every row is found by its dataset `id`, and every position carries the sequence index it belongs to
and the token the teacher was forced on, so the trainer can check it is comparing the same token.

Layout of a cache folder (workspace/cache/<name>/):

    meta.json                 sidecar: teacher, tokenizer hash, vocab size, k, temperature, dtype, counts
    shard-000000.safetensors  immutable shards written atomically; tensors (P = positions in the shard):
        positions  (P,)   int32    index of the response token in the tokenized sequence
        token_ids  (P,)   int32    the response token itself (what the teacher was forced on)
        topk_ids   (P, k) int32    teacher top-k token ids at that position
        topk_logprobs (P, k) f16|f32  their log-probabilities (at the capture temperature)
        tail       (P,)   float32  1 − Σ top-k probabilities (kept in fp32: it is small and fp16 sums lose it)
      header metadata "rows": JSON [[row_id, offset, length], ...] — the index (ids only, never the payload)

Appending writes new shards; a crash loses at most the rows not yet flushed, and a resumed capture skips the ids the
shards already hold. Reads are lazy (safetensors slices), so random access by id touches only that row's bytes.
"""

from __future__ import annotations

import json
import os
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
VERSION = 1
META_FILE = "meta.json"
SHARD_GLOB = "shard-*.safetensors"
# Fields that must agree between a cache and the job that appends to (or trains from) it.
IDENTITY_FIELDS = ("teacher", "tokenizer_hash", "vocab_size", "k", "temperature", "logprob_dtype")


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
    """One row's teacher data, positions in increasing order."""

    positions: np.ndarray  # (n,) int32
    token_ids: np.ndarray  # (n,) int32
    topk_ids: np.ndarray  # (n, k) int32
    topk_logprobs: np.ndarray  # (n, k) float32
    tail: np.ndarray  # (n,) float32

    def __len__(self) -> int:
        return int(self.positions.shape[0])


def _shard_name(index: int) -> str:
    return f"shard-{index:06d}.safetensors"


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


def _shard_rows(path: Path) -> list[tuple[str, int, int]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    try:
        return [(str(r), int(o), int(n)) for r, o, n in json.loads(meta["rows"])]
    except (KeyError, ValueError, TypeError) as e:
        raise CacheError(f"{path}: shard header has no valid row index") from e


class LogitCacheWriter:
    """Appends rows to a cache folder, one immutable shard per `shard_rows` rows; resumable by row id."""

    def __init__(self, folder: str | os.PathLike, meta: CacheMeta, shard_rows: int = 256):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_rows = max(1, shard_rows)
        for stale in self.folder.glob("*.tmp"):
            stale.unlink()
        self._ids: set[str] = set()
        shards = sorted(self.folder.glob(SHARD_GLOB))
        self._next_shard = (int(shards[-1].stem.split("-")[1]) + 1) if shards else 0
        positions = 0
        if (self.folder / META_FILE).exists():
            old = read_meta(self.folder)
            diff = old.mismatches(meta)
            if diff:
                raise CacheError(
                    f"{self.folder}: the cache was captured with different settings ({'; '.join(diff)}); "
                    "choose another output name or delete the old cache"
                )
            meta.created = old.created
        for shard in shards:
            for rid, _off, n in _shard_rows(shard):
                self._ids.add(rid)
                positions += n
        self.meta = meta
        self.meta.rows, self.meta.positions = len(self._ids), positions
        self._buf: list[tuple[str, CachedRow]] = []
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
        """Queue one row; written with the next full shard (or `flush`). A repeated id is an error."""
        rid = str(row_id)
        if rid in self._ids:
            raise CacheError(f"row id {rid!r} is already in the cache {self.folder}")
        k = self.meta.k
        ids = np.asarray(topk_ids, dtype=np.int32).reshape(-1, k)
        lps = np.asarray(topk_logprobs, dtype=np.float32).reshape(-1, k)
        n = ids.shape[0]
        pos = np.asarray(list(positions) if not isinstance(positions, np.ndarray) else positions, dtype=np.int32)
        tok = np.asarray(list(token_ids) if not isinstance(token_ids, np.ndarray) else token_ids, dtype=np.int32)
        if tail is None:
            tail_arr = np.clip(1.0 - np.exp(lps.astype(np.float64)).sum(-1), 0.0, 1.0).astype(np.float32)
        else:
            tail_arr = np.asarray(tail, dtype=np.float32).reshape(-1)
        if not (pos.shape == tok.shape == tail_arr.shape == (n,)) or lps.shape != (n, k):
            raise CacheError(f"row {rid!r}: inconsistent lengths (positions {pos.shape}, tokens {tok.shape}, "
                             f"top-k ids {ids.shape}, log-probs {lps.shape}, tail {tail_arr.shape})")
        if n > 1 and not (np.diff(pos) > 0).all():
            raise CacheError(f"row {rid!r}: positions must increase")
        self._ids.add(rid)
        self._buf.append((rid, CachedRow(pos, tok, ids, lps, tail_arr)))
        if len(self._buf) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows as one new shard (atomic rename) and update the sidecar counts."""
        if not self._buf:
            return
        from safetensors.numpy import save_file

        index, offset = [], 0
        for rid, row in self._buf:
            index.append([rid, offset, len(row)])
            offset += len(row)
        lp_dtype = np.float16 if self.meta.logprob_dtype == "float16" else np.float32
        tensors = {
            "positions": np.concatenate([r.positions for _, r in self._buf]),
            "token_ids": np.concatenate([r.token_ids for _, r in self._buf]),
            "topk_ids": np.concatenate([r.topk_ids for _, r in self._buf]).reshape(-1, self.meta.k),
            "topk_logprobs": np.concatenate([r.topk_logprobs for _, r in self._buf]).reshape(-1, self.meta.k)
            .clip(np.finfo(lp_dtype).min, 0).astype(lp_dtype),
            "tail": np.concatenate([r.tail for _, r in self._buf]),
        }
        path = self.folder / _shard_name(self._next_shard)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "rows": json.dumps(index, ensure_ascii=False)})
        os.replace(tmp, path)
        self._next_shard += 1
        self.meta.rows += len(self._buf)
        self.meta.positions += offset
        self._buf.clear()
        self._write_meta()

    def _write_meta(self) -> None:
        self.meta.updated = time.time()
        _atomic_write_json(self.folder / META_FILE, self.meta.to_json())

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> LogitCacheWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # also on error: what was captured so far stays


class LogitCache:
    """Read side: random access by row id over lazily opened shards."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        self._index: dict[str, tuple[int, int, int]] = {}
        self._shards: list[Path] = sorted(self.folder.glob(SHARD_GLOB))
        for si, shard in enumerate(self._shards):
            for rid, off, n in _shard_rows(shard):
                self._index[rid] = (si, off, n)
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, row_id: object) -> bool:
        return str(row_id) in self._index

    def ids(self) -> list[str]:
        return list(self._index)

    def _handle(self, si: int):
        h = self._handles.get(si)
        if h is None:
            from safetensors import safe_open

            h = safe_open(str(self._shards[si]), framework="numpy")
            self._handles[si] = h
        return h

    def get(self, row_id: str) -> CachedRow:
        try:
            si, off, n = self._index[str(row_id)]
        except KeyError:
            raise CacheError(
                f"row id {row_id!r} is not in the logit cache {self.folder} ({len(self)} rows); "
                "capture the teacher on this dataset first"
            ) from None
        h = self._handle(si)
        sl = slice(off, off + n)
        return CachedRow(
            positions=h.get_slice("positions")[sl],
            token_ids=h.get_slice("token_ids")[sl],
            topk_ids=h.get_slice("topk_ids")[sl],
            topk_logprobs=h.get_slice("topk_logprobs")[sl].astype(np.float32),
            tail=h.get_slice("tail")[sl],
        )

    def __iter__(self) -> Iterator[tuple[str, CachedRow]]:
        for rid in self._index:
            yield rid, self.get(rid)

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self._shards) + (self.folder / META_FILE).stat().st_size

    def summary(self) -> dict[str, Any]:
        """What the UI shows about a cache."""
        positions = sum(n for _, _, n in self._index.values())
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
