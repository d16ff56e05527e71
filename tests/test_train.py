"""Training jobs on tiny models, real TRL trainers: SFT (full / LoRA), export, stop/resume, logit capture, white-box KD
(alignment by id and position, normalisation under gradient accumulation, learning), on-policy KD.

One module-scoped setup: the tiny teacher is first taught a small task (so its distributions are peaked, as a real
teacher's are), then it writes the answers the student learns from ("teacher-labelled" data).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from core.config.data_jobs import CaptureJob  # noqa: E402
from core.config.train import ExportJob, KdJob, OnPolicyKdJob, SftJob  # noqa: E402
from core.jobs.context import STOP_FLAG, JobContext  # noqa: E402
from core.net import free_port  # noqa: E402
from core.workspace import Workspace  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@dataclass
class StopAfter(JobContext):
    """A job context whose stop flag appears (as when the user presses Stop) at the n-th check."""

    stop_at_check: int = 0
    checks: int = 0

    def should_stop(self) -> bool:
        self.checks += 1
        if self.checks == self.stop_at_check:
            (self.run_dir / STOP_FLAG).touch()
        return super().should_stop()


def make_ctx(ws: Workspace, job_id: str, cls=JobContext, **kw) -> JobContext:
    run_dir = ws.runs / job_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return cls(job_id=job_id, run_dir=run_dir, workspace=ws, devices=["cpu"], **kw)


def metrics(ctx: JobContext) -> list[dict]:
    return [json.loads(line) for line in ctx.metrics_path.read_text().splitlines() if line.strip()]


def _prompts(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(1, 30), rng.randint(1, 30)) for _ in range(n)]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


SMALL = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "logging_steps": 1, "warmup_ratio": 0.0}


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    """Workspace with a taught teacher and a dataset of its answers (ids t0.., 48 rows)."""
    from core.llm.base import SamplingParams
    from core.llm.hf_local import HFLocalBackend
    from core.train import sft

    ws = Workspace.open(tmp_path_factory.mktemp("train") / "ws")
    task = [{"id": f"s{i}", "instruction": f"Add {a} and {b}.", "output": f"Sure: {a} plus {b} is {a + b}."}
            for i, (a, b) in enumerate(_prompts(96, 0))]
    _write(ws.datasets / "task.jsonl", task)
    sft.run(SftJob(student=str(tiny_models.teacher), dataset="task", output="teacher", max_steps=60,
                   learning_rate=3e-3, lr_scheduler_type="constant", save_steps=1000, **SMALL),
            make_ctx(ws, "teach"))
    teacher = HFLocalBackend(ws.models / "teacher", dtype="float32", device="cpu", batch_size=16)
    prompts = _prompts(56, 1)
    convs = [[{"role": "user", "content": f"Add {a} and {b}."}] for a, b in prompts]
    answers = teacher.chat(convs, SamplingParams(temperature=0.0, max_new_tokens=20))
    teacher.close()
    rows = [{"id": f"t{i}", "instruction": c[0]["content"], "output": a.text}
            for i, (c, a) in enumerate(zip(convs, answers, strict=True))]
    assert sum(bool(r["output"].strip()) for r in rows) > 40
    _write(ws.datasets / "labelled.jsonl", rows)
    return ws, tiny_models


def _capture(ws: Workspace, student: Path, job: str = "cap", **kw) -> JobContext:
    from core.train import capture

    ctx = make_ctx(ws, job, kw.pop("cls", JobContext), **kw.pop("ctx_kw", {}))
    cfg = CaptureJob(input="labelled", output="labelled-k8", top_k=8, student=str(student),
                     teacher={"type": "transformers", "model": "teacher", "batch_size": 8}, **kw)
    capture.run(cfg, ctx)
    return ctx


# ------------------------------------------------------------------------------------------------------------- data


def test_answer_mask_is_the_same_with_or_without_generation_markers(tiny_models):
    """Most real chat templates lack {% generation %}: the mask found by rendering turn by turn must equal the
    marker-based one (answer + end-of-turn token, not the prompt, not the template's trailing newline)."""
    from core.train.common import load_tokenizer
    from core.train.dataset import TemplateError, tokenize_conversation

    tok = load_tokenizer(tiny_models.student)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "It is 5."}, {"role": "user", "content": "And 4 + 4?"},
            {"role": "assistant", "content": "8."}]
    plain = tok.chat_template.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
    ids_m, mask_m = tokenize_conversation(tok, msgs)
    ids_p, mask_p = tokenize_conversation(tok, msgs, template=plain)
    assert ids_m == ids_p and mask_m == mask_p
    answers = tok.decode([t for t, m in zip(ids_m, mask_m, strict=True) if m])
    assert answers == "It is 5.<|im_end|>8.<|im_end|>"
    ids_t, mask_t = tokenize_conversation(tok, msgs, max_length=20)
    assert len(ids_t) == 20 and mask_t == mask_m[:20]
    rewriting = "{% for m in messages %}{{ m['content'] | upper if loop.last else m['content'] }}{% endfor %}"
    with pytest.raises(TemplateError, match="generation"):
        tokenize_conversation(tok, msgs, template=rewriting)


