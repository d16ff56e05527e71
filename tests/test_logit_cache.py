"""The teacher logit cache: compact binary shards, one row index, random access by row id, appendable and resumable,
and version-1 caches still read."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest

from core.train import logit_cache as lc
from core.train.logit_cache import CacheError, CacheMeta, LogitCache, LogitCacheWriter

V_QWEN = 151_936


def _meta(**kw) -> CacheMeta:
    base = {"teacher": "tiny-teacher", "tokenizer_hash": "abc123", "vocab_size": 1024, "k": 4, "temperature": 1.0}
    base.update(kw)
    return CacheMeta(**base)


def _row(seed: int, n: int, k: int = 4, vocab: int = 1024, start: int | None = None, boost: float = 6.0):
    """A teacher's top-k over `n` answer tokens: a few hundred candidates, the answer token boosted by up to `boost`
    (0: a flat teacher). The forced token is the sampled answer: mostly in the top-k, sometimes not."""
    rng = np.random.default_rng(seed)
    cand = rng.choice(vocab, size=min(vocab, 300), replace=False)
    logits = rng.normal(size=(n, cand.size)) * 1.5
    answer = rng.integers(0, cand.size, n)
    logits[np.arange(n), answer] += rng.uniform(0, boost, n)
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    order = np.argsort(-lp, axis=-1)[:, :k]
    top = np.take_along_axis(lp, order, -1)
    start = int(rng.integers(3, 20)) if start is None else start
    return {
        "positions": np.arange(start, start + n),
        "token_ids": cand[answer],
        "topk_ids": cand[order],
        "topk_logprobs": top,
        "tail": 1 - np.exp(top).sum(-1),
    }


def _check_close(got, want, derived_tol=lc.DERIVED_TOLERANCE):
    """Stored 16-bit log-probs: within half a step (2^-12) in log space; the derived one of top-1 and tail (the
    larger) within DERIVED_TOLERANCE."""
    assert np.array_equal(got.positions, want["positions"])
    assert np.array_equal(got.token_ids, want["token_ids"])
    assert np.array_equal(got.topk_ids, want["topk_ids"])
    assert got.topk_logprobs.dtype == np.float32 and got.tail.dtype == np.float32
    err = np.abs(got.topk_logprobs.astype(np.float64) - want["topk_logprobs"])
    assert err[:, 1:].max() <= lc.LOG_STEP / 2 + 1e-6
    tail_err = np.abs(np.log(got.tail) - np.log(want["tail"]))
    assert np.maximum(err[:, 0], tail_err).max() <= derived_tol + 1e-6
    assert np.minimum(err[:, 0], tail_err).max() <= lc.LOG_STEP / 2 + 1e-6


def test_rows_come_back_by_id_in_any_order(tmp_path):
    rows = {f"row-{i}": _row(i, n=5 + i, boost=0.0 if i % 5 == 0 else 6.0) for i in range(25)}
    with LogitCacheWriter(tmp_path / "c", _meta(), shard_rows=4) as w:
        for rid, r in rows.items():
            w.add(rid, **r)
    cache = LogitCache(tmp_path / "c")
    assert len(cache) == 25 and cache.meta.rows == 25 and cache.meta.version == 2
    assert cache.meta.positions == sum(len(r["positions"]) for r in rows.values())
    assert sorted(cache.ids()) == sorted(rows)
    order = list(rows)
    random.Random(0).shuffle(order)
    for rid in order:
        _check_close(cache.get(rid), rows[rid])
    assert "row-3" in cache and "row-99" not in cache
    # A DataLoader worker gets its own copy (maps and file handles are not shared).
    clone = pickle.loads(pickle.dumps(cache))
    assert np.array_equal(clone.get("row-7").topk_ids, rows["row-7"]["topk_ids"])


def test_tokens_outside_the_topk_gaps_in_positions_and_unsorted_topk_round_trip(tmp_path):
    r = _row(1, n=30, k=5)
    r["token_ids"][[0, 7, 29]] = [1023, 0, 555]  # forced tokens the teacher did not rank (escapes)
    r["positions"] = np.concatenate([np.arange(4, 14), np.arange(40, 60)])  # two answer turns
    perm = np.random.default_rng(0).permutation(5)
    shuffled = dict(r, topk_ids=r["topk_ids"][:, perm], topk_logprobs=r["topk_logprobs"][:, perm])
    with LogitCacheWriter(tmp_path / "c", _meta(k=5)) as w:
        w.add("a", **shuffled)
        w.add("empty", [], [], np.zeros((0, 5)), np.zeros((0, 5)))
        w.add("no-tail", **dict(r, tail=[None] * 30))  # a backend that gives no tail: 1 − Σ top-k
    cache = LogitCache(tmp_path / "c")
    _check_close(cache.get("a"), r)  # read back highest log-prob first, ids moved with their log-probs
    _check_close(cache.get("no-tail"), r)
    assert len(cache.get("empty")) == 0


def test_payload_is_binary_and_at_most_45_bytes_per_token_at_k10(tmp_path):
    """At k = 10 and Qwen's 151,936-token vocabulary: 18-bit ids, 16-bit log-probs with the top-1 derived, no
    per-token positions: ≤ 45 B/token including the index and sidecar (version 1 took ~72)."""
    meta = _meta(k=10, vocab_size=V_QWEN)
    with LogitCacheWriter(tmp_path / "c", meta, shard_rows=64) as w:
        for i in range(64):
            w.add(f"r{i}", **_row(i, n=200, k=10, vocab=V_QWEN))
    cache = LogitCache(tmp_path / "c")
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files == ["index.bin", "meta.json", "shard-000000.bin"]
    # The sidecar holds settings and counts only, no per-token payload.
    meta_json = json.loads((tmp_path / "c" / "meta.json").read_text())
    assert meta_json["k"] == 10 and meta_json["positions"] == 64 * 200 and len(json.dumps(meta_json)) < 1000
    assert cache.summary()["bytes_per_token"] <= 45.0
    _check_close(cache.get("r5"), _row(5, n=200, k=10, vocab=V_QWEN))


def test_zstd_is_optional_and_float32_storage_is_exact(tmp_path):
    rows = {f"r{i}": _row(i, n=50, k=8) for i in range(10)}
    for name, kw in (("z", {"compression": "zstd"}), ("f", {"logprob_dtype": "float32"})):
        with LogitCacheWriter(tmp_path / name, _meta(k=8, **kw)) as w:
            for rid, r in rows.items():
                w.add(rid, **r)
    z, f = LogitCache(tmp_path / "z"), LogitCache(tmp_path / "f")
    for rid, r in rows.items():
        _check_close(z.get(rid), r)
        got = f.get(rid)
        assert np.allclose(got.topk_logprobs, r["topk_logprobs"], rtol=1e-6, atol=1e-7)
        assert np.allclose(got.tail, r["tail"], rtol=1e-6)
    with pytest.raises(CacheError, match="compression"):
        LogitCacheWriter(tmp_path / "bad", _meta(compression="lz4"))


@pytest.mark.parametrize("support", ["tail_bucket", "renormalize"])
def test_kd_loss_from_the_cache_matches_full_precision(tmp_path, support):
    """The KD loss a trainer computes from cached (16-bit) teacher data is within 1e-3 relative of the loss from the
    captured float64 values, for every divergence, on peaked and flat teachers alike."""
    torch = pytest.importorskip("torch")
    from core.train.kd_losses import DIVERGENCES, KdLossSpec, topk_kd_loss

    rows = {f"r{i}": _row(100 + i, n=64, k=10, boost=[0.0, 3.0, 8.0, 14.0][i % 4]) for i in range(8)}
    with LogitCacheWriter(tmp_path / "c", _meta(k=10)) as w:
        for rid, r in rows.items():
            w.add(rid, **r)
    cache = LogitCache(tmp_path / "c")
    student = torch.randn(len(rows), 64, 1024, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = torch.ones(len(rows), 64, dtype=torch.bool)

    def stack(get):
        return [torch.stack([torch.as_tensor(np.asarray(get(rid, f)), dtype=dt) for rid in rows])
                for f, dt in (("topk_ids", torch.long), ("topk_logprobs", torch.float64), ("tail", torch.float64))]

    exact = stack(lambda rid, f: rows[rid][f])
    cached = stack(lambda rid, f: getattr(cache.get(rid), f))
    for kind in DIVERGENCES:
        spec = KdLossSpec(divergence=kind, support=support, beta=0.3, alpha=0.2)
        want, _ = topk_kd_loss(student, exact[0], exact[1], mask, spec, teacher_tail=exact[2])
        got, _ = topk_kd_loss(student, cached[0], cached[1], mask, spec, teacher_tail=cached[2])
        assert got.item() == pytest.approx(want.item(), rel=1e-3), kind


def test_opening_reads_the_index_not_the_shards(tmp_path, monkeypatch):
    """Open + fetch touches the index and one row's bytes: no shard table is read once a writer has closed."""
    with LogitCacheWriter(tmp_path / "c", _meta(), shard_rows=2) as w:
        for i in range(9):
            w.add(f"r{i}", **_row(i, 6))

    def no_tables(path):
        raise AssertionError(f"read the row table of {path.name}")

    monkeypatch.setattr(lc, "_shard_table", no_tables)
    cache = LogitCache(tmp_path / "c")
    assert len(cache) == 9
    _check_close(cache.get("r4"), _row(4, 6))


