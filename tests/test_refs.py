import pytest

from core.config import parse_config
from core.refs import confine_paths
from core.workspace import PathOutsideWorkspace


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
