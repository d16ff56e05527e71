"""The teacher logit cache: compact binary shards, random access by row id, appendable and resumable."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from core.train.logit_cache import CacheError, CacheMeta, LogitCache, LogitCacheWriter


def _meta(**kw) -> CacheMeta:
    base = {"teacher": "tiny-teacher", "tokenizer_hash": "abc123", "vocab_size": 1024, "k": 4, "temperature": 1.0}
    base.update(kw)
    return CacheMeta(**base)


def _row(seed: int, n: int, k: int = 4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 1024)) * 3
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ids = np.argsort(-lp, axis=-1)[:, :k]
    top = np.take_along_axis(lp, ids, -1)
    start = int(rng.integers(3, 20))
    return {
        "positions": np.arange(start, start + n),
        "token_ids": rng.integers(0, 1024, n),
        "topk_ids": ids,
        "topk_logprobs": top,
        "tail": 1 - np.exp(top).sum(-1),
    }


def test_rows_come_back_by_id_in_any_order(tmp_path):
    rows = {f"row-{i}": _row(i, n=5 + i) for i in range(25)}
    with LogitCacheWriter(tmp_path / "c", _meta(), shard_rows=4) as w:
        for rid, r in rows.items():
            w.add(rid, **r)
    cache = LogitCache(tmp_path / "c")
    assert len(cache) == 25 and cache.meta.rows == 25
    assert cache.meta.positions == sum(len(r["positions"]) for r in rows.values())
    order = list(rows)
    random.Random(0).shuffle(order)
    for rid in order:
        got, want = cache.get(rid), rows[rid]
        assert np.array_equal(got.positions, want["positions"])
        assert np.array_equal(got.token_ids, want["token_ids"])
        assert np.array_equal(got.topk_ids, want["topk_ids"])
        assert np.allclose(got.topk_logprobs, want["topk_logprobs"], atol=2e-2)  # fp16 storage
        assert np.allclose(got.tail, want["tail"], atol=1e-7)  # tail kept in fp32
        assert got.topk_logprobs.dtype == np.float32


def test_payload_is_binary_and_compact(tmp_path):
    with LogitCacheWriter(tmp_path / "c", _meta(k=10), shard_rows=64) as w:
        for i in range(64):
            w.add(f"r{i}", **_row(i, n=40, k=10))
    cache = LogitCache(tmp_path / "c")
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files == ["meta.json", "shard-000000.safetensors"]
    # The sidecar holds settings and counts only, no per-token payload.
    meta = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert meta["k"] == 10 and meta["positions"] == 64 * 40 and len(json.dumps(meta)) < 1000
    # 10 ids (int32) + 10 fp16 log-probs + position + token + tail = 72 bytes/token, plus a small header.
    assert cache.summary()["bytes_per_token"] < 80


def test_append_resumes_and_skips_ids_already_captured(tmp_path):
    folder = tmp_path / "c"
    w = LogitCacheWriter(folder, _meta(), shard_rows=3)
    for i in range(7):
        w.add(f"r{i}", **_row(i, 6))
    # Crash: the 7th row was never flushed (2 full shards of 3 written).
    del w
    (folder / "shard-000009.safetensors.tmp").write_bytes(b"torn")
    w2 = LogitCacheWriter(folder, _meta(), shard_rows=3)
    assert w2.row_ids == {f"r{i}" for i in range(6)}
    assert not list(folder.glob("*.tmp"))
    for i in range(6, 10):
        if f"r{i}" not in w2:
            w2.add(f"r{i}", **_row(i, 6))
    w2.close()
    cache = LogitCache(folder)
    assert sorted(cache.ids()) == sorted(f"r{i}" for i in range(10))
    assert np.array_equal(cache.get("r6").token_ids, _row(6, 6)["token_ids"])


def test_incompatible_settings_are_refused_by_name(tmp_path):
    with LogitCacheWriter(tmp_path / "c", _meta()) as w:
        w.add("a", **_row(0, 3))
    with pytest.raises(CacheError, match=r"k: 4 vs 8"):
        LogitCacheWriter(tmp_path / "c", _meta(k=8))
    cache = LogitCache(tmp_path / "c")
    with pytest.raises(CacheError, match="temperature: cache has 1.0, the job uses 2.0"):
        cache.check_compatible(temperature=2.0)
    cache.check_compatible(temperature=1.0, vocab_size=1024)


def test_bad_rows_and_missing_ids_get_clear_errors(tmp_path):
    w = LogitCacheWriter(tmp_path / "c", _meta())
    w.add("a", **_row(0, 3))
    with pytest.raises(CacheError, match="already in the cache"):
        w.add("a", **_row(1, 3))
    bad = _row(2, 3)
    bad["positions"] = bad["positions"][::-1]
    with pytest.raises(CacheError, match="positions must increase"):
        w.add("b", **bad)
    w.close()
    with pytest.raises(CacheError, match="not in the logit cache"):
        LogitCache(tmp_path / "c").get("zzz")
    with pytest.raises(CacheError, match="run a capture job first"):
        LogitCache(tmp_path / "nothing")
