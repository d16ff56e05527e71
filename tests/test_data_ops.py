"""Paged preview of big files, statistics, split, dedupe, and the `easydistill data` CLI (the list functions; the
streamed workspace operations are compared against them in test_data_stream.py)."""

from __future__ import annotations

import json
import random
import re

from core.cli.main import main as cli
from core.data.io import JsonlAppender, count_lines, write_records
from core.data.ops import dedupe, split
from core.data.preview import find_row, read_page, read_rows, row_count
from core.data.stats import compute_stats
from core.data.store import import_file, load_rows, read_meta


def _big(path, n):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i}", "instruction": f"question {i}", "output": "x" * (i % 50)}) + "\n")


def test_paged_preview_of_100k_rows_and_growth(tmp_path):
    p = tmp_path / "big.jsonl"
    _big(p, 100_000)
    rows, pages = read_page(p, 4000, 20)
    assert pages == 5000 and [r["id"] for r in rows] == [f"r{i}" for i in range(79_980, 80_000)]
    assert read_rows(p, 99_999, 10) == [{"id": "r99999", "instruction": "question 99999", "output": "x" * 49}]
    assert find_row(p, "r12345")[0] == 12345
    # A job appends rows (and is caught mid-line): the index extends and ignores the partial line.
    with open(p, "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "new", "instruction": "q"}) + "\n" + '{"id": "half')
    assert row_count(p) == 100_001
    with JsonlAppender(p) as app:  # repairs the torn line before appending
        app.write({"id": "after", "instruction": "q2"})
    assert row_count(p) == 100_002 and read_rows(p, 100_001, 1)[0]["id"] == "after"
    assert count_lines(p) == 100_002


def test_stats_counts_duplicates_empties_and_tokens(tmp_path, tiny_models):
    p = tmp_path / "d.jsonl"
    write_records(p, [
        {"id": "1", "instruction": "Hello there", "output": "Hi"},
        {"id": "2", "instruction": "hello   there", "output": "Hi"},
        {"id": "3", "instruction": "Hello there", "output": "Other"},
        {"id": "4", "instruction": "Bye", "output": ""},
        {"id": "5", "instruction": "Multi", "messages": [{"role": "user", "content": "a"},
                                                        {"role": "assistant", "content": "b"}]},
    ])
    st = compute_stats(p, tiny_models.teacher)
    assert st.rows == 5 and st.duplicate_instructions == 2 and st.duplicate_pairs == 1
    fields = {r[0]: r for r in st.summary_rows()}
    assert fields["output"][1:4] == [4, 1, 1]  # present, empty, missing
    assert st.multi_turn == 1 and st.tokenizer == "tiny-teacher" and st.token_sample == 5
    assert all(n > 0 for n in st.prompt_tokens) and len(st.output_tokens) == 4


def test_split_is_seeded_complete_and_keeps_groups_together():
    rows = [{"id": f"q{i // 3}-{i % 3}", "question_id": f"q{i // 3}", "instruction": f"q{i // 3}"}
            for i in range(3000)]
    tr, ev = split(rows, 0.1, seed=3)
    tr2, ev2 = split(rows, 0.1, seed=3)
    assert [r["id"] for r in ev] == [r["id"] for r in ev2]
    assert len(tr) + len(ev) == 3000 and 60 <= len(ev) // 3 <= 140  # 1000 groups, 10% each: 100 ± 4 sd
    assert {r["question_id"] for r in tr}.isdisjoint({r["question_id"] for r in ev})
    pos = {r["id"]: i for i, r in enumerate(rows)}
    assert [pos[r["id"]] for r in ev] == sorted(pos[r["id"]] for r in ev)  # file order kept
    _, ev3 = split(rows, 0.1, seed=4)
    assert [r["id"] for r in ev] != [r["id"] for r in ev3]


def test_split_is_stable_under_reordering_and_growth():
    """A row's side depends on its own group and the seed only: shuffle the file, or add rows, and no row moves."""
    rows = [{"id": f"r{i}", "instruction": f"q{i}"} for i in range(2000)]
    _, ev = split(rows, 0.2, seed=7)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    _, ev_shuffled = split(shuffled, 0.2, seed=7)
    assert {r["id"] for r in ev_shuffled} == {r["id"] for r in ev}
    _, ev_grown = split(rows + [{"id": f"new{i}", "instruction": "x"} for i in range(500)], 0.2, seed=7)
    assert {r["id"] for r in ev_grown if r["id"].startswith("r")} == {r["id"] for r in ev}
    assert 0.15 < len(ev) / 2000 < 0.25


def test_split_never_leaves_a_part_empty_when_there_are_two_groups():
    for n in range(2, 12):
        rows = [{"id": f"r{i}", "instruction": "q"} for i in range(n)]
        for share in (0.01, 0.49):
            tr, ev = split(rows, share, seed=0)
            assert tr and ev and len(tr) + len(ev) == n
    one_group = [{"id": f"r{i}", "question_id": "same"} for i in range(5)]
    tr, ev = split(one_group, 0.01)
    assert (len(tr), len(ev)) in ((5, 0), (0, 5))


def test_dedupe_modes():
    rows = [{"id": "a", "instruction": "Same", "output": "1"}, {"id": "b", "instruction": " same ", "output": "2"},
            {"id": "c", "instruction": "Same", "output": "1"}, {"id": "d", "instruction": "Other"}]
    kept, removed = dedupe(rows, "instruction")
    assert [r["id"] for r in kept] == ["a", "d"] and removed == [("b", "a"), ("c", "a")]
    kept, removed = dedupe(rows, "instruction_output")
    assert [r["id"] for r in kept] == ["a", "b", "d"] and removed == [("c", "a")]


def test_cli_import_list_split_export(tmp_path, capsys):
    ws = tmp_path / "ws"
    src = tmp_path / "qa.jsonl"
    write_records(src, [{"q": f"Question {i}?", "a": f"Answer {i}."} for i in range(20)] + [{"q": "", "a": "x"}])
    base = ["--workspace", str(ws), "data"]
    assert cli([*base, "import", str(src), "--name", "qa", "--on-error", "stop", "--map", "instruction=q",
                "--map", "output=a", "--format", "labeled"]) == 2
    assert "qa.jsonl:21: 'q' is empty" in capsys.readouterr().err
    assert cli([*base, "import", str(src), "--name", "qa", "--format", "labeled", "--map", "instruction=q",
                "--map", "output=a"]) == 0
    assert "imported 20 row(s)" in capsys.readouterr().out
    assert cli([*base, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "qa" and listed[0]["rows"] == 20 and listed[0]["rejects"] == 1
    assert cli([*base, "split", "qa", "--eval-share", "0.25", "--seed", "1"]) == 0
    said = re.fullmatch(r"qa-train: (\d+) rows, qa-eval: (\d+) rows\n", capsys.readouterr().out)
    n_train, n_eval = int(said[1]), int(said[2])
    assert n_train + n_eval == 20 and n_train and n_eval
    out = tmp_path / "alpaca.json"
    assert cli([*base, "export", "qa-eval", "--format", "alpaca", "--out", str(out), "--llamafactory"]) == 0
    assert f"{n_eval} row(s) written" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert len(data) == n_eval and set(data[0]) == {"id", "instruction", "input", "output"}
    assert json.loads((tmp_path / "dataset_info.json").read_text())["alpaca"]["file_name"] == "alpaca.json"
    assert cli([*base, "stats", "qa", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 20


def test_workspace_dataset_roundtrip_via_load_rows(workspace, tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("instruction,output\nA,1\nB,2\n", encoding="utf-8")
    import_file(workspace, src, "x")
    rows, errors = load_rows(workspace, "x")
    assert [r["instruction"] for r in rows] == ["A", "B"] and not errors
    assert read_meta(workspace, "x")["format"] == "labeled"
    # A file path (inside the workspace) is read directly, with the same ids as the import produced.
    inside = workspace.root / "x.csv"
    inside.write_text(src.read_text(), encoding="utf-8")
    rows2, _ = load_rows(workspace, "x.csv")
    assert [r["id"] for r in rows2] == [r["id"] for r in rows]
