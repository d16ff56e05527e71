import pytest

from core.config import ConfigError, PipelineJob
from core.devices import Device
from core.presets import BUNDLED, PresetMeta, check_machine, find_preset, list_presets, load_preset, save_preset


def test_every_bundled_preset_loads(workspace):
    presets = {p.name: p for p in list_presets(workspace)}
    on_disk = {f.stem for f in BUNDLED.glob("*.yaml")}
    assert set(presets) == on_disk and on_disk
    for p in presets.values():
        load_preset(p.path)  # raises with the file and key if broken
        assert p.title("en") and p.title("zh") != p.title("en"), f"{p.name} needs an English and a Chinese title"


def test_gpu_preset_refused_up_front_on_cpu(workspace, monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    p = find_preset("distilqwen-style", workspace)
    assert isinstance(p.config, PipelineJob)
    assert any("GPU" in m for m in check_machine(p, []))
    small = [Device(0, "T4", 16_000)]
    assert any("40 GB" in m for m in check_machine(p, small))
    assert check_machine(p, [Device(0, "A100", 81_920)]) == []
    api = find_preset("api-teacher", workspace)
    assert any("DASHSCOPE_API_KEY" in m for m in check_machine(api, [Device(0, "A10", 24_000)]))
    monkeypatch.setenv("DASHSCOPE_API_KEY", "x")
    assert check_machine(api, [Device(0, "A10", 24_000)]) == []


def test_save_current_settings_as_preset(workspace):
    config = find_preset("api-teacher", workspace).config
    path = save_preset(config, "my-run", workspace, PresetMeta(title={"en": "Mine", "zh": "我的"}))
    again = find_preset("my-run", workspace)
    assert again.path == path and again.config == config and again.title("zh") == "我的"
    with pytest.raises(ConfigError, match="preset name"):
        save_preset(config, "../evil", workspace)


def test_unknown_preset_lists_known(workspace):
    with pytest.raises(ConfigError, match="distilqwen-style"):
        find_preset("nope", workspace)


def test_preset_continuing_another_names_it_when_its_outputs_are_missing(workspace, capsys):
    from core.cli.main import main

    p = find_preset("demo-dpo-cpu", workspace)
    after = p.meta.needs.after
    assert after is not None and after.preset == "demo-cpu"
    problems = check_machine(p, [], workspace)
    assert len(problems) == 1 and "demo-cpu" in problems[0] and "model demo-student-kd" in problems[0]
    assert check_machine(p, []) == []  # no workspace given: the machine alone can run it
    # headless: refused before any job starts, with the same message
    assert main(["--workspace", str(workspace.root), "--config", str(p.path)]) == 2
    assert "run it first" in capsys.readouterr().err and not any(workspace.runs.iterdir())
    for m in after.models:
        (workspace.models / m).mkdir(parents=True)
    for d in after.datasets:
        (workspace.datasets / f"{d}.jsonl").write_text('{"id": "1", "instruction": "q", "output": "a"}\n')
    assert check_machine(p, [], workspace) == []
