"""Whole-dataset operations streamed in bounded memory (issue 17): the streamed versions give what the in-memory ones
give, JSON arrays are read element by element (detection reads a prefix only), and a stop leaves nothing behind.
Memory itself is measured by bench/data.py, not here."""

from __future__ import annotations

import json
import random

import pytest

import core.data.digests as digests
import core.data.jsonarray as jsonarray
from core.data.errors import DataError
from core.data.io import iter_records, write_records
from core.data.ops import balance, balance_dataset, dedupe, dedupe_dataset, split_dataset
from core.data.rows import iter_jsonl_rows
from core.data.stats import STAT_FIELDS, compute_stats
from core.data.store import detect_file, import_file, save_rows
from core.data.stream import Stopped, Tracker

CATS = ["Math", "Code Generation", "Writing", None]


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = f"Question {rng.randint(0, n // 3)}" + (" " if rng.random() < 0.2 else "")
        row = {"id": f"r{i}", "instruction": q.upper() if rng.random() < 0.2 else q,
               "output": rng.choice(["yes", "no", "", "maybe " * rng.randint(0, 9)])}
        if rng.random() < 0.3:
            row["question_id"] = f"g{rng.randint(0, n // 4)}"
        if rng.random() < 0.8:
            row["category"] = rng.choice(CATS)
        if rng.random() < 0.1:
            row["messages"] = [{"role": "user", "content": q}, {"role": "assistant", "content": "a"}]
        out.append(row)
    return out


@pytest.fixture
def small_buckets(monkeypatch):
    """Digests spill to disk after 40 entries and buckets are read 16 entries at a time: the paths a 100 GB file
    takes, on 600 rows."""
    monkeypatch.setattr(digests, "MEMORY_BYTES", 40 * 24)
    monkeypatch.setattr(digests, "BUCKET_ROWS", 16)