# ------------------------------------------------------------------------------------------------------------- SFT


def test_sft_lowers_held_out_loss_and_publishes_a_model(setup):
    from core.train import sft

    ws, tiny = setup
    ctx = make_ctx(ws, "sft-full")
    sft.run(SftJob(student=str(tiny.student), dataset="labelled", eval_split=0.2, output="student-sft", max_steps=24,
                   learning_rate=2e-3, save_steps=12, **SMALL), ctx)
    m = metrics(ctx)
    evals = [r["eval_loss"] for r in m if "eval_loss" in r]
    train = [r for r in m if "loss" in r]
    assert len(evals) == 2 and evals[-1] < evals[0]
    assert train[-1]["loss"] < train[0]["loss"]
    for key in ("lr", "grad_norm", "tokens_per_s"):
        assert any(key in r for r in train), key
    out = ws.models / "student-sft"
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    prov = json.loads((out / "eds_model.json").read_text())
    assert prov["job_id"] == "sft-full" and prov["method"] == "sft"
    # Loss is on the answer only: the prompt tokens carry no label in what the trainer sees.
    from core.train.common import load_tokenizer, prepare_examples

    ex = prepare_examples(ctx, SftJob(student=str(tiny.student), dataset="labelled"), load_tokenizer(tiny.student),
                          None).train[0]
    tok = load_tokenizer(tiny.student)
    answer = tok.decode([t for t, m_ in zip(ex.input_ids, ex.assistant_mask, strict=True) if m_])
    assert "Add" not in answer and answer.endswith("<|im_end|>")


def test_lora_merge_gives_the_unmerged_outputs_and_export_job(setup):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.models import export
    from core.train import sft

    ws, tiny = setup
    ctx = make_ctx(ws, "sft-lora")
    sft.run(SftJob(student=str(tiny.student), dataset="labelled", output="student-lora", max_steps=6,
                   learning_rate=5e-3, save_steps=3, lora={"r": 8, "alpha": 16, "dropout": 0.0}, **SMALL), ctx)
    adapter = ctx.output_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    ids = torch.tensor([[1, 422, 261, 201, 882, 315, 681, 223, 20, 2, 201, 1, 459, 870, 201]])
    base = AutoModelForCausalLM.from_pretrained(str(tiny.student), dtype=torch.float32)
    with torch.no_grad():
        plain = base(ids).logits
        unmerged = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(str(ws.models / "student-lora")).eval()(ids).logits
    assert (unmerged - plain).abs().max() > 1e-3  # the adapter learned something
    assert torch.allclose(merged, unmerged, atol=1e-4)
    # The export job does the same from the run id (e.g. after a stopped run), into a new model name.
    ectx = make_ctx(ws, "export-1")
    export.run(ExportJob(source="sft-lora", output="student-lora-exported"), ectx)
    with torch.no_grad():
        exported = AutoModelForCausalLM.from_pretrained(str(ws.models / "student-lora-exported")).eval()(ids).logits
    assert torch.allclose(exported, unmerged, atol=1e-4)
    with pytest.raises(export.ExportError, match="already exists"):
        export.run(ExportJob(source="sft-lora", output="student-lora-exported"), make_ctx(ws, "export-2"))


