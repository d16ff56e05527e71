"""Deriving a student by layer pruning: the right layers, a loadable model that generates, an honest report."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from core.models.derive import select_layers


def test_layer_selection_strategies():
    # REFERENCE.md §7 on a 30-layer teacher
    assert select_layers(30, 15, "head_tail") == list(range(7)) + list(range(22, 30))
    assert select_layers(30, 10, "head_tail") == list(range(5)) + list(range(25, 30))
    assert select_layers(30, 10, "first") == list(range(10))
    even = select_layers(30, 10, "even")
    assert len(even) == 10 and even[0] == 0 and even[-1] == 29
    assert select_layers(4, 1, "head_tail") == [3]  # one layer: the last carries the most
    with pytest.raises(ValueError, match="between 1 and the teacher's 4 layers"):
        select_layers(4, 5)
    with pytest.raises(ValueError, match="unknown strategy"):
        select_layers(4, 2, "random")


def test_derived_student_loads_generates_and_reports(tiny_models, tmp_path):
    import torch
    from safetensors.torch import load_file

    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend
    from core.models.derive import derive_student, read_derived

    out = tmp_path / "student-2l"
    messages: list[str] = []
    report = derive_student(tiny_models.teacher, out, layers=2, strategy="head_tail", progress=messages.append,
                            prompts=["Hello, who are you?", "What is 2 + 2?"])
    assert report.kept_layers == [0, 3] and report.teacher_layers == 4
    assert report.params_after < report.params_before
    assert math.isfinite(report.student_ce) and report.student_kl >= 0 and report.eval_tokens > 0
    assert report.student_ce > report.teacher_ce  # pruning costs something, and the report shows it
    assert any("before training" in m for m in messages)
    assert read_derived(out)["kept_layers"] == [0, 3]

    student = HFLocalBackend(out, device="cpu")
    assert student.model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in student.model.model.layers] == [0, 1]  # renumbered for the cache
    # the kept layers are the teacher's layers 0 and 3, copied exactly
    t = load_file(tiny_models.teacher / "model.safetensors")
    s = load_file(out / "model.safetensors")
    assert torch.equal(s["model.layers.1.mlp.up_proj.weight"], t["model.layers.3.mlp.up_proj.weight"])
    assert torch.equal(s["model.layers.0.self_attn.q_proj.weight"], t["model.layers.0.self_attn.q_proj.weight"])
    c = student.chat([[{"role": "user", "content": "Hi"}]], SamplingParams(temperature=0.0, max_new_tokens=6))[0]
    assert c.ok and c.completion_tokens > 0 and c.text
    assert (out / "chat_template.jinja").read_text() == (tiny_models.teacher / "chat_template.jinja").read_text()
    student.close()


def test_cli_derive_and_bad_input(workspace, tiny_models, capsys):
    from core.cli.main import main

    shutil.copytree(tiny_models.teacher, workspace.models / "t")
    args = ["--workspace", str(workspace.root), "models", "derive", "--teacher", "t", "--layers", "3",
            "--strategy", "even", "--out", "s3", "--no-eval"]
    assert main(args) == 0
    assert "kept 3/4 layers [0, 2, 3]" in capsys.readouterr().out
    assert json.loads((workspace.models / "s3" / "config.json").read_text())["num_hidden_layers"] == 3
    assert main(args) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    bad = ["--workspace", str(workspace.root), "models", "derive", "--teacher", "t", "--layers", "9", "--out", "x"]
    assert main(bad) == 2
    assert "between 1 and the teacher's 4 layers" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_derive_job_through_the_job_manager(workspace, tiny_models):
    from core.config.train import DeriveJob
    from core.jobs.manager import JobManager

    shutil.copytree(tiny_models.teacher, workspace.models / "tiny-teacher")
    manager = JobManager(workspace, devices=[])
    job = manager.submit(DeriveJob(teacher="tiny-teacher", layers=2, output="tiny-derived"))
    info = manager.wait(job, timeout=240)
    assert info.status == "succeeded", manager.logs(job)
    report = json.loads((workspace.runs / job / "output" / "derive_report.json").read_text())
    assert report["kept_layers"] == [0, 3] and report["student_kl"] is not None
    assert (workspace.models / "tiny-derived" / "model.safetensors").exists()
    last = manager.metrics(job)[-1]
    assert last["step"] == last["total"] == 4 and last["params_after"] == report["params_after"]
