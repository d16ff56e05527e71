"""A LLaMA-Factory dataset_info.json reaches its files by the workspace's rules (issue 16): a web visitor's import
(`confined=True`) never reads outside the workspace through a `file_name` with `../`, a symlinked file, or a link
inside a folder entry; the CLI's local user may name any place, but a link planted inside the workspace is not
followed either. Messages name paths as written, never the server's absolute ones."""

from __future__ import annotations

import json

import pytest

from core.cli.main import main as cli
from core.data.errors import DataError
from core.data.io import write_records
from core.data.llamafactory_import import import_llamafactory, load_entry
from core.workspace import PathOutsideWorkspace

ROWS = [{"instruction": "Capital of Italy?", "output": "Rome"}]
SECRET = [{"instruction": "SECRET outside the workspace", "output": "leaked"}]


@pytest.fixture
def lf(workspace, tmp_path):
    """`<workspace>/lf/` with a dataset_info.json whose entries reach out in each way, plus one that does not."""
    outside = tmp_path / "outside"
    write_records(outside / "secret.json", SECRET)
    d = workspace.root / "lf"
    write_records(d / "good.json", ROWS)
    write_records(d / "parts" / "a.json", ROWS)
    (d / "secret.json").symlink_to(outside / "secret.json")
    (d / "parts" / "b.json").symlink_to(outside / "secret.json")
    (d / "linked").symlink_to(outside, target_is_directory=True)
    up = "../" * len(d.relative_to("/").parts)
    info = {
        "good": {"file_name": "good.json"},
        "dotdot": {"file_name": "../../etc/passwd"},
        "dotdot_json": {"file_name": f"{up}{(outside / 'secret.json').relative_to('/')}"},
        "link": {"file_name": "secret.json"},
        "folder": {"file_name": "parts"},
        "linked_folder": {"file_name": "linked"},
    }
    (d / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return d


@pytest.mark.parametrize("entry,says", [
    ("dotdot", "'lf/../../etc/passwd' is outside the workspace"),
    ("dotdot_json", "is outside the workspace"),
    ("link", "'lf/secret.json' is a link that leads outside the workspace"),
    ("folder", "'lf/parts/b.json' is a link that leads outside the workspace"),
    ("linked_folder", "'lf/linked' is a link that leads outside the workspace"),
])
def test_a_visitors_import_reads_nothing_outside_the_workspace(workspace, lf, entry, says):
    with pytest.raises(DataError) as err:
        import_llamafactory(workspace, "lf/dataset_info.json", entry, confined=True)
    msg = str(err.value)
    assert msg.startswith(f"entry '{entry}': file_name ") and says in msg
    assert str(workspace.root) not in msg, msg  # names as written, not the server's paths
    assert not list(workspace.datasets.glob("*.jsonl"))


def test_a_visitors_import_inside_the_workspace_works(workspace, lf, tmp_path):
    res = import_llamafactory(workspace, "lf", "good", confined=True)
    assert res.rows == 1 and not res.errors
    # The dataset_info.json itself is checked too: one outside the workspace is refused.
    write_records(tmp_path / "elsewhere" / "good.json", ROWS)
    (tmp_path / "elsewhere" / "dataset_info.json").write_text(json.dumps({"good": {"file_name": "good.json"}}))
    with pytest.raises(PathOutsideWorkspace):
        import_llamafactory(workspace, str(tmp_path / "elsewhere"), "good", name="x", confined=True)
    assert import_llamafactory(workspace, str(tmp_path / "elsewhere"), "good", name="x").rows == 1  # CLI: trusted


def test_the_cli_follows_no_link_planted_in_the_workspace(workspace, lf, tmp_path, capsys):
    """A local user names any place explicitly, but `lf/secret.json` (a link inside the workspace) is not read."""
    for entry in ("link", "folder", "linked_folder"):
        with pytest.raises(DataError, match="is a link that leads outside the workspace"):
            load_entry(lf / "dataset_info.json", entry, ws=workspace)
    base = ["--workspace", str(workspace.root), "data", "import", str(lf / "dataset_info.json")]
    assert cli([*base, "--entry", "link"]) == 2
    assert "link that leads outside" in capsys.readouterr().err
    assert not list(workspace.datasets.glob("*.jsonl"))
    # The same links in a LLaMA-Factory folder outside the workspace are the user's own: read as written.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "secret.json").symlink_to(tmp_path / "outside" / "secret.json")
    (mine / "dataset_info.json").write_text(json.dumps({"s": {"file_name": "secret.json"}}))
    assert cli(["--workspace", str(workspace.root), "data", "import", str(mine / "dataset_info.json")]) == 0
    assert "imported 1 row(s)" in capsys.readouterr().out
