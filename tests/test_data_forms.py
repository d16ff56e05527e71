"""What the Data tab shows, computed by core.data without a browser: the import form (upload, path, mapping,
preview), pages and the row view, statistics helpers and figures, and export from the workspace."""

from __future__ import annotations

import json

import pytest

from core.data.convert import export_dataset
from core.data.errors import DataError
from core.data.import_form import (
    field_choices,
    format_fields,
    mapping_from_values,
    missing_required,
    preview_import,
    source_path,
    unmapped,
)
from core.data.io import write_records
from core.data.plots import chars_figure, length_histogram, tokens_figure
from core.data.stats import dataset_stats, percentile_text, tokenizer_choices, tokenizer_dir
from core.data.store import import_file, save_rows, take_upload
from core.data.view import CELL_CHARS, browse_file, cell_text, page_view, row_on_page, row_view, rows_table
from core.errors import UserError
from core.workspace import PathOutsideWorkspace


def _tokenizer_folder(folder):
    """A model folder with a word-level tokenizer.json (no model weights: statistics only need the tokenizer)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({"[UNK]": 0, "hello": 1, "there": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_upload_lands_in_the_workspace_and_paths_stay_inside(workspace, tmp_path):
    src = tmp_path / "gradio-tmp" / "qa.jsonl"
    src.parent.mkdir()
    src.write_text('{"question": "Q?", "answer": "A."}\n', encoding="utf-8")
    copy = take_upload(workspace, src)
    assert copy == workspace.datasets / "uploads" / "qa.jsonl" and copy.read_text() == src.read_text()
    src.unlink()
    with pytest.raises(DataError, match="upload it again"):
        take_upload(workspace, src)
    assert source_path(workspace, "datasets/uploads/qa.jsonl") == copy
    assert source_path(workspace, "datasets") is None  # a folder: the form says "not a file"
    with pytest.raises(PathOutsideWorkspace):
        source_path(workspace, "../../etc/passwd")


def test_mapping_dropdowns_and_missing_fields():
    assert format_fields("alpaca") == ["instruction", "input", "output", "system", "history"]
    choices = field_choices("labeled", ["question", "answer", "output"], {"instruction": "question"})
    assert [(c.name, c.required, c.column) for c in choices] == [
        ("instruction", True, "question"), ("output", True, "output"), ("input", False, ""), ("system", False, "")]
    mapping = mapping_from_values("labeled", ["question", "", None, None])
    assert mapping == {"instruction": "question", "output": unmapped("output"), "input": unmapped("input"),
                       "system": unmapped("system")}
    assert missing_required("labeled", mapping) == ["output"]
    assert missing_required("labeled", mapping_from_values("labeled", ["question", "answer"])) == []
    assert mapping_from_values(None, ["x"]) == {}


def test_import_preview_reads_the_head_and_names_bad_lines(tmp_path):
    src = tmp_path / "qa.jsonl"
    lines = [json.dumps({"q": f"Question {i}?", "a": f"A{i}"}) for i in range(30)]
    lines[2] = "{not json"
    lines[4] = json.dumps({"q": "", "a": "x"})
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pv = preview_import(src, "labeled", {"instruction": "q", "output": "a"})
    assert len(pv.rows) == 8 and pv.rows[0]["instruction"] == "Question 0?" and pv.rows[0]["id"]
    assert [line for line, _ in pv.problems] == [3, 5] and "empty" in pv.problems[1][1]
    unmapped_pv = preview_import(src, "labeled", mapping_from_values("labeled", ["q", ""]))
    assert unmapped_pv.rows == [] and "(output: not mapped)" in unmapped_pv.problems[0][1]


def test_pages_table_cells_and_row_view(workspace):
    rows = [{"id": f"r{i}", "instruction": f"q{i}", "output": "x" * (CELL_CHARS + 50), "extra": {"k": i}}
            for i in range(45)]
    rows.append({"id": "dpo", "system": "Be brief.", "instruction": "1+1?", "chosen": "2", "rejected": "3"})
    save_rows(workspace, "d", rows, created_by="test")
    path = browse_file(workspace, "d")
    assert browse_file(workspace, "d", rejects=True) is None and browse_file(workspace, None) is None
    pv = page_view(path, 99, 20)  # past the end: clamped to the last page
    assert (pv.page, pv.pages, pv.rows) == (3, 3, 46) and len(pv.cells) == 6
    assert pv.columns[:3] == ["id", "instruction", "output"] and "extra" in pv.columns
    first = page_view(path, 1, 20)
    assert first.cells[0][0] == "r0" and len(first.cells[0][2]) == CELL_CHARS and first.cells[0][2].endswith("…")
    assert row_on_page(path, 2, 20, 5)["id"] == "r25" and row_on_page(path, 3, 20, 10) is None

    view = row_view(row_on_page(path, 3, 20, 5))
    assert view.system == "Be brief." and view.rejected == "3"
    assert view.chat == [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]
    assert json.loads(view.json)["id"] == "dpo"
    reject = row_view({"file": "x.jsonl", "line": 3, "reason": "bad"}, is_reject=True)
    assert reject.chat == [] and reject.system == "" and '"reason": "bad"' in reject.json


def test_rows_table_and_cells():
    cols, cells = rows_table([{"z": 1, "id": "a", "instruction": "q", "meta": {"k": "v"}}, {"id": "b", "other": 2}])
    assert cols == ["id", "instruction", "z", "meta", "other"]
    assert cells[0] == ["a", "q", "1", '{"k": "v"}', ""] and cells[1][0] == "b"
    assert cell_text("中文") == "中文" and cell_text(None) == "null"


def test_stats_helpers_tokenizers_and_figures(workspace):
    save_rows(workspace, "s", [{"id": "1", "instruction": "hello there", "output": "hello"},
                               {"id": "2", "instruction": "hello", "output": "there there there"}], created_by="test")
    _tokenizer_folder(workspace.models / "words")
    (workspace.models / "no-tokenizer").mkdir()
    assert tokenizer_choices(workspace) == ["words"]
    assert tokenizer_dir(workspace, "words") == workspace.models / "words"
    assert tokenizer_dir(workspace, "models/words") == workspace.models / "words"
    with pytest.raises(DataError, match="not a model folder"):
        tokenizer_dir(workspace, "datasets/s.jsonl")
    with pytest.raises(PathOutsideWorkspace):
        tokenizer_dir(workspace, "/etc")
    with pytest.raises(UserError, match="no usable tokenizer|no tokenizer"):
        dataset_stats(workspace, "s", "no-tokenizer")
    with pytest.raises(DataError, match="not found"):
        dataset_stats(workspace, "gone")

    st = dataset_stats(workspace, "s", "words")
    assert st.rows == 2 and st.tokenizer == "words" and sorted(st.prompt_tokens) == [1, 2]
    assert sorted(st.output_tokens) == [1, 3]
    assert percentile_text(st.output_tokens) == "p50 3 · p90 3 · p99 3 · max 3" and percentile_text([]) == "—"
    plain = dataset_stats(workspace, "s", "  ")
    assert plain.tokenizer == "" and tokens_figure(plain, "t") is None

    fig = chars_figure(st, "chars")
    assert fig.layout.title.text == "chars" and {t.name for t in fig.data} == {"instruction", "output"}
    assert [t.name for t in tokens_figure(st, "tokens").data] == ["prompt", "output"]
    assert len(length_histogram({"a": [1, 2], "empty": []}, "t").data) == 1


def test_export_dataset_with_and_without_llamafactory(workspace, tmp_path):
    src = tmp_path / "qa.jsonl"
    write_records(src, [{"instruction": "Q1", "output": "A1"}, {"instruction": "Q2", "output": "A2"}])
    import_file(workspace, src, "qa")
    done = export_dataset(workspace, "qa", "alpaca", llamafactory=True)
    assert done.result.written == 2 and done.result.path == workspace.datasets / "exports" / "qa-alpaca.json"
    assert done.info_name == "qa-alpaca"
    assert json.loads(done.info_path.read_text())["qa-alpaca"]["file_name"] == "qa-alpaca.json"
    # A format LLaMA-Factory cannot read fails before anything is written.
    with pytest.raises(DataError, match="LLaMA-Factory has no entry"):
        export_dataset(workspace, "qa", "omnithought", llamafactory=True)
    assert not (workspace.datasets / "exports" / "qa-omnithought.json").exists()
    plain = export_dataset(workspace, "qa", "messages", keep_id=False)
    assert plain.info_path is None and "id" not in json.loads(plain.result.path.read_text().splitlines()[0])
    done.info_path.write_text("{broken", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        export_dataset(workspace, "qa", "sharegpt", llamafactory=True)
    with pytest.raises(DataError, match="not found"):
        export_dataset(workspace, "missing", "alpaca")
