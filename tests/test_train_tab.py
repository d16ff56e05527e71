"""The Training tab's form -> job mapping, preview, plots and i18n (no browser, no torch)."""

from __future__ import annotations

import pytest
import yaml

from core.config.io import parse_config
from studio.tabs import training as tab


def form(**kw) -> dict:
    f = {
        "method": "sft", "student": "tiny-student", "teacher": "tiny-teacher", "dataset": "labelled",
        "eval_split": 0.1, "output": "my-student", "use_lora": False, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.0, "lora_targets": "q_proj, v_proj", "num_train_epochs": 2, "max_steps": 30,
        "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "learning_rate": 1e-4,
        "weight_decay": 0.0, "warmup_ratio": 0.1, "lr_scheduler_type": "cosine", "max_length": 256,
        "save_steps": 10, "logging_steps": 1, "precision": "auto", "gradient_checkpointing": False, "seed": 7,
        "gpus": "cpu", "capture_first": True, "logits": "", "top_k": 10, "kd_ratio": 0.5, "temperature": 1.0,
        "divergence": "jsd", "beta": 0.3, "alpha": 0.1, "support": "tail_bucket", "trainer": "gkd", "lmbda": 0.5,
        "op_beta": 0.5, "op_temperature": 0.9, "max_new_tokens": 64,
    }
    f.update(kw)
    assert set(f) == set(tab.FIELDS)
    return f


def test_each_method_maps_to_its_job(workspace):
    sft = tab.form_config(workspace, form())
    assert sft.kind == "train_sft" and sft.max_steps == 30 and sft.gpus == "cpu" and sft.lora is None
    lora = tab.form_config(workspace, form(use_lora=True))
    assert lora.lora.r == 8 and lora.lora.target_modules == ["q_proj", "v_proj"]

    pipe = tab.form_config(workspace, form(method="kd"))
    assert pipe.kind == "pipeline" and [s.name for s in pipe.steps] == ["capture", "train"]
    capture, train = pipe.steps[0].job, pipe.steps[1].job
    assert capture.kind == "capture" and train.kind == "train_kd"
    assert train.logits == capture.output and capture.top_k == 10 and capture.student == "tiny-student"
    assert train.divergence == "jsd" and train.beta == 0.3

    kd = tab.form_config(workspace, form(method="kd", capture_first=False, logits="labelled-cache"))
    assert kd.kind == "train_kd" and kd.logits == "labelled-cache"

    op = tab.form_config(workspace, form(method="onpolicy", trainer="distillation", lmbda=1.0))
    assert op.kind == "train_onpolicy" and op.trainer == "distillation" and op.lmbda == 1.0


def test_preview_is_exactly_what_start_submits(workspace):
    for method in tab.METHODS:
        f = form(method=method)
        text, cli = tab.preview_texts(workspace, f)
        assert parse_config(yaml.safe_load(text)) == tab.form_config(workspace, f)
        assert cli.startswith("easydistill --workspace ") and "--config" in cli


def test_bad_input_names_the_field(workspace):
    with pytest.raises(tab.FormError, match="student: .*outside the workspace"):
        tab.form_config(workspace, form(student="/etc"))
    with pytest.raises(tab.FormError, match="teacher: choose a teacher"):
        tab.form_config(workspace, form(method="kd", teacher=""))
    with pytest.raises(tab.FormError, match="learning_rate"):
        tab.form_config(workspace, form(learning_rate=0))
    text, cli = tab.preview_texts(workspace, form(dataset=""))
    assert text.startswith("# dataset: choose a dataset") and cli == ""


def test_metrics_figure_plots_every_curve():
    records = [{"step": s, "total": 10, "loss": 3.0 - s * 0.1, "ce": 2.0, "kd": 1.0, "lr": 1e-4, "grad_norm": 1.5,
                "tokens_per_s": 900.0} for s in range(1, 6)]
    records.append({"step": 5, "total": 10, "eval_loss": 2.5})
    records.append({"event": "checkpoint saved at step 5"})
    fig = tab.metrics_figure(records)
    names = {tr.name for tr in fig.data}
    assert names == {"loss", "ce", "kd", "eval_loss", "lr", "grad_norm", "tokens_per_s"}


def test_tab_builds_and_every_text_exists_in_both_languages(workspace):
    import gradio as gr

    from studio.ui import UIContext

    ui = UIContext(workspace=workspace)
    with gr.Blocks():
        tab.build(ui)
    keys = [item for item in ui.registry if item.key.startswith("training.")]
    assert len(keys) > 40
    for item in keys:
        for lang in ("en", "zh"):
            for attr, text in ui.text_for(item, lang).items():
                assert text and not text.startswith("training."), (item.key, attr, lang)
    en, zh = ui.text_for(keys[0], "en"), ui.text_for(keys[0], "zh")
    assert en != zh


def test_cache_summary_describes_a_logit_cache(workspace):
    from core.train.logit_cache import CacheMeta, LogitCacheWriter

    meta = CacheMeta(teacher="tiny-teacher", tokenizer_hash="h", vocab_size=100, k=2)
    with LogitCacheWriter(workspace.cache / "c1", meta) as w:
        w.add("r1", [3, 4], [5, 6], [[1, 2], [3, 4]], [[-0.1, -2.0], [-0.2, -3.0]])
    text = tab.cache_summary(workspace, "c1")
    assert "tiny-teacher" in text and "k=2" in text and "1 rows" in text and "2 positions" in text
    assert tab.cache_summary(workspace, "nope").startswith("⚠️")
