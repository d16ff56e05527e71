"""Multi-teacher KD (core.train.kd_mixture): several teacher caches over the student's tokenizer mixed per token by
weight into one target on the union of their top-k ids, one KD job, one loss.

The mixture formula against a hand computation (and the padded-support loss against the plain-autograd reference,
values and gradients); weights 1/0 reproduce the single-teacher loss to the bit through the real collators and
trainer; a two-teacher job (real TRL trainer, caches captured from two tiny teachers) runs and its KD loss falls.
"""

from __future__ import annotations

import json
import math
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from core.config.data_jobs import CaptureJob  # noqa: E402
from core.config.train import KdJob  # noqa: E402
from core.jobs.context import JobContext  # noqa: E402
from core.workspace import Workspace  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _ctx(ws: Workspace, job_id: str) -> JobContext:
    run_dir = ws.runs / job_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobContext(job_id=job_id, run_dir=run_dir, workspace=ws, devices=["cpu"])


# ---------------------------------------------------------------------------------------------- the formula, by hand


def _lp(*p: float) -> list[float]:
    return [math.log(x) for x in p]


def test_a_half_half_mixture_matches_a_hand_computed_loss():
    import numpy as np

    from core.train.kd_losses import KdLossSpec, topk_kd_loss
    from core.train.kd_mixture import mix_topk, shares

    # Position 0: A ranks ids 0, 1 (0.5, 0.3; tail 0.2), B ranks 1, 2 (0.6, 0.2; tail 0.2) -> union {0, 1, 2}.
    # Position 1: both rank 3, 4 -> union {3, 4}, one slot of padding.
    ids_a, lp_a, tail_a = np.array([[0, 1], [3, 4]]), np.array([_lp(.5, .3), _lp(.6, .1)]), np.array([.2, .3])
    ids_b, lp_b, tail_b = np.array([[1, 2], [4, 3]]), np.array([_lp(.6, .2), _lp(.5, .4)]), np.array([.2, .1])
    share = shares(np.array([1.0, 1.0]), np.ones((2, 2), dtype=bool))
    ids, lp, tail, valid = mix_topk([ids_a, ids_b], [lp_a.astype(np.float32), lp_b.astype(np.float32)],
                                    [tail_a.astype(np.float32), tail_b.astype(np.float32)], share)
    assert ids.tolist() == [[0, 1, 2], [3, 4, 0]] and valid.tolist() == [[True] * 3, [True, True, False]]
    want_p = [[.25, .45, .10], [.50, .30]]  # ½·(p_A + p_B), an id missing from a teacher's top-k counting 0 there
    for t in range(2):
        assert np.exp(lp[t][valid[t]]) == pytest.approx(want_p[t], abs=1e-6)
    assert tail == pytest.approx([.2, .2], abs=1e-7)  # ½·(r_A + r_B)

    z = torch.tensor([[1.0, 0.5, -0.3, 0.2, 2.0, -1.0], [0.1, -0.2, 0.3, 1.5, 0.7, 0.0]], dtype=torch.float64)
    q = torch.softmax(z, -1).tolist()
    hand = []  # forward KL on the union + one tail bucket, written out
    for t, support in enumerate(([0, 1, 2], [3, 4])):
        q_tail = 1 - sum(q[t][i] for i in support)
        d = sum(p * math.log(p / q[t][i]) for p, i in zip(want_p[t], support, strict=True))
        hand.append(d + .2 * math.log(.2 / q_tail))
    args = (z, torch.from_numpy(ids), torch.from_numpy(lp).double(), torch.ones(2, dtype=torch.bool))
    kw = dict(teacher_tail=torch.from_numpy(tail).double(), teacher_valid=torch.from_numpy(valid))
    for fused in (True, False):
        loss, per_token = topk_kd_loss(*args, KdLossSpec(), fused=fused, **kw)
        assert per_token.tolist() == pytest.approx(hand, rel=1e-5)
        assert loss.item() == pytest.approx(sum(hand) / 2, rel=1e-5)


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv"])
@pytest.mark.parametrize("support", ["tail_bucket", "renormalize"])
def test_a_padded_support_gives_the_reference_values_and_gradients(divergence, support):
    """The fused loss with `teacher_valid` equals the plain-autograd one, and both equal the loss on the unpadded
    supports row by row (padding adds nothing, its gradient is 0, nothing is NaN)."""
    from core.train.kd_losses import KdLossSpec, ce_kd_loss

    g = torch.Generator().manual_seed(0)
    n, v, k = 5, 40, 6
    spec = KdLossSpec(divergence=divergence, support=support, temperature=1.5)
    z = torch.randn(n, v, generator=g, dtype=torch.float64)
    ids = torch.stack([torch.randperm(v, generator=g)[:k] for _ in range(n)])
    p = torch.softmax(torch.randn(n, k + 1, generator=g, dtype=torch.float64), -1)
    lp, tail = p[:, :k].log(), p[:, k]
    sizes = [6, 3, 1, 4, 6]
    valid = torch.tensor([[j < s for j in range(k)] for s in sizes])
    labels = torch.randint(0, v, (n,), generator=g)
    kw = dict(teacher_tail=tail, teacher_valid=valid, ce_weight=0.3, kd_weight=0.7)
    outs = []
    for fused in (True, False):
        x = z.clone().requires_grad_(True)
        out = ce_kd_loss(x, labels, torch.where(valid, ids, 7), lp, torch.ones(n, dtype=torch.bool), spec,
                         fused=fused, **kw)
        (grad,) = torch.autograd.grad(out.loss, x)
        assert torch.isfinite(grad).all()
        outs.append((out.per_token, grad))
    assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-10, atol=1e-12)
    assert torch.allclose(outs[0][1], outs[1][1], rtol=1e-8, atol=1e-12)
    for r, s in enumerate(sizes):  # the same row with only its s real slots, no mask
        t_tail = tail[r:r + 1] if support == "tail_bucket" else None
        one = ce_kd_loss(z[r:r + 1], None, ids[r:r + 1, :s], lp[r:r + 1, :s], torch.ones(1, dtype=torch.bool), spec,
                         teacher_tail=t_tail, ce_weight=0.0, fused=False)
        assert outs[0][0][r].item() == pytest.approx(one.per_token[0].item(), rel=1e-10)


