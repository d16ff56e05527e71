"""DPO / CogPO jobs on tiny models: the per-pair β loss against the formula, learning on a toy preference set,
stop and resume. One toy task: the chosen answer states the sum, the rejected one dodges it.
"""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from core.config.train import DpoJob  # noqa: E402
from core.jobs.context import STOP_FLAG  # noqa: E402
from core.workspace import Workspace  # noqa: E402
from tests.test_train import StopAfter, make_ctx, metrics  # noqa: E402

pytestmark = pytest.mark.timeout(600)

SMALL = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "logging_steps": 1, "warmup_ratio": 0.0}
DODGES = ("I do not know.", "Sorry, no idea.", "Maybe ask someone else.", "That is hard to say.")
TYPES = ("easy", "hard")


def _pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 30), rng.randint(1, 30)
        rows.append({"id": f"p{seed}-{i}", "instruction": f"Add {a} and {b}.", "chosen": f"{a} plus {b} is {a + b}.",
                     "rejected": rng.choice(DODGES), "pair_type": TYPES[i % 2], "beta": 0.1 if i % 2 else 0.5})
    return rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_models):
    ws = Workspace.open(tmp_path_factory.mktemp("dpo") / "ws")
    rows = _pairs(48, 0)
    (ws.datasets / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return ws


def _sequence_logps(model, batch) -> torch.Tensor:
    """Σ log π(token) over each sequence's completion tokens, computed here from plain logits (not TRL's code)."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (logp * batch["completion_mask"][:, 1:]).sum(dim=1)


def _loss_and_formula(ws, tiny, job: str, **cfg) -> tuple[float, float, torch.Tensor]:
    """TRL-side loss of one batch of 4 pairs vs −mean log σ(β_i·Δ_i) from independent log-probs (reference = the
    tiny teacher, so Δ ≠ 0 before any training step)."""
    from transformers import AutoModelForCausalLM

    from core.train import dpo

    config = DpoJob(student=str(tiny.student), dataset="prefs", reference=str(tiny.teacher), output=f"{job}-out",
                    **SMALL, **cfg)
    trainer, *_ = dpo.build(config, make_ctx(ws, job))
    rows = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.data_collator(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch)).item()
    policy = _sequence_logps(trainer.model, batch)
    ref = _sequence_logps(AutoModelForCausalLM.from_pretrained(str(tiny.teacher), dtype=torch.float32), batch)
    pc, pr = policy.chunk(2)
    rc, rr = ref.chunk(2)
    delta = (pc - rc) - (pr - rr)
    beta = batch["beta"] if "beta" in batch else torch.full_like(delta, config.beta)
    expected = -torch.nn.functional.logsigmoid(beta * delta).mean().item()
    return loss, expected, beta


def test_per_pair_beta_loss_is_the_formula_and_no_column_means_the_global_beta(ws, tiny_models):
    by_column, want, betas = _loss_and_formula(ws, tiny_models, "beta-col", beta_column="beta")
    assert sorted(set(betas.tolist()), key=float) == pytest.approx([0.1, 0.5])  # two rows, two different β
    assert by_column == pytest.approx(want, rel=1e-4, abs=1e-5)
    by_type, want_t, betas_t = _loss_and_formula(ws, tiny_models, "beta-type", pair_type_beta="easy=0.5, hard=0.1")
    assert betas_t.tolist() == pytest.approx(betas.tolist())  # the same β per row, from the pair types
    assert by_type == pytest.approx(want_t, rel=1e-4, abs=1e-5) and by_type == pytest.approx(by_column, rel=1e-4)
    pre, want_p, _ = _loss_and_formula(ws, tiny_models, "beta-pre", beta_column="beta", precompute_ref_log_probs=True)
    assert pre == pytest.approx(want_p, rel=1e-4, abs=1e-5) and pre == pytest.approx(by_column, rel=1e-4)
    plain, want_g, betas_g = _loss_and_formula(ws, tiny_models, "beta-global", beta=0.3)
    assert betas_g.tolist() == pytest.approx([0.3] * 4)
    assert plain == pytest.approx(want_g, rel=1e-4, abs=1e-5)
    assert abs(plain - by_column) > 1e-4  # β really changes the loss


def test_pairs_from_teacher_and_student_datasets_by_id(tmp_path):
    """1.x rank_dpo's shape: chosen = the teacher's output, rejected = the student's answer with the same id; ties,
    empty answers and ids the student lacks are dropped and said; an eval_dataset supplies the held-out pairs."""
    from core.jobs.context import JobContext
    from core.train.preference import load_pairs

    ws = Workspace.open(tmp_path / "ws")
    teacher = [{"id": f"r{i}", "instruction": f"Q{i}?", "output": f"A{i}."} for i in range(6)]
    student = [{"id": "r0", "output": "no"}, {"id": "r1", "output": "A1."}, {"id": "r2", "output": ""},
               {"id": "r3", "output": "maybe"}, {"id": "r4", "output": "eh"}]
    for name, rows in (("teacher", teacher), ("student", student), ("held", _pairs(3, 9))):
        (ws.datasets / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DpoJob(student="s", dataset="teacher", rejected_from="student", eval_dataset="held", beta_column="beta")
    pairs = load_pairs(JobContext("j", tmp_path / "run", ws), cfg, with_beta=True)
    assert [p["id"] for p in pairs.train] == ["r0", "r3", "r4"]
    assert pairs.train[0]["prompt"] == [{"role": "user", "content": "Q0?"}]
    assert pairs.train[0]["chosen"][0]["content"] == "A0." and pairs.train[0]["rejected"][0]["content"] == "no"
    assert pairs.train[0]["beta"] == 0.1  # no β column in these rows: the global β
    notes = " | ".join(pairs.notes)
    assert "1 row(s) of teacher have no answer" in notes and "same skipped" in notes and "without both" in notes
    assert len(pairs.eval) == 3 and {p["beta"] for p in pairs.eval} == {0.1, 0.5}


def test_dpo_raises_the_held_out_margin_and_publishes(ws, tiny_models):
    from core.train import dpo

    ctx = make_ctx(ws, "dpo-learn")
    dpo.run(DpoJob(student=str(tiny_models.student), dataset="prefs", eval_split=0.25, output="student-dpo",
                   max_steps=12, save_steps=12, learning_rate=5e-4, beta=0.1, **SMALL), ctx)
    m = metrics(ctx)
    margins = [r["eval_rewards/margins"] for r in m if "eval_rewards/margins" in r]
    assert margins[0] == pytest.approx(0.0, abs=1e-4)  # evaluated before the first step: policy = reference
    assert margins[-1] > 0.5, margins
    assert [r for r in m if "eval_rewards/accuracies" in r][-1]["eval_rewards/accuracies"] > 0.5
    assert any("rewards/chosen" in r and "rewards/rejected" in r for r in m)
    prov = json.loads((ws.models / "student-dpo" / "eds_model.json").read_text())
    assert prov["method"] == "dpo" and prov["beta"] == 0.1


def test_dpo_with_lora_uses_the_adapter_disabled_base_as_reference(ws, tiny_models):
    from core.train import dpo

    ctx = make_ctx(ws, "dpo-lora")
    dpo.run(DpoJob(student=str(tiny_models.student), dataset="prefs", output="student-dpo-lora", max_steps=3,
                   save_steps=100, learning_rate=5e-3, lora={"r": 4, "alpha": 8, "dropout": 0.0}, **SMALL), ctx)
    m = metrics(ctx)
    assert any("reference: the LoRA-disabled base" in r.get("event", "") for r in m)
    first = next(r for r in m if "loss" in r)
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # a fresh adapter (B = 0): policy = reference, −log σ(0)
    assert (ws.models / "student-dpo-lora" / "model.safetensors").is_file()


def test_dpo_stop_saves_a_checkpoint_and_resume_finishes(ws, tiny_models):
    from core.train import dpo

    cfg = DpoJob(student=str(tiny_models.student), dataset="prefs", output="student-dpo-stop", max_steps=6,
                 save_steps=100, learning_rate=1e-4, beta_column="beta", **SMALL)
    ctx = make_ctx(ws, "dpo-stop", StopAfter, stop_at_check=2)
    dpo.run(cfg, ctx)
    assert sorted(p.name for p in (ctx.output_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (ws.models / "student-dpo-stop").exists()
    (ctx.run_dir / STOP_FLAG).unlink()
    resumed = make_ctx(ws, "dpo-stop", attempt=2)
    dpo.run(cfg, resumed)
    m = metrics(resumed)
    start = m.index(next(r for r in m if "resuming" in r.get("event", "")))
    steps = [r["step"] for r in m[start:] if "loss" in r]
    assert min(steps) == 3 and max(steps) == 6
    prov = json.loads((ws.models / "student-dpo-stop" / "eds_model.json").read_text())
    assert prov["method"] == "cogpo"


def test_cogpo_yaml_runs_headless_through_the_cli(tmp_path, tiny_models):
    """`easydistill --config cogpo.yaml`: the job runs in its own worker process and publishes the model."""
    import os
    import subprocess
    import sys

    import yaml

    ws = tmp_path / "ws"
    Workspace.open(ws)
    (ws / "datasets" / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _pairs(8, 3)))
    cfg = {"kind": "train_dpo", "student": str(tiny_models.student), "dataset": "prefs", "output": "cli-cogpo",
           "pair_type_beta": {"easy": 0.3, "hard": 0.05}, "max_steps": 2, "gpus": "cpu", **SMALL}
    (tmp_path / "cogpo.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    proc = subprocess.run([sys.executable, "-m", "core.cli.main", "--workspace", str(ws), "--config",
                           str(tmp_path / "cogpo.yaml")], capture_output=True, text=True, timeout=540, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prov = json.loads((ws / "models" / "cli-cogpo" / "eds_model.json").read_text())
    assert prov["method"] == "cogpo" and prov["steps"] == 2
    log = next((ws / "runs").iterdir()) / "metrics.jsonl"
    assert "per-pair β: 8 from pair_type" in log.read_text(encoding="utf-8")
