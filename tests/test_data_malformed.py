"""A corpus of malformed files, as people bring them: each is refused or reported by name, line and record — never a
traceback, never a row lost or garbled silently — through `data detect`, `data import`, `validate` and `--config`."""

from __future__ import annotations

import csv
import gzip
import json

import pytest
import yaml

from core.cli.main import main as cli
from core.config import ConfigError, load_config_file
from core.data.errors import DataError
from core.data.io import iter_records
from core.data.rows import iter_jsonl_rows
from core.data.store import detect_file, import_file

ROWS = [{"instruction": f"Question {i}?", "output": f"Answer {i}."} for i in range(3)]
JSONL = "\n".join(json.dumps(r) for r in ROWS) + "\n"

NOT_TEXT = {  # file name -> (bytes, what the message must say it looks like)
    "utf16.jsonl": (JSONL.encode("utf-16"), "UTF-16"),
    "utf16-nobom.csv": ("instruction,output\nhi,yo\n".encode("utf-16-le"), "UTF-16"),
    "utf16.json": (json.dumps(ROWS).encode("utf-16"), "UTF-16"),
    "latin1.csv": ("instruction,output\ncafé?,oui\n".encode("latin-1"), "Latin-1"),
    "gbk.csv": ("instruction,output\n你好吗？,很好\n".encode("gbk"), "GBK"),
    "binary.jsonl": (bytes(range(256)) * 8, "binary"),
    "packed.jsonl": (gzip.compress(JSONL.encode()), "gzip"),
    "table.json": (b"PAR1" + b"\x00" * 64, "Parquet"),
}


@pytest.mark.parametrize("fname", sorted(NOT_TEXT))
def test_files_that_are_not_utf8_text_are_named_and_refused(workspace, tmp_path, capsys, fname):
    data, looks = NOT_TEXT[fname]
    src = tmp_path / fname
    src.write_bytes(data)
    for action in (lambda: detect_file(src), lambda: import_file(workspace, src, "x")):
        with pytest.raises(DataError) as ei:
            action()
        assert fname in str(ei.value) and "not UTF-8 text" in str(ei.value) and looks in str(ei.value)
    base = ["--workspace", str(workspace.root), "data"]
    for args in (["detect", str(src)], ["import", str(src)]):
        assert cli([*base, *args]) == 2
        err = capsys.readouterr().err
        assert "not UTF-8 text" in err and looks in err and "Traceback" not in err
    assert not (workspace.datasets / "x.jsonl").exists()


@pytest.mark.parametrize("encoding,looks", [("utf-16", "UTF-16"), ("latin-1", "Latin-1")])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_files_that_are_not_utf8_say_so(tmp_path, capsys, encoding, looks, suffix):
    cfg = {"job_type": "kd_black_box_train_only", "dataset": {"labeled_path": "café.json"}}
    path = tmp_path / f"job{suffix}"
    text = json.dumps(cfg, ensure_ascii=False) if suffix == ".json" else yaml.safe_dump(cfg, allow_unicode=True)
    path.write_bytes(text.encode(encoding))
    with pytest.raises(ConfigError) as ei:
        load_config_file(path)
    assert "not UTF-8 text" in ei.value.report() and looks in ei.value.report()
    for args in (["validate", "--config", str(path)], ["--config", str(path)]):
        assert cli(args) == 2
        err = capsys.readouterr().err
        assert "not UTF-8 text" in err and path.name in err and "Traceback" not in err


def test_v1_config_without_job_type_asks_for_job_type(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"dataset": {"labeled_path": "x.json"}, "training": {"num_train_epochs": 1}}))
    with pytest.raises(ConfigError, match="'job_type' is missing") as ei:
        load_config_file(path)
    assert "'kind'" not in ei.value.report()
    path.write_text(json.dumps({"dataset": "x"}))
    path.write_text(json.dumps({"name": "x"}))
    with pytest.raises(ConfigError, match="neither 'kind'.*nor 'job_type'"):
        load_config_file(path)


