"""The training form (core.train.form): each method builds its job, errors name the field, web input stays in the
workspace, past jobs load back; the training curves and the cache line; and the Training tab built on it (no browser,
no torch)."""

from __future__ import annotations

import pytest
import yaml

from core.config.io import parse_config
from core.config.train import KdJob, OnPolicyKdJob, SftJob
from core.errors import UserError
from core.forms.form import FormError
from core.train.form import FORM, LORA_LR_FACTOR, METHODS, PER_METHOD, method_defaults
from core.workspace import PathOutsideWorkspace


def form(**kw) -> dict:
    """The form's own defaults (what a fresh tab shows) with a student, teacher and dataset picked."""
    values = {**FORM.defaults(), "student": "tiny-student", "teacher": "tiny-teacher", "dataset": "labelled",
              "output": "my-student", "gpus": "cpu", "max_steps": 30, "lora_r": 8, "lora_targets": "q_proj, v_proj"}
    values.update(kw)
    assert set(values) == {f.name for f in FORM.fields}
    return values


def test_each_method_builds_its_job(workspace):
    sft = FORM.build_job(workspace, form())
    assert isinstance(sft, SftJob) and sft.max_steps == 30 and sft.gpus == "cpu" and sft.lora is None
    assert sft.name == sft.output == "my-student" and sft.eval_split == 0.05
    lora = FORM.build_job(workspace, form(use_lora=True))
    assert lora.lora.r == 8 and lora.lora.target_modules == ["q_proj", "v_proj"]
    assert FORM.build_job(workspace, form(use_lora=True, lora_targets="all-linear")).lora.target_modules == "all-linear"
    assert FORM.build_job(workspace, form(gpus="2")).gpus == 2
    assert FORM.build_job(workspace, form(gpus="0,1")).gpus == [0, 1]

    pipe = FORM.build_job(workspace, form(method="kd", divergence="jsd", beta=0.3))
    assert pipe.kind == "pipeline" and [s.name for s in pipe.steps] == ["capture", "train"]
    capture, train = pipe.steps[0].job, pipe.steps[1].job
    assert capture.kind == "capture" and isinstance(train, KdJob)
    assert train.logits == capture.output == "labelled-tiny-teacher-k10"
    assert capture.top_k == 10 and capture.student == "tiny-student" and capture.teacher.model == "tiny-teacher"
    assert capture.temperature == train.temperature and capture.gpus == train.gpus == pipe.gpus == "cpu"
    assert train.divergence == "jsd" and train.beta == 0.3
    no_cache = FORM.build_job(workspace, form(method="kd", capture_first=False, logits=""))
    assert no_cache.kind == "pipeline"  # nothing to train from: capture first anyway

    kd = FORM.build_job(workspace, form(method="kd", capture_first=False, logits="labelled-cache"))
    assert isinstance(kd, KdJob) and kd.logits == "labelled-cache"

    op = FORM.build_job(workspace, form(method="onpolicy", trainer="distillation", lmbda=1.0, op_beta=0.2))
    assert isinstance(op, OnPolicyKdJob) and op.trainer == "distillation" and op.lmbda == 1.0 and op.beta == 0.2


def test_preview_is_exactly_what_start_submits(workspace):
    for method in METHODS:
        job = FORM.build_job(workspace, form(method=method))
        text, cli = FORM.preview(workspace, job)
        assert parse_config(yaml.safe_load(text)) == job
        assert cli.startswith("easydistill --workspace ") and "--config" in cli


def test_errors_name_the_field(workspace):
    with pytest.raises(FormError, match="teacher: choose the teacher"):
        FORM.build_job(workspace, form(method="kd", teacher=""))
    with pytest.raises(FormError, match="dataset: choose"):
        FORM.build_job(workspace, form(dataset=""))
    with pytest.raises(FormError, match="learning_rate"):
        FORM.build_job(workspace, form(learning_rate=0))
    with pytest.raises(FormError, match="lora_r"):
        FORM.build_job(workspace, form(use_lora=True, lora_r=0))
    with pytest.raises(FormError, match="^op_beta"):  # on-policy's β, not KD's field on the same config key
        FORM.build_job(workspace, form(method="onpolicy", op_beta=2))
    with pytest.raises(FormError, match="^'beta'"):
        FORM.build_job(workspace, form(method="kd", beta=2))
    with pytest.raises(FormError, match="top_k"):
        FORM.build_job(workspace, form(method="kd", top_k=0))
    with pytest.raises(FormError, match="student: .*endpoint"):
        FORM.build_job(workspace, form(student="endpoint:dash"))
    with pytest.raises(UserError, match="gpus"):
        FORM.build_job(workspace, form(gpus="0,x"))


