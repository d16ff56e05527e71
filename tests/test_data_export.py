"""Exports and their LLaMA-Factory entries, without LLaMA-Factory (tests/test_llamafactory_roundtrip.py loads them in
it): entries name only the columns a file has, pairs get the preference shape, what a format cannot hold is said,
and an export with nothing to write is refused by the CLI and the Data tab's path alike, leaving no entry."""

from __future__ import annotations

import json

import pytest

from core.cli.main import main as cli
from core.data.convert import export_dataset, export_rows, llamafactory_entry
from core.data.errors import DataError
from core.data.store import save_rows

LABELLED = [{"id": "a", "instruction": "Capital of Italy?", "output": "Rome"},
            {"id": "b", "instruction": "2+2?", "output": "4"}]
PAIRS = [{"id": "p1", "instruction": "Best pet?", "chosen": "A cat.", "rejected": "idk", "system": "Be kind."},
         {"id": "p2", "instruction": "times 3?", "chosen": "12", "rejected": "7",
          "history": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}]


def test_cli_refuses_an_export_with_nothing_to_write_and_keeps_the_earlier_file(workspace, tmp_path, capsys):
    save_rows(workspace, "qa", [dict(r) for r in LABELLED], created_by="test")
    save_rows(workspace, "pairs", [dict(r) for r in PAIRS], created_by="test")
    base = ["--workspace", str(workspace.root), "data", "export"]
    out = tmp_path / "x.jsonl"
    assert cli([*base, "pairs", "--format", "dpo", "--out", str(out), "--llamafactory"]) == 0
    assert "2 row(s) written" in capsys.readouterr().out
    before = out.read_text()
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["x"] == {"file_name": "x.jsonl", "ranking": True, "columns": {
        "prompt": "prompt", "system": "system", "history": "history", "chosen": "chosen", "rejected": "rejected"}}

    # The case: --format dpo of instruction data wrote 0 rows, added an entry and exited 0.
    assert cli([*base, "qa", "--format", "dpo", "--out", str(out), "--llamafactory"]) == 2
    err = capsys.readouterr().err
    assert "nothing to export as dpo: none of the 2 row(s)" in err and "a: no chosen/rejected pair" in err
    assert out.read_text() == before and json.loads((tmp_path / "dataset_info.json").read_text()) == info
    fresh = tmp_path / "fresh"
    assert cli([*base, "qa", "--format", "dpo", "--out", str(fresh / "y.jsonl"), "--llamafactory"]) == 2
    assert not fresh.exists() or not any(fresh.iterdir())

    # A container LLaMA-Factory cannot read the conversation columns from: refused before writing.
    assert cli([*base, "qa", "--format", "sharegpt", "--out", str(tmp_path / "s.csv"), "--llamafactory"]) == 2
    assert "needs a .json, .jsonl or .parquet file" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_data_tab_export_entries_follow_the_columns(workspace):
    save_rows(workspace, "qa", [dict(r) for r in LABELLED], created_by="test")
    done = export_dataset(workspace, "qa", "sharegpt", llamafactory=True)
    assert json.loads(done.info_path.read_text())["qa-sharegpt"] == {
        "file_name": "qa-sharegpt.json", "formatting": "sharegpt", "columns": {"messages": "conversations"}}
    with pytest.raises(DataError, match="nothing to export as dpo"):
        export_dataset(workspace, "qa", "dpo", llamafactory=True)
    assert "qa-dpo" not in json.loads(done.info_path.read_text())
    assert not (workspace.datasets / "exports" / "qa-dpo.jsonl").exists()
    save_rows(workspace, "empty", [], created_by="test")
    with pytest.raises(DataError, match="the dataset has no rows"):
        export_dataset(workspace, "empty", "messages")


def test_pairs_in_preference_shapes_and_mixed_rows_skipped(tmp_path):
    rows = [*PAIRS, {"id": "plain", "instruction": "Hi", "output": "Hello"}]
    res = export_rows(rows, "alpaca", tmp_path / "a.json", keep_id=False)
    assert res.skipped == [("plain", "not a preference pair: this export holds the dataset's pairs "
                                     "(chosen/rejected), and LLaMA-Factory reads one kind per dataset")]
    assert json.loads((tmp_path / "a.json").read_text()) == [
        {"instruction": "Best pet?", "input": "", "chosen": "A cat.", "rejected": "idk", "system": "Be kind."},
        {"instruction": "times 3?", "input": "", "chosen": "12", "rejected": "7", "history": [["2+2?", "4"]]}]
    assert llamafactory_entry("a.json", "alpaca", res.columns) == {"file_name": "a.json", "ranking": True, "columns": {
        "prompt": "instruction", "query": "input", "system": "system", "history": "history", "chosen": "chosen",
        "rejected": "rejected"}}

    res = export_rows(PAIRS, "sharegpt", tmp_path / "s.json", keep_id=False)
    assert json.loads((tmp_path / "s.json").read_text())[1] == {
        "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"},
                          {"from": "human", "value": "times 3?"}],
        "chosen": {"from": "gpt", "value": "12"}, "rejected": {"from": "gpt", "value": "7"}}


def test_what_a_format_cannot_hold_is_counted(tmp_path):
    res = export_rows(PAIRS, "messages", tmp_path / "m.jsonl")
    assert res.written == 2 and res.lost == {"rejected": 2}
    assert "2 pair(s) written with the chosen answer only (messages holds one answer" in res.summary()
    first = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[1])
    assert [m["content"] for m in first["messages"]] == ["2+2?", "4", "times 3?", "12"] and "history" not in first

    res = export_rows(PAIRS, "easydistill", tmp_path / "e.json")
    assert res.written == 1 and res.lost == {"rejected": 1, "system": 1}
    assert res.skipped == [("p2", "a multi-turn conversation cannot be written as one instruction/output pair")]
    assert "1 row(s) written without their system prompt" in res.summary()


def test_entry_without_the_file_columns_names_no_optional_column():
    assert llamafactory_entry("a.json", "alpaca")["columns"] == {
        "prompt": "instruction", "query": "input", "response": "output"}
    assert llamafactory_entry("s.json", "sharegpt")["columns"] == {"messages": "conversations"}
    with pytest.raises(DataError, match="no entry type for format 'omnithought'"):
        llamafactory_entry("o.json", "omnithought")
