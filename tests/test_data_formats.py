"""Every supported format: detected, imported into the workspace with ids, and exported back to the same records;
bad records reported with file, line and reason (skipped into rejects, or stopping the import)."""

from __future__ import annotations

import csv
import json

import pytest

from core.data.convert import export_rows, llamafactory_entry, update_dataset_info
from core.data.errors import DataError
from core.data.io import iter_records, write_records
from core.data.rows import iter_jsonl_rows, to_messages
from core.data.store import detect_file, import_file, list_datasets, load_rows, read_meta

ALPACA = [
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Name a prime number.", "input": "", "output": "7", "system": "Be brief."},
    {"instruction": "Continue the story.", "input": "", "output": "And then it rained.",
     "history": [["Start a story.", "Once upon a time."]]},
]
LABELED = [{"instruction": "What is 2+2?", "output": "4"}, {"instruction": "Capital of Italy?", "output": "Rome"}]
INSTRUCTIONS = [{"instruction": "Write a haiku about rain."}, {"instruction": "Explain recursion."}]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}], "system": "Be kind."},
    {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"},
                       {"from": "human", "value": "times 3?"}, {"from": "gpt", "value": "12"}]},
]
MESSAGES = [
    {"messages": [{"role": "user", "content": "Say yes"}, {"role": "assistant", "content": "yes"}]},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "a"},
                  {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
                  {"role": "assistant", "content": "d"}], "category": "Others"},
]
DPO = [
    {"prompt": "Best pet?", "chosen": "A cat, for independence.", "rejected": "idk"},
    {"prompt": "Sum of 1 and 1?", "chosen": "2", "rejected": "3"},
]


def _trace(thought: str, full: str, teacher: str, ok: bool, rv: int, cd: int) -> dict:
    return {"thought": thought, "solution": full.rsplit(" ", 1)[-1], "full_response": full, "teacher": teacher,
            "thought_correctness_verify": ok, "Reasoning_Verbosity": {"level": rv, "judge": "QwQ-32B"},
            "Cognitive_Difficulty": {"level": cd, "judge": "QwQ-32B"}}


OMNI = [
    {"question": "What is 3*4?", "reasoning": [
        _trace("3 times 4 is 12.", "<think>3 times 4 is 12.</think> 12", "QwQ-32B", True, 2, 1),
        _trace("4+4+4 = 12", "<think>4+4+4 = 12</think> 12", "R1", False, 3, 2),
    ]},
    {"question": "Is 7 prime?", "reasoning": [
        _trace("7 has no divisors but 1 and 7.", "<think>...</think> Yes", "R1", True, 1, 1),
    ]},
]

CASES = [  # (records, file name, expected format, export format, rows after import)
    (ALPACA, "alpaca.json", "alpaca", "alpaca", 3),
    (LABELED, "labeled.json", "labeled", "easydistill", 2),
    (INSTRUCTIONS, "instructions.json", "instruction", "easydistill", 2),
    (SHAREGPT, "sharegpt.json", "sharegpt", "sharegpt", 2),
    (MESSAGES, "messages.jsonl", "messages", "messages", 2),
    (DPO, "dpo.jsonl", "dpo", "dpo", 2),
    (OMNI, "omni.json", "omnithought", "omnithought", 3),
]


@pytest.mark.parametrize("records,fname,fmt,export_fmt,n_rows", CASES, ids=[c[2] for c in CASES])
def test_detect_import_and_round_trip(workspace, tmp_path, records, fname, fmt, export_fmt, n_rows):
    src = tmp_path / fname
    write_records(src, records)
    det, _ = detect_file(src)
    assert det.format == fmt

    res = import_file(workspace, src, "ds")
    assert res.format == fmt and res.rows == n_rows and not res.errors
    rows = list(iter_jsonl_rows(workspace.datasets / "ds.jsonl"))
    assert len(rows) == n_rows
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == n_rows and all(ids)
    meta = read_meta(workspace, "ds")
    assert meta["rows"] == n_rows and meta["format"] == fmt and meta["source"] == fname

    # Re-importing the same file gives the same ids (stable across imports).
    import_file(workspace, src, "ds2")
    assert [r["id"] for r in iter_jsonl_rows(workspace.datasets / "ds2.jsonl")] == ids

    out = tmp_path / f"back{src.suffix}"
    result = export_rows(rows, export_fmt, out, keep_id=False)
    assert not result.skipped
    back = [r.value for r in iter_records(out)]
    assert back == records


