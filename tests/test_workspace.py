import os

import pytest

from core.workspace import PathOutsideWorkspace, Workspace


def test_creates_standard_folders(tmp_path):
    ws = Workspace.open(tmp_path / "w")
    for name in ("datasets", "models", "runs", "cache"):
        assert (ws.root / name).is_dir()


def test_relative_paths_resolve_inside(workspace):
    p = workspace.resolve("a/b.jsonl", base="datasets")
    assert p == workspace.root / "datasets" / "a" / "b.jsonl"
    assert workspace.resolve("datasets/x.json") == workspace.root / "datasets" / "x.json"


@pytest.mark.parametrize("bad", ["../secret.txt", "datasets/../../x", "/etc/passwd", "~/x", "", "a\x00b"])
def test_escapes_refused(workspace, bad):
    with pytest.raises(PathOutsideWorkspace):
        workspace.resolve(bad)


def test_dotdot_that_stays_inside_is_fine(workspace):
    assert workspace.resolve("datasets/../models/m") == workspace.root / "models" / "m"


def test_symlink_pointing_out_refused(workspace, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("secret")
    os.symlink(outside, workspace.datasets / "link")
    with pytest.raises(PathOutsideWorkspace):
        workspace.resolve("link/f.txt", base="datasets")


def test_symlink_inside_is_fine(workspace):
    (workspace.models / "real").mkdir()
    os.symlink(workspace.models / "real", workspace.datasets / "alias")
    assert workspace.resolve("alias", base="datasets") == workspace.models / "real"


def test_extra_roots_allowed(tmp_path):
    extra = tmp_path / "shared_models"
    extra.mkdir()
    ws = Workspace.open(tmp_path / "w", [extra])
    assert ws.resolve(str(extra / "m")) == extra / "m"
    with pytest.raises(PathOutsideWorkspace):
        ws.resolve(str(tmp_path / "elsewhere"))


def test_error_message_says_what_to_do(workspace):
    with pytest.raises(PathOutsideWorkspace, match="outside the workspace"):
        workspace.resolve("/etc/passwd")


def test_local_paths_anchor_at_config_folder(workspace, tmp_path):
    assert workspace.local("data.json", tmp_path) == tmp_path.resolve() / "data.json"
    assert workspace.local("/abs/x", tmp_path) == __import__("pathlib").Path("/abs/x")