def test_stop_saves_a_checkpoint_and_resume_continues_from_its_step(setup):
    from core.train import sft

    ws, tiny = setup
    cfg = SftJob(student=str(tiny.student), dataset="labelled", output="student-stop", max_steps=8,
                 learning_rate=1e-3, save_steps=100, **SMALL)
    ctx = make_ctx(ws, "sft-stop", StopAfter, stop_at_check=3)
    sft.run(cfg, ctx)
    ckpts = sorted(p.name for p in (ctx.output_dir / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-3"]  # saved by Stop (save_steps=100 would not have saved yet)
    assert not (ws.models / "student-stop").exists()
    assert any(r.get("stopped") for r in metrics(ctx))

    (ctx.run_dir / STOP_FLAG).unlink()
    resumed = make_ctx(ws, "sft-stop", attempt=2)
    sft.run(cfg, resumed)
    m = metrics(resumed)
    steps_after = [r["step"] for r in m[m.index(next(r for r in m if "resuming" in r.get("event", ""))):]
                   if "loss" in r]
    assert steps_after and min(steps_after) == 4 and max(steps_after) == 8
    assert (ws.models / "student-stop" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------------ capture + KD


def test_capture_matches_a_direct_teacher_forward_and_resumes(setup):
    from transformers import AutoModelForCausalLM

    from core.train.common import load_tokenizer
    from core.train.dataset import tokenize_conversation
    from core.train.logit_cache import LogitCache

    ws, tiny = setup
    ctx = _capture(ws, tiny.student, job="cap-stop", cls=StopAfter, ctx_kw={"stop_at_check": 3})
    partial = LogitCache(ws.cache / "labelled-k8")
    assert 0 < len(partial) < 56
    (ctx.run_dir / STOP_FLAG).unlink()  # the manager clears the flag when the job is resumed
    ctx2 = _capture(ws, tiny.student, job="cap-stop", ctx_kw={"attempt": 2})
    cache = LogitCache(ws.cache / "labelled-k8")
    assert len(cache) == 56 and any("resuming" in r.get("event", "") for r in metrics(ctx2))
    assert cache.meta.k == 8 and cache.meta.teacher == "teacher"

    tok = load_tokenizer(ws.models / "teacher")
    model = AutoModelForCausalLM.from_pretrained(str(ws.models / "teacher")).eval()
    row = json.loads((ws.datasets / "labelled.jsonl").read_text().splitlines()[5])
    msgs = [{"role": "user", "content": row["instruction"]}, {"role": "assistant", "content": row["output"]}]
    ids, mask = tokenize_conversation(tok, msgs, 512)
    got = cache.get(row["id"])
    assert list(got.positions) == [i for i, m_ in enumerate(mask) if m_]
    assert list(got.token_ids) == [ids[i] for i in got.positions]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
    want = lp[torch.as_tensor(got.positions.astype("int64")) - 1].topk(8, -1)
    assert (torch.from_numpy(got.topk_ids.astype("int64")) == want.indices).float().mean() > 0.95
    assert torch.allclose(torch.from_numpy(got.topk_logprobs), want.values.float(), atol=1e-2)
    assert ((got.tail >= 0) & (got.tail <= 1)).all()


def test_capture_refuses_a_student_with_another_tokenizer(setup, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from core.train.capture import CaptureError

    ws, tiny = setup
    other = tmp_path / "other-student"
    shutil.copytree(tiny.student, other)
    tok = AutoTokenizer.from_pretrained(str(other))
    tok.add_tokens(["<|brand_new|>"])
    tok.save_pretrained(str(other))
    with pytest.raises(CaptureError, match="black-box KD"):
        _capture(ws, other, job="cap-bad")


@pytest.fixture(scope="module")
def cache(setup):
    from core.train.logit_cache import LogitCache

    ws, tiny = setup
    if not (ws.cache / "labelled-k8" / "meta.json").exists() or len(LogitCache(ws.cache / "labelled-k8")) < 56:
        _capture(ws, tiny.student, job="cap-full")
    return LogitCache(ws.cache / "labelled-k8")


def _kd_cfg(tiny, **kw) -> KdJob:
    base = dict(student=str(tiny.student), teacher="teacher", logits="labelled-k8", dataset="labelled",
                kd_ratio=0.5, **SMALL)
    base.update(kw)
    return KdJob(**base)


def _per_row_kd(trainer_bits, rows: list, batch: int) -> dict[str, float]:
    """Per-row KD of the (fixed) student, computed batch by batch in the given order through the KD collator."""
    from core.train.kd_losses import KdLossSpec, per_row_mean, topk_kd_loss

    model, collator = trainer_bits
    out = {}
    for s in range(0, len(rows), batch):
        chunk = rows[s:s + batch]
        b = collator(chunk)
        with torch.no_grad():
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        _, per_tok = topk_kd_loss(logits, b["teacher_ids"], b["teacher_logprobs"], b["kd_mask"], KdLossSpec(),
                                  teacher_tail=b["teacher_tail"])
        for r, v in zip(chunk, per_row_mean(per_tok, b["kd_mask"]).tolist(), strict=True):
            out[r["id"]] = v
    return out


def test_kd_alignment_is_by_row_id_and_position_not_row_order(setup, cache):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from core.train import kd
    from core.train.common import load_model, load_tokenizer, prepare_examples

    ws, tiny = setup
    cfg = _kd_cfg(tiny)
    tok = load_tokenizer(tiny.student)
    items = prepare_examples(make_ctx(ws, "align"), cfg, tok, None).train
    rows = [e.to_record() for e in items]
    model = load_model(tiny.student, cfg, cpu=True).eval()
    bits = (model, kd.KdCollator(DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id), cache, 8))
    ref = _per_row_kd(bits, rows, 1)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    for order, batch in ((shuffled, 4), (rows[::-1], 7)):
        got = _per_row_kd(bits, order, batch)
        assert got.keys() == ref.keys()
        assert max(abs(got[k] - ref[k]) for k in ref) < 1e-4
    assert min(ref.values()) > 0  # every row has teacher positions
    total, covered, missing = kd.coverage(cache, items)
    assert covered == total and missing == 0


def test_kd_gradient_is_the_same_with_grad_accumulation_1_or_4(setup, cache):
    from core.train import kd

    ws, tiny = setup
    norms = []
    for bs, ga in ((4, 1), (1, 4)):
        ctx = make_ctx(ws, f"kd-ga{ga}")
        cfg = _kd_cfg(tiny, max_steps=1, per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
                      output=f"kd-ga{ga}", logging_steps=1, warmup_ratio=0.0, save_steps=100)
        trainer, *_ = kd.build(cfg, ctx)
        trainer.train()
        norms.append(next(r["grad_norm"] for r in trainer.state.log_history if "grad_norm" in r))
    print("grad norms:", norms)
    assert norms[0] == pytest.approx(norms[1], rel=1e-3)


def _held_out_kl(student_dir: Path, teacher_dir: Path, rows: list[dict]) -> float:
    """Mean forward KL(teacher ‖ student) over answer tokens of held-out rows, full vocabulary."""
    from transformers import AutoModelForCausalLM

    from core.train.common import load_tokenizer
    from core.train.dataset import tokenize_conversation

    tok = load_tokenizer(teacher_dir)
    t = AutoModelForCausalLM.from_pretrained(str(teacher_dir)).eval()
    s = AutoModelForCausalLM.from_pretrained(str(student_dir)).eval()
    total, n = 0.0, 0
    for r in rows:
        ids, mask = tokenize_conversation(tok, [{"role": "user", "content": r["instruction"]},
                                                {"role": "assistant", "content": r["output"]}])
        x = torch.tensor([ids])
        with torch.no_grad():
            lp_t = torch.log_softmax(t(x).logits[0, :-1], -1)
            lp_s = torch.log_softmax(s(x).logits[0, :-1], -1)
        m = torch.tensor(mask[1:], dtype=torch.bool)
        kl = (lp_t.exp() * (lp_t - lp_s)).sum(-1)[m]
        total, n = total + kl.sum().item(), n + int(m.sum())
    return total / n


def test_kd_lowers_the_students_kl_to_the_teacher_on_held_out_prompts(setup, cache):
    from core.train import kd

    ws, tiny = setup
    ctx = make_ctx(ws, "kd-learn")
    kd.run(_kd_cfg(tiny, eval_split=0.2, max_steps=30, learning_rate=2e-3, save_steps=15, output="student-kd",
                   divergence="forward_kl"), ctx)
    from core.train.dataset import in_eval_split

    rows = [json.loads(x) for x in (ws.datasets / "labelled.jsonl").read_text().splitlines()]
    held = [r for r in rows if in_eval_split(r["id"], 0.2, 42)]
    assert held
    before = _held_out_kl(tiny.student, ws.models / "teacher", held)
    after = _held_out_kl(ws.models / "student-kd", ws.models / "teacher", held)
    print("KL before, after:", before, after)
    assert after < 0.7 * before, (before, after)
    train = [r for r in metrics(ctx) if "kd" in r and "loss" in r]
    assert train and all("ce" in r for r in train) and train[-1]["kd"] < train[0]["kd"]
    assert all(r["kd_coverage"] == pytest.approx(1.0) for r in train)


def test_kd_refuses_a_cache_captured_at_another_temperature(setup, cache):
    from core.train import kd
    from core.train.logit_cache import CacheError

    ws, tiny = setup
    with pytest.raises(CacheError, match="temperature: cache has 1.0, the job uses 2.0"):
        kd.build(_kd_cfg(tiny, temperature=2.0, max_steps=1), make_ctx(ws, "kd-bad-temp"))


# ------------------------------------------------------------------------------------------------------- on-policy


@pytest.mark.parametrize("trainer", ["gkd", "distillation"])
def test_on_policy_kd_trains_and_publishes(setup, trainer):
    from core.train import onpolicy

    ws, tiny = setup
    ctx = make_ctx(ws, f"op-{trainer}")
    onpolicy.run(OnPolicyKdJob(student=str(tiny.student), teacher="teacher", dataset="labelled", trainer=trainer,
                               max_steps=3, max_new_tokens=12, lmbda=1.0, learning_rate=1e-3, save_steps=100,
                               output=f"student-{trainer}", **SMALL), ctx)
    losses = [r["loss"] for r in metrics(ctx) if "loss" in r]
    assert len(losses) == 3 and all(v == v and v >= 0 for v in losses)
    assert (ws.models / f"student-{trainer}" / "model.safetensors").is_file()


def test_capture_from_an_unreachable_remote_teacher_fails_with_the_reason(setup):
    from core.train import capture

    ws, tiny = setup
    cfg = CaptureJob(input="labelled", output="remote-k8", top_k=8, tokenizer="teacher",
                     teacher={"type": "openai", "model": "teacher",
                              "endpoint": {"base_url": "http://127.0.0.1:9/v1", "max_retries": 0, "timeout_s": 2}})
    with pytest.raises(capture.CaptureError, match="could not score any row"):
        capture.run(cfg, make_ctx(ws, "cap-remote"))


# ------------------------------------------------------------------------------------------------ data parallel (CPU)

DDP_SCRIPT = '''
import json, os, sys
from core.config.io import parse_config
from core.jobs.context import JobContext, STOP_FLAG
from core.workspace import Workspace
from core.train import kd, sft

spec = json.loads(sys.argv[1])
rank = int(os.environ.get("RANK", "0"))
print("DDP rank", rank, "of", os.environ.get("WORLD_SIZE"), flush=True)


class Ctx(JobContext):
    def should_stop(self):
        if rank == 1 and spec.get("stop_on_rank1_at") and self._n() >= spec["stop_on_rank1_at"]:
            return True  # only one rank sees the request: the callback must make every rank agree
        return super().should_stop()

    def _n(self):
        self.__dict__["n"] = self.__dict__.get("n", 0) + 1
        return self.__dict__["n"]


ws = Workspace.open(spec["ws"])
cfg = parse_config(spec["config"])
ctx = Ctx(job_id=spec["job"], run_dir=ws.runs / spec["job"], workspace=ws, devices=["cpu"], is_main=rank == 0)
(kd if cfg.kind == "train_kd" else sft).run(cfg, ctx)
import torch.distributed as dist
if dist.is_initialized():
    dist.destroy_process_group()
'''


def _ddp(ws: Workspace, tmp_path: Path, job: str, config: dict, **extra) -> subprocess.CompletedProcess:
    import os
    import sys

    script = tmp_path / "ddp_entry.py"
    script.write_text(DDP_SCRIPT)
    (ws.runs / job).mkdir(parents=True, exist_ok=True)
    port = free_port()
    # torchrun: accelerate's own launcher runs one process for --cpu; the trainers go through accelerate either way
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(script), json.dumps({"ws": str(ws.root), "job": job, "config": config,
                                                                **extra})]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)


import subprocess  # noqa: E402


def test_kd_and_stop_under_two_process_data_parallel(setup, cache, tmp_path):
    """Two CPU processes (torchrun, gloo): KD token counts are gathered across ranks, only rank 0 writes,
    and a stop seen by one rank stops both at the same step with a checkpoint (no hang)."""
    ws, tiny = setup
    kd_cfg = _kd_cfg(tiny, max_steps=3, per_device_train_batch_size=2, output="student-ddp", save_steps=100)
    proc = _ddp(ws, tmp_path, "kd-ddp", kd_cfg.model_dump(mode="json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDP rank 1 of 2" in proc.stdout and "DDP rank 0 of 2" in proc.stdout
    assert (ws.models / "student-ddp" / "model.safetensors").is_file()
    lines = [json.loads(x) for x in (ws.runs / "kd-ddp" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "kd" in r and "loss" in r]
    assert steps == [1, 2, 3]  # one writer: each step logged once

    sft_cfg = SftJob(student=str(tiny.student), dataset="labelled", output="student-ddp-stop", max_steps=6,
                     save_steps=100, learning_rate=1e-3, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                     logging_steps=1)
    proc = _ddp(ws, tmp_path, "sft-ddp-stop", sft_cfg.model_dump(mode="json"), stop_on_rank1_at=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = [p.name for p in (ws.runs / "sft-ddp-stop" / "output" / "checkpoints").glob("checkpoint-*")]
    assert ckpts == ["checkpoint-2"], proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (ws.models / "student-ddp-stop").exists()