def test_teachers_config_parses_text_and_keeps_single_teacher_configs():
    job = KdJob(student="s", dataset="d", teachers="cA=0.7, cB=0.3")
    assert [(t.cache, t.weight) for t in job.teachers] == [("cA", 0.7), ("cB", 0.3)] and not job.teacher
    assert KdJob(student="s", dataset="d", teachers={"cA": 1, "cB": 0}).teachers[1].weight == 0
    single = KdJob(student="s", dataset="d", teacher="t", logits="cA")
    assert single.logits == "cA" and single.teachers == []
    with pytest.raises(ValueError, match="not both"):
        KdJob(student="s", dataset="d", logits="cA", teachers="cB=1")
    with pytest.raises(ValueError, match="weight must be > 0"):
        KdJob(student="s", dataset="d", teachers="cA=0, cB=0")
    with pytest.raises(ValueError, match="name the teacher"):
        KdJob(student="s", dataset="d", logits="cA")


def test_the_training_form_builds_a_multi_teacher_job_without_capture(workspace):
    from core.train.form import FORM

    values = {**FORM.defaults(), "method": "kd", "student": "s", "teacher": "t", "dataset": "d",
              "teachers": "cA=0.5, cB=0.5"}
    job = FORM.build_job(workspace, values, confine=False)
    assert isinstance(job, KdJob) and [t.cache for t in job.teachers] == ["cA", "cB"] and job.logits == ""
    assert FORM.values_of(job, workspace)["teachers"] == "cA=0.5, cB=0.5"


# ------------------------------------------------------------------------------------------ real caches, real trainer


