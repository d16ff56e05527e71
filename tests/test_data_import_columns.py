"""No import drops a field silently (issue 19): an `input` column joins the prompt wherever it appears, every other
column the format does not use is counted in the import summary (CLI and Data tab); and a LLaMA-Factory
`dataset_info.json` entry with its files imports into canonical rows the way LLaMA-Factory's converters read them."""

from __future__ import annotations

import json

import pytest

from core.cli.main import main as cli
from core.data.convert import export_rows
from core.data.errors import DataError
from core.data.io import iter_records, write_records
from core.data.llamafactory_import import import_llamafactory, load_entry
from core.data.rows import iter_jsonl_rows, prompt_text, to_messages
from core.data.store import detect_file, import_file, read_meta

LAST_HAS_INPUT = [{"instruction": f"Say {i}.", "output": f"{i}"} for i in range(19)] + [
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}]


def test_an_input_only_the_last_row_has_joins_its_prompt_in_every_export(workspace, tmp_path):
    src = tmp_path / "mostly-labeled.json"
    write_records(src, LAST_HAS_INPUT)
    assert detect_file(src)[0].format == "labeled"
    res = import_file(workspace, src, "ds")
    assert res.rows == 20 and not res.unused and "columns the format does not use" not in res.summary()
    last = list(iter_jsonl_rows(res.path))[-1]
    assert last["input"] == "Good morning" and "src_input" not in last
    assert prompt_text(last) == "Translate to French.\nGood morning"  # LLaMA-Factory's join
    assert to_messages(last)[0] == {"role": "user", "content": "Translate to French.\nGood morning"}
    rows = list(iter_jsonl_rows(res.path))
    for fmt, ext in (("messages", ".jsonl"), ("sharegpt", ".json"), ("easydistill", ".json"), ("alpaca", ".json")):
        out = tmp_path / f"x-{fmt}{ext}"
        export_rows(rows, fmt, out)
        assert "Good morning" in json.dumps([r.value for r in iter_records(out)][-1]), fmt


def test_columns_the_format_does_not_use_are_reported_with_row_counts(workspace, tmp_path, capsys):
    src = tmp_path / "qa.jsonl"
    write_records(src, [{"question": f"q{i}?", "answer": "a", "topic": "math" if i < 3 else "", "score": i,
                         **({"output": "old"} if i == 0 else {})} for i in range(5)])
    res = import_file(workspace, src, "qa")
    assert res.unused == {"score": 5, "topic": 3, "output": 1}
    assert res.unused_text() == "score (5 rows), topic (3 rows), output as src_output (1 row)"
    assert read_meta(workspace, "qa")["unused_columns"] == res.unused
    row = list(iter_jsonl_rows(res.path))[0]
    assert row["topic"] == "math" and row["score"] == 0 and row["src_output"] == "old"  # kept on the rows

    assert cli(["--workspace", str(workspace.root), "data", "import", str(src), "--name", "qa2"]) == 0
    out = capsys.readouterr().out
    assert "columns the format does not use" in out and "topic (3 rows)" in out


# ---------------------------------------------------------------------------------------------- LLaMA-Factory