def _leftovers(ws) -> list[str]:
    return sorted(p.name for p in ws.datasets.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------------------------------- dedupe / split


@pytest.mark.parametrize("by", ["instruction", "instruction_output", "content"])
def test_streamed_dedupe_keeps_first_occurrences_as_the_list_version_does(workspace, small_buckets, by):
    rows = _rows(600)
    save_rows(workspace, "d", rows, created_by="test")
    kept, removed = dedupe(rows, by)
    name, n_kept, n_removed = dedupe_dataset(workspace, "d", by)
    written = list(iter_jsonl_rows(workspace.datasets / f"{name}.jsonl"))
    assert [r["id"] for r in written] == [r["id"] for r in kept] and written == kept
    assert (n_kept, n_removed) == (len(kept), len(removed)) and n_removed > 50
    assert _leftovers(workspace) == []  # the spilled digests are gone


def test_streamed_split_matches_the_list_split_and_ignores_file_order(workspace, tmp_path):
    from core.data.ops import split

    rows = _rows(800)
    save_rows(workspace, "s", rows, created_by="test")
    tr, ev = split(rows, 0.3, seed=5)
    tn, nt, en, ne = split_dataset(workspace, "s", 0.3, seed=5)
    assert list(iter_jsonl_rows(workspace.datasets / f"{tn}.jsonl")) == tr
    assert list(iter_jsonl_rows(workspace.datasets / f"{en}.jsonl")) == ev and (nt, ne) == (len(tr), len(ev))
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    src = tmp_path / "shuffled.jsonl"
    write_records(src, shuffled)
    _, _, en2, _ = split_dataset(workspace, str(src), 0.3, seed=5, confined=False)
    assert {r["id"] for r in iter_jsonl_rows(workspace.datasets / f"{en2}.jsonl")} == {r["id"] for r in ev}


def test_balance_streamed_writes_what_the_list_version_returns(workspace):
    rows = _rows(500)
    save_rows(workspace, "b", rows, created_by="test")
    shares = {"Math": 0.5, "Writing": 0.3, "Others": 0.2}
    want, rep = balance(rows, shares, total=700, seed=3, upsample=True)
    name, n, rep2 = balance_dataset(workspace, "b", shares, total=700, seed=3, upsample=True)
    assert list(iter_jsonl_rows(workspace.datasets / f"{name}.jsonl")) == want and n == len(want)
    assert (rep2.before, rep2.after, rep2.target, rep2.short) == (rep.before, rep.after, rep.target, rep.short)
    assert any(r["id"].endswith("~2") for r in want) and _leftovers(workspace) == []
    save_rows(workspace, "plain", [{"id": "1", "instruction": "q"}], created_by="test")
    with pytest.raises(DataError, match="has no 'category' column"):
        balance_dataset(workspace, "plain", shares)


def test_a_stop_mid_pass_writes_nothing(workspace, small_buckets):
    save_rows(workspace, "d", _rows(5000), created_by="test")
    before = sorted(p.name for p in workspace.datasets.iterdir())
    for op in (lambda t: dedupe_dataset(workspace, "d", track=t), lambda t: split_dataset(workspace, "d", 0.2, track=t),
               lambda t: balance_dataset(workspace, "d", {"Math": 1}, track=t)):
        checks = []
        track = Tracker(should_stop=lambda checks=checks: checks.append(1) or len(checks) > 2)
        with pytest.raises(Stopped):
            op(track)
        assert 2048 <= track.done < 5000  # stopped in the first pass, at its third look at the flag
        assert sorted(p.name for p in workspace.datasets.iterdir()) == before  # no dataset, no temporary file


# ---------------------------------------------------------------------------------------------------------- stats


def _stats_in_memory(rows: list[dict]) -> dict:
    """The whole-list statistics the streamed pass must reproduce on a small file."""
    from core.data.ops import dedupe_key
    from core.data.rows import field_text

    fields = {}
    for name in STAT_FIELDS:
        lens = [len(field_text(r, name)) for r in rows if r.get(name) is not None]
        empty = sum(1 for r in rows if r.get(name) is not None and not field_text(r, name).strip())
        fields[name] = (len(lens), empty, lens)
    ins = [dedupe_key(r, "instruction") for r in rows]
    pairs = [dedupe_key(r, "instruction_output") for r in rows]
    return {"rows": len(rows), "fields": fields, "dup_ins": len(ins) - len(set(ins)),
            "dup_pairs": len(pairs) - len(set(pairs)), "multi": sum(1 for r in rows if r.get("messages"))}


def test_stats_equal_the_in_memory_computation_on_a_small_file(tmp_path, small_buckets):
    rows = _rows(700)
    p = tmp_path / "s.jsonl"
    write_records(p, rows)
    st = compute_stats(p)
    ref = _stats_in_memory(rows)
    assert (st.rows, st.duplicate_instructions, st.duplicate_pairs, st.multi_turn) == \
        (ref["rows"], ref["dup_ins"], ref["dup_pairs"], ref["multi"])
    for name, (present, empty, lens) in ref["fields"].items():
        fs = st.fields[name]
        assert (fs.present, fs.empty, fs.chars, fs.max_chars) == (present, empty, lens, max(lens, default=0))
    by_name = {r[0]: r for r in st.summary_rows()}
    out = ref["fields"]["output"]
    assert by_name["output"] == ["output", out[0], out[1], 700 - out[0], round(sum(out[2]) / out[0], 1), max(out[2])]
    assert type(st).from_dict(json.loads(json.dumps(st.to_dict()))) == st  # what a job hands the tab


def test_stats_of_a_big_file_keep_a_bounded_even_sample(tmp_path, monkeypatch):
    import core.data.stats as stats

    monkeypatch.setattr(stats, "CHAR_SAMPLE", 64)
    p = tmp_path / "b.jsonl"
    write_records(p, [{"id": str(i), "instruction": "x" * (i % 97)} for i in range(10_000)])
    fs = compute_stats(p).fields["instruction"]
    assert fs.present == 10_000 and 64 <= len(fs.chars) < 128 and fs.max_chars == 96
    assert fs.chars == [(i * fs.stride) % 97 for i in range(len(fs.chars))]  # every stride-th row, from the first


# ---------------------------------------------------------------------------------------------------- JSON arrays


def _value(rng: random.Random, depth: int = 0):
    c = rng.random()
    if depth > 2 or c < 0.35:
        return rng.choice([rng.randint(-10**6, 10**6), rng.random() * 1e5, 1e-7, -2.5e300, 12345678901234567890,
                           "é中\"\\ \u2028" * rng.randint(0, 3), None, True, False])
    if c < 0.65:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}é": _value(rng, depth + 1) for i in range(rng.randint(0, 4))}


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_json_array_read_in_small_chunks_is_the_array(tmp_path, monkeypatch, chunk):
    """Every record cut anywhere by the read buffer (inside a number, a string, an escape, a multi-byte character)
    decodes as json.loads decodes the whole file; a truncated file is always an error."""
    monkeypatch.setattr(jsonarray, "CHUNK", chunk)
    rng = random.Random(chunk)
    p = tmp_path / "a.json"
    for _ in range(60):
        arr = [_value(rng) for _ in range(rng.randint(0, 7))]
        text = json.dumps(arr, ensure_ascii=False, indent=rng.choice([None, 2]))
        p.write_text(text, encoding="utf-8")
        assert [v for _, _, v in jsonarray.iter_array(p)] == arr
        p.write_text(text[: rng.randint(1, len(text) - 1)], encoding="utf-8")
        with pytest.raises(DataError, match="not valid JSON"):
            list(jsonarray.iter_array(p))