def test_append_resumes_and_skips_ids_already_captured(tmp_path):
    folder = tmp_path / "c"
    w = LogitCacheWriter(folder, _meta(), shard_rows=3)
    for i in range(7):
        w.add(f"r{i}", **_row(i, 6))
    # Crash: the 7th row was never flushed (2 full shards of 3 written), and no index was written.
    del w
    (folder / "shard-000009.bin.tmp").write_bytes(b"torn")
    partial = LogitCache(folder)  # a reader finds the shards the index does not cover yet
    assert sorted(partial.ids()) == [f"r{i}" for i in range(6)]
    w2 = LogitCacheWriter(folder, _meta(), shard_rows=3)
    assert w2.row_ids == {f"r{i}" for i in range(6)}
    assert not list(folder.glob("*.tmp"))
    for i in range(6, 10):
        if f"r{i}" not in w2:
            w2.add(f"r{i}", **_row(i, 6))
    w2.close()
    cache = LogitCache(folder)
    assert sorted(cache.ids()) == sorted(f"r{i}" for i in range(10))
    assert cache.meta.rows == 10 and cache.meta.positions == 60
    assert np.array_equal(cache.get("r6").token_ids, _row(6, 6)["token_ids"])
    # Appending again keeps what the index holds.
    with LogitCacheWriter(folder, _meta(), shard_rows=3) as w3:
        w3.add("r10", **_row(10, 6))
    assert len(LogitCache(folder)) == 11 and LogitCache(folder).meta.positions == 66