def test_canonical_rows_per_format(workspace, tmp_path):
    """What downstream code relies on: instruction/output/system, messages for multi-turn, flattened traces."""
    for records, fname, *_ in CASES:
        write_records(tmp_path / fname, records)
    import_file(workspace, tmp_path / "alpaca.json", "alpaca")
    rows, _ = load_rows(workspace, "alpaca")
    assert to_messages(rows[0]) == [{"role": "user", "content": "Translate to French.\nGood morning"},
                                    {"role": "assistant", "content": "Bonjour"}]
    assert rows[1]["system"] == "Be brief."
    assert [m["role"] for m in rows[2]["messages"]] == ["user", "assistant", "user", "assistant"]

    import_file(workspace, tmp_path / "sharegpt.json", "sg")
    rows, _ = load_rows(workspace, "sg")
    assert rows[0]["instruction"] == "Hi" and rows[0]["output"] == "Hello!" and rows[0]["system"] == "Be kind."
    assert "messages" not in rows[0]
    assert rows[1]["instruction"] == "times 3?" and rows[1]["output"] == "12" and len(rows[1]["messages"]) == 4

    import_file(workspace, tmp_path / "omni.json", "omni")
    rows, _ = load_rows(workspace, "omni")
    assert [(r["instruction"], r["rv"], r["cd"], r["correctness"]) for r in rows] == [
        ("What is 3*4?", 2, 1, 1), ("What is 3*4?", 3, 2, 0), ("Is 7 prime?", 1, 1, 1)]
    assert rows[0]["question_id"] == rows[1]["question_id"] != rows[2]["question_id"]
    assert rows[0]["thought"] == "3 times 4 is 12." and rows[0]["teacher"] == "QwQ-32B"

    import_file(workspace, tmp_path / "dpo.jsonl", "dpo")
    rows, _ = load_rows(workspace, "dpo")
    assert rows[1] == {"id": rows[1]["id"], "instruction": "Sum of 1 and 1?", "chosen": "2", "rejected": "3"}
    assert {d.name for d in list_datasets(workspace)} == {"alpaca", "sg", "omni", "dpo"}


def test_csv_and_parquet_with_column_mapping(workspace, tmp_path):
    """Other column names: detected where obvious (question/answer), corrected by a mapping otherwise."""
    src = tmp_path / "qa.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer", "topic"])
        w.writerow(["Why is the sky blue?", "Rayleigh scattering.", "physics"])
        w.writerow(["Multi\nline question?", "yes", "misc"])
    det, _ = detect_file(src)
    assert det.format == "labeled" and det.mapping == {"instruction": "question", "output": "answer"}
    import_file(workspace, src, "qa")
    rows, _ = load_rows(workspace, "qa")
    assert rows[1]["instruction"] == "Multi\nline question?" and rows[1]["topic"] == "misc"

    pq = tmp_path / "odd.parquet"
    write_records(pq, [{"q": "Hello?", "a": "Hi.", "x": 1}, {"q": "Bye?", "a": "Bye.", "x": 2}])
    assert detect_file(pq)[0].format is None
    res = import_file(workspace, pq, "odd", fmt="labeled", mapping={"instruction": "q", "output": "a"})
    rows, _ = load_rows(workspace, "odd")
    assert res.rows == 2 and rows[0]["instruction"] == "Hello?" and rows[0]["output"] == "Hi." and rows[0]["x"] == 1

    export_rows(rows, "messages", tmp_path / "m.parquet")
    back = [r.value for r in iter_records(tmp_path / "m.parquet")]
    assert back[1]["messages"][1] == {"role": "assistant", "content": "Bye."}