def _lf_folder(tmp_path):
    """A LLaMA-Factory data folder with entries of every shape its README documents."""
    d = tmp_path / "lf"
    (d / "parts").mkdir(parents=True)
    write_records(d / "alpaca.json", [
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour", "system": "Be brief."},
        {"instruction": "And now?", "input": "", "output": "Bonsoir",
         "history": [["Translate to French.", "Bonjour"]]},
        {"instruction": "", "input": "Only the input", "output": "ok"},
    ])
    write_records(d / "qa.jsonl", [{"id": "it", "q": "Capital of Italy?", "a": "Rome", "input": "ignored by the entry"},
                                   {"q": "2+2?", "a": "4"}])
    write_records(d / "pairs.json", [{"instruction": "Best pet?", "input": "one word", "chosen": "Cat",
                                      "rejected": "idk"}])
    write_records(d / "chat.json", [
        {"messages": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                      {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]},
    ])
    write_records(d / "sg-dpo.json", [{"conversations": [{"from": "human", "value": "2+2?"}],
                                       "chosen": {"from": "gpt", "value": "4"},
                                       "rejected": {"from": "gpt", "value": "5"}}])
    write_records(d / "parts" / "a.jsonl", [{"conversations": [{"from": "human", "value": "x"},
                                                               {"from": "gpt", "value": "y"}], "system": "S"}])
    write_records(d / "parts" / "b.jsonl", [
        {"conversations": [{"from": "human", "value": "weather?"}, {"from": "function_call", "value": "{}"},
                           {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]},
        {"conversations": [{"from": "human", "value": "z"}, {"from": "gpt", "value": "w"}], "tools": "[]"},
    ])
    info = {
        "alpaca_demo": {"file_name": "alpaca.json", "columns": {"prompt": "instruction", "query": "input",
                                                                "response": "output", "system": "system",
                                                                "history": "history"}},
        "alpaca_bare": {"file_name": "alpaca.json"},
        "qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "a"}},
        "pairs": {"file_name": "pairs.json", "ranking": True,
                  "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
        "chat": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "messages"},
                 "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                          "assistant_tag": "assistant", "system_tag": "system"}},
        "sg_dpo": {"file_name": "sg-dpo.json", "formatting": "sharegpt", "ranking": True,
                   "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "folder": {"file_name": "parts", "formatting": "sharegpt", "num_samples": 1,
                   "columns": {"messages": "conversations", "system": "system"}},
        "hub": {"hf_hub_url": "someone/data"},
        "kto": {"file_name": "alpaca.json", "columns": {"prompt": "instruction", "kto_tag": "label"}},
        "vision": {"file_name": "alpaca.json", "columns": {"prompt": "instruction", "images": "images"}},
    }
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return d


def _rows(res):
    return list(iter_jsonl_rows(res.path))


def test_llamafactory_alpaca_entries(workspace, tmp_path):
    d = _lf_folder(tmp_path)
    res = import_llamafactory(workspace, d / "dataset_info.json", "alpaca_demo")
    rows = _rows(res)
    assert res.name == "alpaca_demo" and res.rows == 3 and not res.errors
    assert prompt_text(rows[0]) == "Translate to French.\nGood morning" and rows[0]["system"] == "Be brief."
    assert [m["content"] for m in rows[1]["messages"]] == ["Translate to French.", "Bonjour", "And now?", "Bonsoir"]
    assert rows[2]["instruction"] == "Only the input" and rows[2]["output"] == "ok"

    # No `columns`: LLaMA-Factory's defaults (instruction / input / output) only; system and history are not read
    # by it, so they are not in the prompt here either, and the summary says so.
    res = import_llamafactory(workspace, d, "alpaca_bare")
    rows = _rows(res)
    assert "system" not in rows[0] and rows[0]["src_system"] == "Be brief." and "messages" not in rows[1]
    assert res.unused == {"system": 1, "history": 1}

    # `columns` given: only the named ones are read (as LLaMA-Factory does); the file's `input` is reported, kept.
    res = import_llamafactory(workspace, d, "qa")
    rows = _rows(res)
    assert [(r["instruction"], r["output"]) for r in rows] == [("Capital of Italy?", "Rome"), ("2+2?", "4")]
    assert "input" not in rows[0] and rows[0]["src_input"] == "ignored by the entry" and rows[0]["id"] == "it"
    assert res.unused == {"input": 1} and "input as src_input (1 row)" in res.summary()

    res = import_llamafactory(workspace, d, "pairs")
    (row,) = _rows(res)
    assert prompt_text(row) == "Best pet?\none word" and (row["chosen"], row["rejected"]) == ("Cat", "idk")
    assert read_meta(workspace, "pairs")["format"] == "llamafactory-alpaca-ranking"


def test_llamafactory_conversation_entries(workspace, tmp_path):
    d = _lf_folder(tmp_path)
    rows = _rows(import_llamafactory(workspace, d, "chat"))
    assert rows[0]["system"] == "Terse." and (rows[0]["instruction"], rows[0]["output"]) == ("Hi", "Hello")
    assert [m["content"] for m in rows[1]["messages"]] == ["a", "b", "c", "d"]

    (pair,) = _rows(import_llamafactory(workspace, d, "sg_dpo"))
    assert (pair["instruction"], pair["chosen"], pair["rejected"]) == ("2+2?", "4", "5")

    res = import_llamafactory(workspace, d, "folder")
    assert res.rows == 2 and _rows(res)[0]["system"] == "S"
    assert res.errors[0].file == "b.jsonl" and res.errors[0].line == 1 and "tool calls" in res.errors[0].reason
    assert res.unused == {"tools": 1} and any("num_samples" in n for n in res.notes)


@pytest.mark.parametrize("entry,message", [
    ("hub", "loaded from hf_hub_url 'someone/data'"),
    ("kto", "KTO data"),
    ("vision", "has images"),
    ("missing", "no entry 'missing'; its entries are: alpaca_demo, alpaca_bare, qa,"),
])
def test_llamafactory_entries_the_studio_cannot_hold_are_refused(workspace, tmp_path, entry, message):
    d = _lf_folder(tmp_path)
    with pytest.raises(DataError, match=message):
        import_llamafactory(workspace, d / "dataset_info.json", entry)
    with pytest.raises(DataError, match="has 10 entries; say which one"):
        load_entry(d / "dataset_info.json")


def test_cli_imports_a_dataset_info_entry(workspace, tmp_path, capsys):
    d = _lf_folder(tmp_path)
    base = ["--workspace", str(workspace.root), "data", "import"]
    assert cli([*base, str(d / "dataset_info.json"), "--entry", "qa", "--name", "lf-qa"]) == 0
    out = capsys.readouterr().out
    assert "imported 2 row(s) as 'lf-qa'" in out and "input as src_input (1 row)" in out
    assert cli([*base, str(d / "dataset_info.json")]) == 2
    assert "say which one to import" in capsys.readouterr().err
    assert cli([*base, str(d / "qa.jsonl"), "--entry", "qa"]) == 2
    assert "--entry names an entry" in capsys.readouterr().err


def test_data_tab_import_message_lists_unused_columns(workspace, tmp_path):
    from studio.tabs.data import _import_message
    from studio.ui import UIContext

    src = tmp_path / "qa.csv"
    src.write_text("question,answer,topic,text\nq1?,a1,math,\nq2?,a2,,old\n", encoding="utf-8")
    res = import_file(workspace, src, "qa")
    assert _import_message(UIContext(workspace), res).endswith(
        "Columns the format does not use, kept on each row as extra fields (not in prompts or answers): "
        "text → src_text (1 row(s)), topic (1 row(s))")
    assert "topic（1 行）" in _import_message(UIContext(workspace, lang="zh"), res)


def test_web_messages_name_paths_relative_to_the_workspace(workspace):
    """(Issue 16) the CLI names a file as given; a visitor reads it relative to the workspace, never the server's
    absolute path."""
    from studio.ui import UIContext

    src = workspace.datasets / "uploads" / "u16.json"
    src.parent.mkdir(parents=True)
    src.write_bytes(json.dumps(LAST_HAS_INPUT).encode("utf-16"))
    with pytest.raises(DataError) as ei:
        detect_file(src)
    assert str(workspace.root) in str(ei.value)  # the CLI names the file as it was given
    shown = UIContext(workspace).error_text(ei.value)
    assert shown.startswith("datasets/uploads/u16.json: not UTF-8 text") and str(workspace.root) not in shown