@pytest.fixture(scope="module")
def two_teachers(tiny_models, tmp_path_factory):
    """A workspace with a dataset and two caches over the student's tokenizer: the tiny teacher (k=8) and a second
    teacher of the same shape and tokenizer, other weights (k=6)."""
    from transformers import AutoTokenizer

    from core.models import tiny
    from core.train import capture

    ws = Workspace.open(tmp_path_factory.mktemp("multi") / "ws")
    rng = random.Random(0)
    rows = [{"id": f"r{i}", "instruction": f"Add {a} and {b}.", "output": f"Sure: {a} plus {b} is {a + b}."}
            for i, (a, b) in enumerate((rng.randint(1, 30), rng.randint(1, 30)) for _ in range(24))]
    (ws.datasets / "add.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    second = ws.models / "teacher-b"
    tiny._build_model(second, AutoTokenizer.from_pretrained(tiny_models.tokenizer), tiny.TEACHER_SHAPE, 77)
    for name, model, k in (("cA", tiny_models.teacher, 8), ("cB", second, 6)):
        capture.run(CaptureJob(input="add", output=name, top_k=k, student=str(tiny_models.student),
                               teacher={"type": "transformers", "model": str(model), "batch_size": 12}),
                    _ctx(ws, f"cap-{name}"))
    return ws, tiny_models


def _cfg(tiny, **kw) -> KdJob:
    base = dict(student=str(tiny.student), dataset="add", kd_ratio=0.5, per_device_train_batch_size=4,
                gradient_accumulation_steps=1, logging_steps=1, warmup_ratio=0.0, save_steps=1000)
    return KdJob(**{**base, **kw})


def test_weights_one_zero_reproduce_the_single_teacher_loss_exactly(two_teachers):
    from core.train import kd

    ws, tiny = two_teachers
    single, *_ = kd.build(_cfg(tiny, teacher=str(tiny.teacher), logits="cA"), _ctx(ws, "one"))
    mixed, *_ = kd.build(_cfg(tiny, teacher=str(tiny.teacher), teachers="cA=1, cB=0"), _ctx(ws, "one-zero"))
    half, *_ = kd.build(_cfg(tiny, teacher=str(tiny.teacher), teachers="cA=0.5, cB=0.5"), _ctx(ws, "half"))
    assert (single.kd_method, mixed.kd_method) == ("logits", "mixture")
    model = single.model.eval()
    rows = [single.train_dataset[i] for i in range(8)]
    for chunk in (rows[:4], rows[4:]):
        a, b, c = (t.data_collator(chunk) for t in (single, mixed, half))
        assert "teacher_valid" not in b and torch.equal(a["teacher_ids"], b["teacher_ids"])
        la, lb = single.compute_loss(model, a), mixed.compute_loss(model, b)
        assert torch.equal(la, lb), (la.item(), lb.item())
        assert "teacher_valid" in c and c["teacher_ids"].shape[-1] > 8  # the union is wider than either top-k
        lc = half.compute_loss(model, c)
        assert abs(lc.item() - la.item()) > 1e-4  # the second teacher counts at ½


def test_a_two_teacher_kd_job_runs_and_its_kd_loss_falls(two_teachers):
    from core.train import kd

    ws, tiny = two_teachers
    ctx = _ctx(ws, "kd-two")
    kd.run(_cfg(tiny, teachers="cA=0.6, cB=0.4", max_steps=12, learning_rate=3e-3, lr_scheduler_type="constant",
                kd_ratio=0.9, output="student-two"), ctx)
    rows = [json.loads(x) for x in ctx.metrics_path.read_text().splitlines() if x.strip()]
    kd_vals = [r["kd"] for r in rows if "kd" in r and "loss" in r]
    print("kd per step:", [round(x, 3) for x in kd_vals])
    assert len(kd_vals) == 12 and sum(kd_vals[-3:]) / 3 < 0.85 * sum(kd_vals[:3]) / 3
    events = [r["event"] for r in rows if "event" in r]
    assert any(e.startswith("multi-teacher KD: 'cA' × 0.6, 'cB' × 0.4") for e in events), events
    prov = json.loads((ws.models / "student-two" / "eds_model.json").read_text())
    assert prov["kd_method"] == "mixture" and [t["cache"] for t in prov["teachers"]] == ["cA", "cB"]