def _bad_jsonl(path):
    lines = [
        json.dumps({"instruction": "ok 1", "output": "a"}),
        "{not json",
        json.dumps({"instruction": "", "output": "empty instruction"}),
        json.dumps({"instruction": "ok 2", "output": "b"}),
        json.dumps({"instruction": ["a list"], "output": "c"}),
        "",
        json.dumps([1, 2]),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_bad_rows_skip_into_rejects_with_lines(workspace, tmp_path):
    src = tmp_path / "bad.jsonl"
    _bad_jsonl(src)
    res = import_file(workspace, src, "bad", on_error="skip")
    assert res.rows == 2
    assert [(e.line, e.file) for e in res.errors] == [(2, "bad.jsonl"), (3, "bad.jsonl"), (5, "bad.jsonl"),
                                                      (7, "bad.jsonl")]
    reasons = [e.reason for e in res.errors]
    assert "not valid JSON" in reasons[0] and "'instruction' is empty" in reasons[1]
    assert "must be text" in reasons[2] and "JSON object" in reasons[3]
    rejected = [json.loads(x) for x in (workspace.datasets / "bad.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 3, 5, 7] and all(r["reason"] for r in rejected)


def test_bad_rows_stop_lists_everything_and_writes_nothing(workspace, tmp_path):
    src = tmp_path / "bad.jsonl"
    _bad_jsonl(src)
    with pytest.raises(DataError) as ei:
        import_file(workspace, src, "bad", fmt="labeled", on_error="stop")
    assert [e.line for e in ei.value.errors] == [2, 3, 5, 7]
    assert "bad.jsonl:2:" in ei.value.report()
    assert not (workspace.datasets / "bad.jsonl").exists()


def test_json_array_errors_name_the_line(workspace, tmp_path):
    src = tmp_path / "arr.json"
    src.write_text('[\n  {"instruction": "a"},\n  {"instruction": 5.5},\n  {"instruction": {"x": 1}}\n]\n')
    res = import_file(workspace, src, "arr")
    assert res.rows == 1 and [(e.line, e.record) for e in res.errors] == [(3, 2), (4, 3)]
    assert "must be text, got the number 5.5" in res.errors[0].reason and "got an object" in res.errors[1].reason
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"instruction": "a"},\n  {"instruction": "b"\n]\n')
    with pytest.raises(DataError, match="line 4"):
        import_file(workspace, broken, "broken")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        import_file(workspace, tmp_path / "x.txt", "x")
    with pytest.raises(DataError, match="not a valid dataset name"):
        import_file(workspace, src, "../escape")


def test_sharegpt_bad_roles_and_llamafactory_entry(workspace, tmp_path):
    src = tmp_path / "sg.json"
    write_records(src, [{"conversations": [{"from": "robot", "value": "beep"}]}, SHAREGPT[0]])
    res = import_file(workspace, src, "sg")
    assert res.rows == 1 and "unknown from 'robot'" in res.errors[0].reason and res.errors[0].line == 2

    info = update_dataset_info(tmp_path, "mine", llamafactory_entry("mine.json", "sharegpt"))
    update_dataset_info(tmp_path, "other", llamafactory_entry("other.json", "alpaca"))
    data = json.loads(info.read_text())
    assert data["mine"]["formatting"] == "sharegpt" and data["mine"]["columns"]["messages"] == "conversations"
    assert data["other"]["columns"]["prompt"] == "instruction"


def test_export_skips_rows_a_format_cannot_hold(tmp_path):
    rows = [{"id": "a", "instruction": "q", "output": "x"}, {"id": "b", "instruction": "q2", "chosen": "y",
                                                              "rejected": "z"}]
    res = export_rows(rows, "dpo", tmp_path / "d.jsonl")
    assert res.written == 1 and res.skipped == [("a", "no chosen/rejected pair")]