def test_version_1_caches_are_read_and_appended_in_their_own_format(tmp_path):
    """A cache written by the version-1 writer (safetensors shards) reads back as before, through the same API."""
    rows = {f"old-{i}": _row(i, n=8) for i in range(5)}
    with LogitCacheWriter(tmp_path / "c", _meta(), shard_rows=2, version=1) as w:
        for rid, r in rows.items():
            w.add(rid, **r)
    assert sorted(p.suffix for p in (tmp_path / "c").glob("shard-*")) == [".safetensors"] * 3
    assert json.loads((tmp_path / "c" / "meta.json").read_text())["version"] == 1
    with LogitCacheWriter(tmp_path / "c", _meta(), shard_rows=2) as w:  # resuming stays in version 1
        w.add("new", **_row(9, n=8))
    cache = LogitCache(tmp_path / "c")
    assert cache.meta.version == 1 and len(cache) == 6
    for rid, r in {**rows, "new": _row(9, n=8)}.items():
        got = cache.get(rid)
        assert np.array_equal(got.positions, r["positions"])
        assert np.array_equal(got.token_ids, r["token_ids"])
        assert np.array_equal(got.topk_ids, r["topk_ids"])
        assert np.allclose(got.topk_logprobs, r["topk_logprobs"], atol=2e-2)  # fp16 storage
        assert np.allclose(got.tail, r["tail"], atol=1e-7)  # fp32
    assert cache.summary()["positions"] == 48


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
    big = _row(3, 3)
    big["topk_ids"][0, 0] = 5000
    with pytest.raises(CacheError, match="0..1023"):
        w.add("c", **big)
    w.close()
    with pytest.raises(CacheError, match="not in the logit cache"):
        LogitCache(tmp_path / "c").get("zzz")
    with pytest.raises(CacheError, match="run a capture job first"):
        LogitCache(tmp_path / "nothing")