def test_v1_values_of_the_wrong_kind_are_named_not_coerced(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps(ROWS))
    (tmp_path / "s").mkdir()
    cfg = {"job_type": "kd_black_box_train_only", "dataset": {"labeled_path": "l.json"}, "models": {"student": "s"},
           "training": {"num_train_epochs": [1], "max_steps": 3.7, "seed": 1e999, "lr_scheduler_type": {"a": 1}}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(cfg).replace("Infinity", "1e999"))
    with pytest.raises(ConfigError) as ei:
        load_config_file(path)
    problems = "\n".join(ei.value.problems)
    assert "'training.num_train_epochs' = a list: expected a number" in problems
    assert "'training.max_steps' = 3.7: expected a whole number" in problems
    assert "'training.seed' = inf: expected a whole number" in problems
    assert "'training.lr_scheduler_type' = an object: expected text" in problems


def test_csv_with_an_unclosed_quote_loses_no_row(workspace, tmp_path):
    src = tmp_path / "quotes.csv"
    src.write_text('instruction,output\nq1,a1\n"q2 is never closed,a2\nq3,a3\nq4,"a4 ""quoted"" fine"\n'
                   'q5,"a5 multi\nline"\nq6,"a6" trailing junk\nq7,a7\n', encoding="utf-8")
    res = import_file(workspace, src, "quotes")
    rows = list(iter_jsonl_rows(res.path))
    assert [r["instruction"] for r in rows] == ["q1", "q3", "q4", "q5", "q7"]
    assert rows[2]["output"] == 'a4 "quoted" fine' and rows[3]["output"] == "a5 multi\nline"
    assert [(e.line, e.file) for e in res.errors] == [(3, "quotes.csv"), (8, "quotes.csv")]
    assert "only closed on line 5" in res.errors[0].reason and "never closed" in res.errors[0].reason
    assert "the 2 line(s) after it are read as rows of their own" in res.errors[0].reason
    assert "text after a closing quote" in res.errors[1].reason

    at_end = tmp_path / "end.csv"
    at_end.write_text('instruction,output\nq1,a1\nq2,"never closed\nq3,a3\n', encoding="utf-8")
    res = import_file(workspace, at_end, "end")
    assert [r["instruction"] for r in iter_jsonl_rows(res.path)] == ["q1", "q3"] and res.errors[0].line == 3
    assert res.errors[0].reason.startswith("a quoted cell is never closed")


def test_csv_duplicate_header_and_stray_cells(workspace, tmp_path):
    dup = tmp_path / "dup.csv"
    dup.write_text("instruction,output,output\nq,a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'output' appears twice"):
        import_file(workspace, dup, "dup")
    extra = tmp_path / "extra.csv"
    extra.write_text("instruction,output\nq1,a1\nq2,a2,surplus\n", encoding="utf-8")
    res = import_file(workspace, extra, "extra")
    assert res.rows == 1 and res.errors[0].line == 3 and "1 more cell(s)" in res.errors[0].reason


def test_json_array_on_one_line_names_the_record(workspace, tmp_path):
    src = tmp_path / "one-line.json"
    src.write_text(json.dumps([ROWS[0], {"instruction": None, "output": "x"}, {"instruction": 5, "output": "y"},
                               {"output": "z"}, {"instruction": ["a"], "output": "w"}, 7, ROWS[1]]))
    res = import_file(workspace, src, "arr")
    assert res.rows == 2
    got = [(e.line, e.record, e.reason) for e in res.errors]
    assert got == [
        (1, 2, "'instruction' is null; it must be text"),
        (1, 3, "'instruction' must be text, got the number 5 (is the right column mapped to it?)"),
        (1, 4, "no 'instruction' field in this record"),
        (1, 5, "'instruction' must be text, got a list"),
        (1, 6, "expected a JSON object with named fields, got the number 7"),
    ]
    assert str(res.errors[0]) == "one-line.json:1 (record 2): 'instruction' is null; it must be text"
    rejected = [json.loads(x) for x in (workspace.datasets / "arr.rejects.jsonl").read_text().splitlines()]
    assert [r["record"] for r in rejected] == [2, 3, 4, 5, 6]