def test_json_array_errors_say_line_column_and_record_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonarray, "CHUNK", 5)
    p = tmp_path / "broken.json"
    p.write_text('[\n  {"instruction": "a"},\n  {"instruction": "b",, "output": 1},\n  {"instruction": "c"}\n]\n')
    with pytest.raises(DataError, match=r"line 3, column 23 \(record 2 of the array\): Expecting property name"):
        list(iter_records(p))
    p.write_text('[{"a": 1}, {"a": 2} {"a": 3}]')
    with pytest.raises(DataError, match=r"at line 1: expected ',' or ']' after record 2 of the array"):
        list(iter_records(p))
    lines = [json.dumps({"instruction": f"q{i} " + "pad" * 40}).encode() for i in range(400)]
    lines[350] = '{"instruction": "café?"}'.encode("latin-1")
    p.write_bytes(b"[\n" + b",\n".join(lines) + b"\n]\n")
    with pytest.raises(DataError, match=r"byte 0xE9 at line 352, column 21 is not UTF-8; it looks like Latin-1"):
        list(iter_records(p))


def test_detecting_a_json_array_reads_a_prefix_only(tmp_path):
    """A 1 MB tail of garbage after 60 good records: detection (50 records) never reaches it; an import does."""
    good = ",\n".join(json.dumps({"question": f"q{i}", "answer": f"a{i}"}) for i in range(60))
    p = tmp_path / "big.json"
    p.write_text("[\n" + good + ",\n" + "{not json at all " * 60_000, encoding="utf-8")
    det, recs = detect_file(p)
    assert det.format == "labeled" and len(recs) == 50 and recs[-1].line == 51 and recs[-1].index == 50
    with pytest.raises(DataError, match=r"record 61 of the array"):
        import_file_to(tmp_path, p)


def import_file_to(tmp_path, src):
    from core.workspace import Workspace

    return import_file(Workspace.open(tmp_path / "ws"), src, "big")


def test_repeat_finder_agrees_with_a_set_at_every_spill_and_chunk_size(monkeypatch):
    rng = random.Random(0)
    for memory_rows, bucket_rows in ((1 << 20, 1 << 20), (5, 7), (1000, 3), (13, 50)):
        monkeypatch.setattr(digests, "MEMORY_BYTES", memory_rows * 24)
        monkeypatch.setattr(digests, "BUCKET_ROWS", bucket_rows)
        for _ in range(30):
            keys = [str(rng.randint(0, rng.choice([3, 50, 1000]))) for _ in range(rng.randint(0, 300))]
            finder = digests.RepeatFinder(rng.choice([0, len(keys), 20 * len(keys)]))
            for i, k in enumerate(keys):
                finder.add(k, i)
            got = sorted((int(r), int(f)) for rep, first in finder.repeats() for r, f in zip(rep, first, strict=True))
            first_of: dict[str, int] = {}
            want = [(i, first_of[k]) for i, k in enumerate(keys) if first_of.setdefault(k, i) != i]
            assert got == want


def test_dedupe_of_a_dataset_with_a_torn_line_and_a_row_without_id(workspace):
    """The second pass copies lines without parsing them: it must skip what the first skipped and give an id-less
    row the id the first gave it."""
    rows = [{"id": "a", "instruction": "Same"}, {"instruction": "other"}, {"id": "c", "instruction": " same"},
            {"id": "d", "instruction": "third"}]
    lines = [json.dumps(r) for r in rows]
    (workspace.datasets / "t.jsonl").write_text("\n".join([lines[0], lines[1], '{"id": "torn', "", *lines[2:]]) + "\n")
    name, kept, removed = dedupe_dataset(workspace, "t")
    got = list(iter_jsonl_rows(workspace.datasets / f"{name}.jsonl"))
    assert (kept, removed) == (3, 1) and [r["instruction"] for r in got] == ["Same", "other", "third"]
    assert got[1]["id"] and got[1]["id"] not in ("a", "c", "d")
    (workspace.datasets / "u.jsonl").write_text("\n".join([lines[0], '{"id": "torn', *lines[2:]]) + "\n")
    name, kept, removed = dedupe_dataset(workspace, "u", out_name="u2")
    assert [r["id"] for r in iter_jsonl_rows(workspace.datasets / "u2.jsonl")] == ["a", "d"] and removed == 1