def test_paths_outside_the_workspace_are_refused(workspace, tmp_path):
    with pytest.raises(PathOutsideWorkspace, match="student"):
        FORM.build_job(workspace, form(student="/etc"))
    with pytest.raises(PathOutsideWorkspace, match="dataset"):
        FORM.build_job(workspace, form(method="kd", dataset="../../secret.jsonl"))
    with pytest.raises(PathOutsideWorkspace, match="logits"):
        FORM.build_job(workspace, form(method="kd", capture_first=False, logits=str(tmp_path)))
    # a hub id names no file here; a local CLI user may name any path
    assert FORM.build_job(workspace, form(student="Qwen/Qwen2.5-0.5B-Instruct")).student
    assert FORM.build_job(workspace, form(student="/etc"), confine=False).student == "/etc"


@pytest.mark.parametrize("values", [
    {}, {"use_lora": True, "gpus": "0,1", "save_total_limit": None},
    {"method": "kd", "top_k": 20, "divergence": "tv"}, {"method": "kd", "capture_first": False, "logits": "c1"},
    {"method": "onpolicy", "trainer": "distillation", "op_temperature": 0.7, "max_new_tokens": 64},
])
def test_a_job_round_trips_through_the_form(workspace, values):
    job = FORM.build_job(workspace, form(**values))
    assert FORM.accepts(job)
    loaded = FORM.values_of(job, workspace)
    assert FORM.build_job(workspace, loaded) == job
    assert {k: loaded[k] for k in values} == values


def test_other_jobs_do_not_load(workspace):
    from core.config.registry import PipelineJob, PipelineStep
    from core.config.selftest import SelftestJob

    assert not FORM.accepts(SelftestJob(steps=1))
    sft = FORM.build_job(workspace, form())
    other = PipelineJob(steps=[PipelineStep(name="a", job=SelftestJob(steps=1)), PipelineStep(name="b", job=sft)])
    assert not FORM.accepts(other) and "pipeline" in FORM.kinds()


def test_method_defaults_come_from_the_configs():
    assert set(PER_METHOD) == {"learning_rate", "num_train_epochs", "gradient_accumulation_steps"}
    sft, op = method_defaults("sft"), method_defaults("onpolicy")
    assert sft["learning_rate"] == SftJob.model_fields["learning_rate"].default
    assert op["learning_rate"] == OnPolicyKdJob.model_fields["learning_rate"].default < sft["learning_rate"]
    assert method_defaults("kd", use_lora=True)["learning_rate"] == pytest.approx(
        KdJob.model_fields["learning_rate"].default * LORA_LR_FACTOR)
    assert FORM.defaults()["learning_rate"] == sft["learning_rate"]  # the form opens on SFT


def test_metrics_figure_overlays_the_losses():
    from core.jobs.plots import metrics_figure

    records = [{"step": s, "total": 10, "loss": 3.0 - s * 0.1, "ce": 2.0, "kd": 1.0, "lr": 1e-4, "grad_norm": 1.5,
                "tokens_per_s": 900.0, "epoch": s / 5} for s in range(1, 6)]
    records.append({"step": 5, "total": 10, "eval_loss": 2.5, "eval_ce": 2.4})
    records.append({"event": "checkpoint saved at step 5"})
    fig = metrics_figure(records)
    assert {tr.name for tr in fig.data} == {"loss", "ce", "kd", "eval_loss", "eval_ce", "lr", "grad_norm",
                                            "tokens_per_s"}
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["loss", "lr", "grad_norm", "tokens_per_s"]  # CE, KD, eval losses share the loss panel; no epoch


def test_cache_summary_describes_a_logit_cache(workspace):
    from core.train.logit_cache import CacheError, CacheMeta, LogitCacheWriter, cache_summary

    meta = CacheMeta(teacher="tiny-teacher", tokenizer_hash="h", vocab_size=100, k=2)
    with LogitCacheWriter(workspace.cache / "c1", meta) as w:
        w.add("r1", [3, 4], [5, 6], [[1, 2], [3, 4]], [[-0.1, -2.0], [-0.2, -3.0]])
    s = cache_summary(workspace, "c1")
    assert (s["name"], s["teacher"], s["k"], s["rows"], s["positions"]) == ("c1", "tiny-teacher", 2, 1, 2)
    assert s["bytes_per_token"] > 0
    with pytest.raises(CacheError):
        cache_summary(workspace, "nope")
    with pytest.raises(PathOutsideWorkspace):
        cache_summary(workspace, "../../..")


def test_tab_builds_and_every_text_exists_in_both_languages(workspace):
    import gradio as gr

    from studio.tabs import training as tab
    from studio.ui import UIContext

    ui = UIContext(workspace=workspace)
    with gr.Blocks():
        tab.build(ui)
    keys = [item for item in ui.registry if item.key.startswith("training.")]
    assert len(keys) > 40
    for item in keys:
        for lang in ("en", "zh"):
            for attr, text in ui.text_for(item, lang).items():
                assert text and not str(text).startswith("training."), (item.key, attr, lang)
    en, zh = ui.text_for(keys[0], "en"), ui.text_for(keys[0], "zh")
    assert en != zh
    assert {n for p, n in ui.shared["form_fields"] if p == "training"} == {f.name for f in FORM.fields}
    for key in ("cache_info", "cache_per_token", "cache_empty", "started", "no_job"):
        assert ui.t(f"training.{key}") != f"training.{key}"