def test_json_array_broken_in_the_middle_says_where(workspace, tmp_path):
    src = tmp_path / "broken.json"
    src.write_text('[\n  {"instruction": "a"},\n  {"instruction": "b",, "output": 1},\n  {"instruction": "c"}\n]\n')
    with pytest.raises(DataError, match=r"line 3, column 23 \(record 2 of the array\)"):
        import_file(workspace, src, "broken")
    assert not (workspace.datasets / "broken.jsonl").exists()


def test_numbers_as_answers_are_text_but_prompts_are_refused(workspace, tmp_path):
    src = tmp_path / "nums.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [{"question": "2+2?", "answer": 4},
                                                     {"question": 12, "answer": "twelve"}]))
    res = import_file(workspace, src, "nums")
    assert [r["output"] for r in iter_jsonl_rows(res.path)] == ["4"]
    assert res.errors[0].line == 2 and "'question' must be text, got the number 12" in res.errors[0].reason


def test_a_5mb_row_imports_whole(workspace, tmp_path):
    big = "x" * (5 * 1024 * 1024)
    jl = tmp_path / "big.jsonl"
    jl.write_text(json.dumps({"instruction": "long?", "output": big}) + "\n" + json.dumps(ROWS[0]) + "\n")
    cs = tmp_path / "big.csv"
    with open(cs, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["instruction", "output"], ["long?", big], ["short?", "yes"]])
    for src in (jl, cs):
        res = import_file(workspace, src, src.stem + src.suffix[1:], overwrite=True)
        rows = list(iter_jsonl_rows(res.path))
        assert res.rows == 2 and len(rows[0]["output"]) == len(big) and not res.errors


@pytest.mark.parametrize("fname,content", [("e.json", ""), ("e.jsonl", "\n\n"), ("e.csv", ""),
                                           ("h.csv", "instruction,output\n"), ("a.json", "[]"), ("w.json", "  \n")])
def test_empty_files_say_they_are_empty(workspace, tmp_path, capsys, fname, content):
    src = tmp_path / fname
    src.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="has no records \\(it is empty\\)"):
        import_file(workspace, src, "e")
    assert detect_file(src)[0].note == "the file has no records (it is empty)"
    assert cli(["--workspace", str(workspace.root), "data", "import", str(src)]) == 2
    assert "it is empty" in capsys.readouterr().err


def test_a_latin1_line_deep_in_a_utf8_file_is_rejected_by_line(workspace, tmp_path):
    src = tmp_path / "mixed.jsonl"
    lines = [json.dumps({"instruction": f"q{i} " + "pad" * 40, "output": "a"}).encode() for i in range(700)]
    lines[650] = '{"instruction": "café?", "output": "oui"}'.encode("latin-1")
    src.write_bytes(b"\n".join(lines) + b"\n")
    assert src.stat().st_size > 65536  # beyond what the sniffer reads
    res = import_file(workspace, src, "mixed")
    assert res.rows == 699 and res.errors[0].line == 651
    assert "not UTF-8 text" in res.errors[0].reason and "Latin-1" in res.errors[0].reason
    assert all(rec.error is None for rec in iter_records(src) if rec.line != 651)


def test_a_utf8_bom_is_fine(workspace, tmp_path):
    src = tmp_path / "bom.csv"
    src.write_bytes("\ufeffinstruction,output\nq,a\n".encode())
    res = import_file(workspace, src, "bom")
    assert res.format == "labeled" and list(iter_jsonl_rows(res.path))[0]["instruction"] == "q"

