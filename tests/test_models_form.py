"""The Models tab's core: the derive and demo forms (errors naming the field), the proposal and parameter preview
once a teacher is picked, a derive job's report, and the model table — all without torch or a browser."""

from __future__ import annotations

import json
import struct
from dataclasses import asdict
from types import SimpleNamespace

import pytest

from core.config.train import DeriveJob, PrepareDemoJob
from core.endpoints import ENDPOINT_PREFIX
from core.errors import UserError
from core.forms.form import FormError
from core.models.derive import REPORT_FILE, DeriveReport, read_report
from core.models.form import DEMO_FORM, DERIVE_FORM, job_report, preview, propose
from core.models.table import COLUMNS, extra_items, model_rows
from core.workspace import PathOutsideWorkspace

DERIVE = {"teacher": "teach", "layers": 2, "strategy": "head_tail", "out_name": "teach-2l"}


def _fake_model(folder, layers: int = 4, hidden: int = 8) -> None:
    """config.json + a safetensors file whose header names one tensor per layer (the preview reads only headers)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                                    "num_hidden_layers": layers, "vocab_size": 32}))
    tensors, offset = {}, 0
    for name in ["model.embed_tokens.weight", *[f"model.layers.{i}.mlp.weight" for i in range(layers)]]:
        size = hidden * hidden * 4
        tensors[name] = {"dtype": "F32", "shape": [hidden, hidden], "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps(tensors).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * offset)


def test_derive_form_builds_a_job_and_names_the_field(workspace):
    _fake_model(workspace.models / "teach")
    job = DERIVE_FORM.build_job(workspace, DERIVE)
    assert isinstance(job, DeriveJob) and (job.teacher, job.layers, job.output) == ("teach", 2, "teach-2l")
    assert job.name == "derive teach-2l"
    with pytest.raises(FormError, match="^teacher"):
        DERIVE_FORM.build_job(workspace, {**DERIVE, "teacher": ""})
    with pytest.raises(FormError, match="endpoint"):
        DERIVE_FORM.build_job(workspace, {**DERIVE, "teacher": f"{ENDPOINT_PREFIX}dash"})
    with pytest.raises(FormError, match="^layers"):
        DERIVE_FORM.build_job(workspace, {**DERIVE, "layers": None})
    with pytest.raises(FormError, match="out_name.*letters"):
        DERIVE_FORM.build_job(workspace, {**DERIVE, "out_name": "../x"})
    with pytest.raises(FormError, match="already exists"):
        DERIVE_FORM.build_job(workspace, {**DERIVE, "out_name": "teach"})
    with pytest.raises(PathOutsideWorkspace):  # web input: a teacher folder outside the workspace is refused
        DERIVE_FORM.build_job(workspace, {**DERIVE, "teacher": "../../etc"})
    assert DERIVE_FORM.values_of(job, workspace)["out_name"] == "teach-2l"  # a past derive loads back


def test_demo_form_keeps_the_layer_count_in_range(workspace):
    assert DEMO_FORM.build_job(workspace, {"demo_layers": 12}) == PrepareDemoJob(student_layers=12)
    for bad in (0, 31):
        with pytest.raises(FormError, match="demo_layers"):
            DEMO_FORM.build_job(workspace, {"demo_layers": bad})


def test_proposal_and_preview_from_the_files(workspace):
    _fake_model(workspace.models / "teach")
    assert propose(workspace, "teach") == (2, "teach-2l")  # half the layers
    assert propose(workspace, "teach", 3) == (3, "teach-3l")
    p = preview(workspace, "teach", 2, "head_tail")
    assert (p.kept, p.total) == ([0, 3], 4)
    assert (p.params_before, p.params_after) == (5 * 64, 3 * 64)  # embeddings stay, 2 of 4 layers go
    with pytest.raises(UserError, match="between 1 and the teacher's 4 layers"):
        preview(workspace, "teach", 9, "head_tail")
    with pytest.raises(UserError):
        propose(workspace, "no-such-model")
    with pytest.raises(PathOutsideWorkspace):
        preview(workspace, "../../etc", 2, "head_tail")


def test_job_report_shows_status_last_event_and_the_derive_report(workspace, tmp_path):
    run = tmp_path / "run"
    (run / "output").mkdir(parents=True)
    info = SimpleNamespace(id="derive-1", name="derive t-2l", status="running", queue_position=None, step=None,
                           done=None, total=None, progress=0.5, finished=False, eta_s=None, reason="",
                           run_dir=str(run))
    jobs = SimpleNamespace(get=lambda job_id: info, metrics=lambda job_id: [{"event": "loading"}, {"event": "pruning"}])
    text, finished = job_report(jobs, "derive-1", {"running": "Running"})
    assert not finished and "Running" in text and "50%" in text and text.endswith("pruning")
    assert read_report(run) is None
    report = DeriveReport(teacher="t", output="t-2l", strategy="head_tail", kept_layers=[0, 3], teacher_layers=4,
                          params_before=5_000_000, params_after=3_000_000)
    (run / "output" / REPORT_FILE).write_text(json.dumps(asdict(report)))
    info.status, info.finished = "succeeded", True
    text, finished = job_report(jobs, "derive-1")
    assert finished and "succeeded" in text and "kept 2/4 layers [0, 3]" in text


def test_model_table_rows(workspace):
    _fake_model(workspace.models / "teach")
    rows = model_rows(workspace)
    assert [r[0] for r in rows] == ["teach"] and len(rows[0]) == len(COLUMNS) and rows[0][4] == 4
    assert extra_items("models/a, org/b\nc") == ["models/a", "org/b", "c"]
    with pytest.raises(PathOutsideWorkspace):
        model_rows(workspace, "../../etc")
