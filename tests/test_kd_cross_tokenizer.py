"""Cross-tokenizer KD and padded vocabularies: what the tokenizer check says a KD job will do, and that it does it.

A teacher on its own vocabulary (core.models.tiny.build_other_vocab_teacher: BPE trained on other text to another
size) and the tiny student: the check picks `uld`, the form captures nothing, and a real KD job runs TRL's GOLD
trainer with the ULD loss, whose loss falls. A student whose output head is padded (same tokenizer): the check picks
`truncate`, and the cached KD loss and its gradient on the shared rows equal the unpadded student's.
"""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from core.config.data_jobs import CaptureJob  # noqa: E402
from core.config.train import KdJob  # noqa: E402
from core.jobs.context import JobContext  # noqa: E402
from core.models import registry  # noqa: E402
from core.workspace import Workspace  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _ctx(ws: Workspace, job_id: str) -> JobContext:
    run_dir = ws.runs / job_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(job_id=job_id, run_dir=run_dir, workspace=ws, devices=["cpu"])


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    """(workspace with dataset `add`, the tiny pair, a teacher on another vocabulary, a student with a padded head)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.models.tiny import build_other_vocab_teacher

    root = tmp_path_factory.mktemp("xtok")
    other = build_other_vocab_teacher(root)
    padded = root / "student-padded"
    m = AutoModelForCausalLM.from_pretrained(tiny_models.student)
    rows = m.config.vocab_size
    m.resize_token_embeddings(rows + 64, mean_resizing=False)  # as Qwen pads 151,646 tokens to 151,936 / 152,064
    m.save_pretrained(padded)
    AutoTokenizer.from_pretrained(tiny_models.student).save_pretrained(padded)
    ws = Workspace.open(root / "ws")
    rng = random.Random(0)
    data = [{"id": f"r{i}", "instruction": f"Add {a} and {b}.", "output": f"Sure: {a} plus {b} is {a + b}."}
            for i, (a, b) in enumerate((rng.randint(1, 30), rng.randint(1, 30)) for _ in range(30))]
    (ws.datasets / "add.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    return ws, tiny_models, other, padded


def test_the_check_says_which_method_a_kd_job_will_use(setup, capsys):
    from core.cli.main import main
    from core.train.form import FORM

    ws, tiny, other, padded = setup
    same = registry.check_logit_kd(tiny.teacher, tiny.student)
    assert same.ok and same.method == registry.KD_LOGITS
    pad = registry.check_logit_kd(tiny.teacher, padded)
    assert pad.ok and pad.method == registry.KD_TRUNCATE and "(truncation)" in pad.message
    cross = registry.check_logit_kd(other, tiny.student)
    assert not cross.ok and cross.method == registry.KD_ULD
    assert "tokenizers differ" in cross.message and "GOLD" in cross.message and "ULD" in cross.message
    assert cross.details["teacher_tokens"] != cross.details["student_tokens"]

    assert main(["--workspace", str(ws.root), "models", "check", "--teacher", str(other), "--student",
                 str(tiny.student)]) == 1
    assert "KD method: uld" in capsys.readouterr().out
    assert main(["--workspace", str(ws.root), "models", "check", "--teacher", str(tiny.teacher), "--student",
                 str(padded)]) == 0
    assert "KD method: truncate" in capsys.readouterr().out

    # the Training form: a cross-tokenizer pair is one KD job (the teacher runs in it), no capture step
    values = {**FORM.defaults(), "method": "kd", "student": str(tiny.student), "teacher": str(other),
              "dataset": "add", "capture_first": True}
    assert FORM.kd_check(ws, values).method == registry.KD_ULD
    job = FORM.build_job(ws, values, confine=False)
    assert isinstance(job, KdJob) and job.logits == ""
    same_pair = FORM.build_job(ws, {**values, "teacher": str(tiny.teacher)}, confine=False)
    assert same_pair.kind == "pipeline"  # same tokenizer: capture → train_kd as before


def _metrics(ctx: JobContext) -> list[dict]:
    return [json.loads(x) for x in ctx.metrics_path.read_text().splitlines() if x.strip()]


def test_a_cross_tokenizer_kd_job_runs_uld_and_its_loss_falls(setup):
    from core.train import kd

    ws, tiny, other, _ = setup
    ctx = _ctx(ws, "kd-uld")
    kd.run(KdJob(student=str(tiny.student), teacher=str(other), dataset="add", kd_ratio=1.0, eval_split=0.2,
                 max_steps=12, learning_rate=3e-3, lr_scheduler_type="constant", warmup_ratio=0.0,
                 per_device_train_batch_size=4, gradient_accumulation_steps=1, logging_steps=1, save_steps=12,
                 eval_steps=12, output="student-uld"), ctx)
    rows = _metrics(ctx)
    kd_vals = [r["kd"] for r in rows if "kd" in r and "loss" in r]
    print("ULD per step:", [round(x, 3) for x in kd_vals])
    assert len(kd_vals) == 12 and sum(kd_vals[-3:]) / 3 < 0.8 * sum(kd_vals[:3]) / 3
    assert any("eval_loss" in r for r in rows)
    events = " | ".join(r["event"] for r in rows if "event" in r)
    assert "tokenizers differ" in events and "cross-tokenizer KD (ULD)" in events
    assert "aligned by byte offsets" in events  # both tiny tokenizers are byte-level BPE: extended ULD
    prov = json.loads((ws.models / "student-uld" / "eds_model.json").read_text())
    assert prov["kd_method"] == "uld" and prov["teacher"] == str(other)


def test_hybrid_uld_trains(setup):
    from core.train import kd

    ws, tiny, other, _ = setup
    trainer, *_ = kd.build(KdJob(student=str(tiny.student), teacher=str(other), dataset="add", kd_ratio=0.5,
                                 uld_hybrid=True, max_steps=2, per_device_train_batch_size=4,
                                 gradient_accumulation_steps=1, logging_steps=1, save_steps=100),
                           _ctx(ws, "kd-uld-hybrid"))
    assert trainer.kd_method == "uld" and trainer.uld_loss_fn.use_hybrid_loss
    trainer.train()
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logged) == 2 and all("matched_loss" in r and "ce" in r and "kd" in r for r in logged)


def test_a_padded_head_uses_truncation_and_matches_the_same_vocab_loss(setup):
    from core.train import capture, kd

    ws, tiny, _, padded = setup
    capture.run(CaptureJob(input="add", output="add-k8", top_k=8, student=str(padded),
                           teacher={"type": "transformers", "model": str(tiny.teacher), "batch_size": 15}),
                _ctx(ws, "cap"))
    base = dict(teacher=str(tiny.teacher), logits="add-k8", dataset="add", kd_ratio=0.5, temperature=1.0,
                per_device_train_batch_size=4, gradient_accumulation_steps=1, save_steps=100)
    plain, *_ = kd.build(KdJob(student=str(tiny.student), **base), _ctx(ws, "kd-plain"))
    wide, *_ = kd.build(KdJob(student=str(padded), **base), _ctx(ws, "kd-padded"))
    assert (plain.kd_method, wide.kd_method) == ("logits", "truncate")
    head = plain.model.get_output_embeddings().weight
    head_wide = wide.model.get_output_embeddings().weight
    shared = head.shape[0]
    assert head_wide.shape[0] == shared + 64 and torch.equal(head_wide[:shared], head)
    rows = [plain.train_dataset[i] for i in range(4)]
    losses, grads = [], []
    for trainer in (plain, wide):
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, trainer.data_collator(rows))
        loss.backward()
        losses.append(loss.detach())
        grads.append(trainer.model.get_output_embeddings().weight.grad)
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-6, abs=1e-7)
    assert torch.allclose(grads[0], grads[1][:shared], rtol=1e-4, atol=1e-7)
    assert torch.count_nonzero(grads[1][shared:]) == 0  # the padding rows learn nothing
