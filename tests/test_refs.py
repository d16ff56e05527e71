import pytest

from core.config import parse_config
from core.refs import confine_paths, dataset_output_path, resolve_dataset, resolve_model
from core.workspace import PathOutsideWorkspace


def test_dataset_by_name_and_path(workspace):
    (workspace.datasets / "qa.jsonl").write_text('{"id": "1"}\n')
    assert resolve_dataset("qa", workspace) == workspace.datasets / "qa.jsonl"
    assert resolve_dataset(str(workspace.datasets / "qa.jsonl"), workspace) == workspace.datasets / "qa.jsonl"
    with pytest.raises(FileNotFoundError, match="import it in the Data tab"):
        resolve_dataset("nope", workspace)


def test_output_names_land_in_datasets(workspace):
    assert dataset_output_path("labelled", workspace) == workspace.datasets / "labelled.jsonl"
    assert dataset_output_path("/tmp/x.json", workspace).as_posix() == "/tmp/x.json"


def test_model_folder_or_hub_id(workspace):
    (workspace.models / "tiny").mkdir()
    assert resolve_model("tiny", workspace) == str(workspace.models / "tiny")
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct", workspace) == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        resolve_model("./missing-model", workspace)


def test_confine_refuses_paths_outside(workspace):
    ok = parse_config({"kind": "train_sft", "student": "Qwen/Qwen2.5-0.5B", "dataset": "qa"})
    confine_paths(ok, workspace)
    bad = parse_config({"kind": "train_sft", "student": "tiny", "dataset": "/etc/passwd"})
    with pytest.raises(PathOutsideWorkspace, match="'dataset'"):
        confine_paths(bad, workspace)
    nested = parse_config({"kind": "pipeline", "steps": [{"name": "a", "job": {
        "kind": "synth", "input": "qa", "output": "../../escape", "teacher": {"model": "tiny"}}}]})
    with pytest.raises(PathOutsideWorkspace, match="output"):
        confine_paths(nested, workspace)
    model_escape = parse_config({"kind": "serve", "model": {"model": "/root/.ssh"}})
    with pytest.raises(PathOutsideWorkspace, match="model"):
        confine_paths(model_escape, workspace)
