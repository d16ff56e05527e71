"""The words of two data errors a person reads (issue 16, "each says what is wrong and where, in the user's terms"):
a JSON parse error says its place once ("Unterminated string starting at column 29", never "... at at column 29"),
and a LLaMA-Factory dataset_info.json a web visitor names is called by its workspace-relative path in every message,
never by the server's absolute path."""

from __future__ import annotations

import json

import pytest

from core.data.errors import DataError
from core.data.io import iter_records
from core.data.llamafactory_import import import_llamafactory, load_entry

UNTERMINATED = '{"id": "r2", "instruction": "broken'  # the string opens at column 29


@pytest.mark.parametrize("line,says", [
    (UNTERMINATED, "not valid JSON (Unterminated string starting at column 29)"),
    ('{"id": "r2", "output": }', "not valid JSON (Expecting value at column 24)"),
    ('{"id": "r2"} {"id": "r3"}', "not valid JSON (Extra data at column 14)"),
    ('{"a": "tab\there"}', "not valid JSON (Invalid control character at column 11)"),
])
def test_a_jsonl_line_says_what_and_where_once(tmp_path, line, says):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "r1"}\n' + line + "\n", encoding="utf-8")
    bad = [r for r in iter_records(path) if r.error]
    assert [(r.line, r.error) for r in bad] == [(2, says)]


def test_a_json_file_says_line_and_column_once(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('{\n  "id": "a",\n  "instruction": "broken', encoding="utf-8")  # cut off in the string
    with pytest.raises(DataError) as err:
        list(iter_records(path))
    assert str(err.value) == f"{path}: not valid JSON (Unterminated string starting at line 3, column 18)"


@pytest.fixture
def lf(workspace):
    d = workspace.root / "lf"
    d.mkdir()
    return d


@pytest.mark.parametrize("content,says", [
    (None, "lf/dataset_info.json: not found (a LLaMA-Factory dataset_info.json, or the folder that holds one)"),
    (b'{"a": {"file_name": "a.json"', "lf/dataset_info.json: not valid JSON (Expecting ',' delimiter at line 1, "
                                     "column 29)"),
    (b'{"a": "b', "lf/dataset_info.json: not valid JSON (Unterminated string starting at line 1, column 7)"),
    (b"[]", "lf/dataset_info.json: expected an object of dataset entries"),
    (b"{}", "lf/dataset_info.json: no dataset entries"),
    ('{"a": {}}'.encode("utf-16"), "lf/dataset_info.json"),
], ids=["missing", "cut", "unterminated", "list", "empty", "utf16"])
def test_a_visitors_dataset_info_is_named_relative_to_the_workspace(workspace, lf, content, says):
    if content is not None:
        (lf / "dataset_info.json").write_bytes(content)
    for ref in ("lf", "lf/dataset_info.json", str(lf / "dataset_info.json")):
        with pytest.raises(DataError) as err:
            import_llamafactory(workspace, ref, "a", confined=True)
        msg = str(err.value)
        assert msg.startswith(says) and str(workspace.root) not in msg, (ref, msg)


def test_a_local_user_sees_the_path_as_reached(workspace, lf):
    """The CLI's local user (not confined) may name any place: the message names the file it looked for in full."""
    with pytest.raises(DataError) as err:
        load_entry(lf, ws=workspace, confined=False)
    assert str(err.value).startswith(f"{lf / 'dataset_info.json'}: not found")
    (lf / "dataset_info.json").write_text(json.dumps({"a": {"file_name": "a.json"}}) + "}", encoding="utf-8")
    with pytest.raises(DataError, match=r"dataset_info\.json: not valid JSON \(Extra data at line 1, column 31\)$"):
        load_entry(lf, ws=workspace)
