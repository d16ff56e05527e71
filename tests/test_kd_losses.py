"""Invariants of the top-k sparse KD losses (REFERENCE §4): what a user relies on when KD goes into training."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from core.train.kd_losses import (  # noqa: E402
    DIVERGENCES,
    KdLossSpec,
    divergence,
    per_row_mean,
    support_distribution,
    topk_kd_loss,
)

SUPPORTS = ("tail_bucket", "renormalize")


def _teacher_from_logits(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k ids and log-probs of a dense teacher: what the capture job stores."""
    lp = torch.log_softmax(logits.double(), dim=-1)
    top = lp.topk(k, dim=-1)
    return top.indices, top.values


def _random_case(b=2, t=7, v=50, k=5, seed=0, sharp=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(b, t, v, generator=g, dtype=dtype)
    teacher = sharp * torch.randn(b, t, v, generator=g, dtype=torch.float64)
    ids, lps = _teacher_from_logits(teacher, k)
    mask = torch.rand(b, t, generator=g) > 0.3
    mask[0, 0] = True
    return student, ids, lps, mask


def _independent_reference(student, ids, lps, mask, spec: KdLossSpec) -> torch.Tensor:
    """The textbook formulas written out on probabilities (not the module's log-space helpers)."""
    q_all = torch.softmax(student.double() / spec.temperature, dim=-1)
    q = q_all.gather(-1, ids)
    p = lps.double().exp()
    if spec.support == "tail_bucket":
        p = torch.cat([p, (1 - p.sum(-1, keepdim=True))], -1)
        q = torch.cat([q, (1 - q.sum(-1, keepdim=True))], -1)
    else:
        p = p / p.sum(-1, keepdim=True)
        q = q / q.sum(-1, keepdim=True)

    def kl(a, b):
        return (a * (a.log() - b.log())).sum(-1)

    d = spec.divergence
    if d == "forward_kl" or (d == "jsd" and spec.beta == 0):
        per = kl(p, q)
    elif d == "reverse_kl" or (d == "jsd" and spec.beta == 1):
        per = kl(q, p)
    elif d == "jsd":
        m = spec.beta * p + (1 - spec.beta) * q
        per = spec.beta * kl(p, m) + (1 - spec.beta) * kl(q, m)
    elif d == "skew_kl":
        per = kl(p, spec.alpha * p + (1 - spec.alpha) * q)
    elif d == "skew_reverse_kl":
        per = kl(q, (1 - spec.alpha) * p + spec.alpha * q)
    else:
        per = 0.5 * (p - q).abs().sum(-1)
    m = mask.double()
    return (per * m).sum() / m.sum()


@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("kind", DIVERGENCES)
def test_divergence_nonnegative_and_zero_on_match(kind, support):
    spec = KdLossSpec(divergence=kind, support=support, beta=0.3, alpha=0.2)
    student, ids, lps, mask = _random_case(seed=1)
    loss, per_token = topk_kd_loss(student, ids, lps, mask, spec)
    assert loss.item() > 1e-3
    assert (per_token >= -1e-7).all()
    # A teacher that is exactly the student: every divergence vanishes.
    ids_s, lps_s = _teacher_from_logits(student, 5)
    loss0, per0 = topk_kd_loss(student, ids_s, lps_s, mask, spec)
    assert abs(loss0.item()) < 1e-6
    assert per0.abs().max().item() < 1e-6


@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("kind", DIVERGENCES)
def test_matches_independent_formulas(kind, support):
    spec = KdLossSpec(divergence=kind, support=support, beta=0.3, alpha=0.2, temperature=1.7)
    student, ids, lps, mask = _random_case(seed=2)
    expected = _independent_reference(student, ids, lps, mask, spec)
    for fused in (True, False):
        loss, _ = topk_kd_loss(student, ids, lps, mask, spec, fused=fused)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-7, abs=1e-9)


def test_generalized_jsd_endpoints_are_the_kls():
    student, ids, lps, mask = _random_case(seed=3)

    def loss(**kw):
        return topk_kd_loss(student, ids, lps, mask, KdLossSpec(**kw))[0].item()

    assert loss(divergence="jsd", beta=0.0) == pytest.approx(loss(divergence="forward_kl"), rel=1e-12)
    assert loss(divergence="jsd", beta=1.0) == pytest.approx(loss(divergence="reverse_kl"), rel=1e-12)
    # In between: the mixture is used; at β = 1/2 the divergence is symmetric and bounded by log 2.
    logp = support_distribution(lps[0], "tail_bucket")
    logq = support_distribution(torch.log_softmax(student[0], -1).gather(-1, ids[0]), "tail_bucket")
    half = KdLossSpec(divergence="jsd", beta=0.5)
    assert torch.allclose(divergence(logp, logq, half), divergence(logq, logp, half))
    assert (divergence(logp, logq, half) <= math.log(2) + 1e-9).all()
    # Near the ends, JSD(β)/β tends to forward KL·(something ≤ 1): small β is much smaller than forward KL.
    assert loss(divergence="jsd", beta=0.01) < loss(divergence="forward_kl")


@pytest.mark.parametrize("support", SUPPORTS)
def test_topk_plus_tail_sums_to_one(support):
    _, _, lps, _ = _random_case(seed=4, sharp=1.0)
    probs = support_distribution(lps, support).exp()
    assert probs.shape[-1] == lps.shape[-1] + (1 if support == "tail_bucket" else 0)
    assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[:-1], dtype=probs.dtype), atol=1e-9)
    # A stored tail (the capture job's) is used as given.
    tail = 1 - lps.exp().sum(-1)
    with_tail = support_distribution(lps, "tail_bucket", tail).exp()
    assert torch.allclose(with_tail.sum(-1), torch.ones_like(tail), atol=1e-9)


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_fused_gradient_passes_gradcheck(kind):
    spec = KdLossSpec(divergence=kind, beta=0.4, alpha=0.3, temperature=1.3)
    student, ids, lps, mask = _random_case(b=2, t=3, v=11, k=3, seed=5)
    student.requires_grad_(True)

    def f(x):
        return topk_kd_loss(x, ids, lps, mask, spec, fused=True, chunk_elements=22)[0]

    assert torch.autograd.gradcheck(f, (student,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("kind", DIVERGENCES)
def test_fused_gradient_equals_autograd_reference(kind, support):
    spec = KdLossSpec(divergence=kind, support=support, beta=0.6, alpha=0.1, temperature=2.0)
    student, ids, lps, mask = _random_case(b=3, t=9, v=64, k=6, seed=6)
    grads = []
    for fused in (True, False):
        x = student.clone().requires_grad_(True)
        (2.5 * topk_kd_loss(x, ids, lps, mask, spec, fused=fused, chunk_elements=200)[0]).backward()
        grads.append(x.grad)
    assert torch.isfinite(grads[0]).all()
    assert torch.allclose(grads[0], grads[1], atol=1e-12, rtol=1e-9)
    # Prompt (masked-out) positions get no gradient.
    assert grads[0][~mask].abs().max().item() == 0.0


def test_float32_and_bfloat16_logits_give_finite_gradients():
    student, ids, lps, mask = _random_case(b=2, t=16, v=300, k=10, seed=7, dtype=torch.float32)
    ref = None
    for dtype in (torch.float32, torch.bfloat16):
        x = student.detach().to(dtype).requires_grad_(True)
        loss, _ = topk_kd_loss(x, ids, lps.float(), mask, KdLossSpec())
        loss.backward()
        assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()
        ref = loss.item() if ref is None else ref
        assert loss.item() == pytest.approx(ref, rel=2e-2)


def test_masked_positions_do_not_count_and_num_items_splits_like_one_batch():
    spec = KdLossSpec(divergence="jsd", beta=0.5)
    student, ids, lps, mask = _random_case(b=4, t=8, v=40, k=4, seed=8)
    whole, per_token = topk_kd_loss(student, ids, lps, mask, spec)
    # Garbage teacher data where the mask is off changes nothing.
    noisy_ids = torch.where(mask.unsqueeze(-1), ids, torch.zeros_like(ids))
    assert topk_kd_loss(student, noisy_ids, lps, mask, spec)[0].item() == pytest.approx(whole.item(), rel=1e-12)
    # Two micro-batches normalised by the whole batch's token count add up to the whole (gradient accumulation).
    n = int(mask.sum())
    halves = sum(
        topk_kd_loss(student[s], ids[s], lps[s], mask[s], spec, num_items=n)[0].item()
        for s in (slice(0, 2), slice(2, 4))
    )
    assert halves == pytest.approx(whole.item(), rel=1e-12)
    rows = per_row_mean(per_token, mask)
    assert rows.shape == (4,) and (rows > 0).all()


def test_kd_term_is_on_the_scale_of_cross_entropy():
    """A random student vs a peaked teacher: KD ≈ CE in size (1.x divided by the token count twice: ~1000× smaller)."""
    g = torch.Generator().manual_seed(9)
    b, t, v, k = 2, 256, 2000, 10
    student = torch.randn(b, t, v, generator=g)
    teacher = 4.0 * torch.randn(b, t, v, generator=g)
    ids, lps = _teacher_from_logits(teacher, k)
    labels = ids[..., 0]  # the teacher's argmax is the token the student is trained on
    mask = torch.ones(b, t, dtype=torch.bool)
    ce = torch.nn.functional.cross_entropy(student.view(-1, v), labels.reshape(-1)).item()
    kd, _ = topk_kd_loss(student, ids, lps.float(), mask, KdLossSpec())
    assert 0.2 < kd.item() / ce < 5.0, (kd.item(), ce)


def test_out_of_vocabulary_teacher_ids_are_refused():
    student, ids, lps, mask = _random_case(v=20, k=3)
    ids = ids.clone()
    ids[0, 0, 0] = 25
    with pytest.raises(ValueError, match="share the tokenizer"):
        topk_kd_loss(student, ids, lps, mask)


def test_bad_spec_is_refused_with_a_message():
    with pytest.raises(ValueError, match="divergence"):
        KdLossSpec(divergence="kl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        KdLossSpec(alpha=0.0)


def test_padded_output_head_uses_only_the_tokenizer_logits():
    student, ids, lps, mask = _random_case(b=2, t=5, v=40, k=4, seed=10)
    padded = torch.cat([student, 5.0 + torch.randn(2, 5, 24, dtype=student.dtype)], -1).requires_grad_(True)
    loss, _ = topk_kd_loss(padded, ids, lps, mask, vocab_limit=40)
    loss.backward()
    ref, _ = topk_kd_loss(student, ids, lps, mask)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    assert padded.grad[..., 40:].abs().max().item() == 0.0
    unfused, _ = topk_kd_loss(padded.detach(), ids, lps, mask, vocab_limit=40, fused=False)
    assert unfused.item() == pytest.approx(ref.item(), rel=1e-12)


# ------------------------------------------------------------------------------------------------ CE + KD, one pass


def _labels_case(b=3, t=9, v=64, k=6, seed=11, dtype=torch.float64):
    """Logits, shifted labels (−100 on prompt / padding), and a KD mask that is a subset of the label positions with
    one KD position that has no label (the loss must not assume either set contains the other)."""
    student, ids, lps, mask = _random_case(b=b, t=t, v=v, k=k, seed=seed, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[torch.rand(b, t, generator=g) < 0.25] = -100
    labels[:, -1] = -100  # the last position predicts nothing
    mask = mask & (labels != -100)
    mask[1, -1] = True
    return student, labels, ids, lps, mask


@pytest.mark.parametrize("tau", [1.0, 1.7])
@pytest.mark.parametrize("support", SUPPORTS)
@pytest.mark.parametrize("kind", DIVERGENCES)
def test_one_pass_ce_kd_equals_the_autograd_reference(kind, support, tau):
    """Fused CE + KD (one chunked pass, analytic backward) vs plain autograd: fp64 values to 1e-10 relative, gradients
    to 1e-12 absolute; and its CE is F.cross_entropy's."""
    from core.train.kd_losses import ce_kd_loss

    spec = KdLossSpec(divergence=kind, support=support, beta=0.6, alpha=0.2, temperature=tau)
    student, labels, ids, lps, mask = _labels_case()
    tail = 1 - lps.exp().sum(-1)
    outs, grads = [], []
    for fused in (True, False):
        x = student.clone().requires_grad_(True)
        out = ce_kd_loss(x, labels, ids, lps, mask, spec, teacher_tail=tail, ce_weight=0.3, kd_weight=0.7 * tau**2,
                         ce_items=40, kd_items=25, fused=fused, chunk_elements=130)
        (1.5 * out.loss).backward()
        outs.append(out)
        grads.append(x.grad)
    fused, ref = outs
    for a, b in zip(fused[:3], ref[:3], strict=True):
        assert a.item() == pytest.approx(b.item(), rel=1e-10, abs=1e-12)
    assert torch.allclose(fused.per_token, ref.per_token, atol=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-12, rtol=1e-9)
    ce = torch.nn.functional.cross_entropy(student.reshape(-1, 64), labels.reshape(-1), reduction="sum")
    assert fused.ce_sum.item() == pytest.approx(ce.item(), rel=1e-12)
    kd, _ = topk_kd_loss(student, ids, lps, mask, spec, teacher_tail=tail, num_items=25)
    assert fused.loss.item() == pytest.approx(0.3 * ce.item() / 40 + 0.7 * tau**2 * kd.item(), rel=1e-10)
    # Positions with neither a label nor a teacher get no gradient.
    assert grads[0][(labels == -100) & ~mask].abs().max().item() == 0.0


@pytest.mark.parametrize("tau", [1.0, 1.3])
def test_one_pass_ce_kd_passes_gradcheck(tau):
    from core.train.kd_losses import ce_kd_loss

    spec = KdLossSpec(divergence="jsd", beta=0.4, temperature=tau)
    student, labels, ids, lps, mask = _labels_case(b=2, t=4, v=11, k=3, seed=12)
    student.requires_grad_(True)

    def f(x):
        return ce_kd_loss(x, labels, ids, lps, mask, spec, ce_weight=0.4, kd_weight=0.6, chunk_elements=22).loss

    assert torch.autograd.gradcheck(f, (student,), eps=1e-6, atol=1e-7)


def test_one_pass_ce_kd_in_bfloat16_and_with_a_padded_head():
    """bf16 logits (computed in fp32 chunks): loss within 1e-3 of the fp32 reference, gradient within bf16 rounding;
    a padded output head's extra logits get no gradient; λ = 1 still reports CE."""
    from core.train.kd_losses import ce_kd_loss

    student, labels, ids, lps, mask = _labels_case(b=2, t=16, v=300, k=10, seed=13, dtype=torch.float32)
    spec = KdLossSpec(temperature=2.0)
    ref_x = student.clone().requires_grad_(True)
    ref = ce_kd_loss(ref_x, labels, ids, lps.float(), mask, spec, ce_weight=0.5, kd_weight=2.0, fused=False)
    ref.loss.backward()
    padded = torch.cat([student, 3 + torch.randn(2, 16, 20)], -1).to(torch.bfloat16).requires_grad_(True)
    out = ce_kd_loss(padded, labels, ids, lps.float(), mask, spec, ce_weight=0.5, kd_weight=2.0, vocab_limit=300)
    out.loss.backward()
    assert padded.grad.dtype == torch.bfloat16
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-2)  # the bf16 logits themselves are rounded
    assert torch.allclose(padded.grad[..., :300].float(), ref_x.grad, atol=2e-3)
    assert padded.grad[..., 300:].abs().max().item() == 0.0
    only_kd = ce_kd_loss(student, labels, ids, lps.float(), mask, spec, ce_weight=0.0, kd_weight=1.0)
    assert only_kd.ce_sum.item() == pytest.approx(ref.ce_sum.item(), rel=1e-5)


def test_kd_trainer_loss_is_the_one_pass_loss_and_the_model_computes_none(monkeypatch):
    """KdTrainer.compute_loss: the model gets no labels (no loss of its own), no dense cross_entropy runs, and the
    loss is (1 − λ)·CE + λ·τ²·KD over the shifted labels, normalised by the accumulated batch's token counts."""
    pytest.importorskip("trl")
    from types import SimpleNamespace

    from core.train.kd import make_trainer_class
    from core.train.kd_losses import ce_kd_loss

    student, labels, ids, lps, mask = _labels_case(b=2, t=8, v=40, k=4, seed=14, dtype=torch.float32)
    raw_labels = torch.nn.functional.pad(labels[:, :-1], (1, 0), value=-100)  # unshifted: labels[t + 1] at t + 1
    seen = {}

    class Model(torch.nn.Module):
        training = True

        def forward(self, **kw):
            seen.update(kw)
            return SimpleNamespace(logits=student * 1.0)

    def no_dense_ce(*a, **kw):
        raise AssertionError("a dense cross_entropy ran")

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", no_dense_ce)
    spec = KdLossSpec(divergence="reverse_kl", temperature=1.5)
    fake = SimpleNamespace(kd_spec=spec, kd_ratio=0.3, vocab_limit=None, _kd_items=torch.tensor(30),
                           args=SimpleNamespace(average_tokens_across_devices=False),
                           _metrics={"train": {"ce": [], "kd": [], "kd_coverage": []}})
    inputs = {"input_ids": torch.zeros(2, 8, dtype=torch.long), "attention_mask": torch.ones(2, 8),
              "labels": raw_labels, "teacher_ids": ids, "teacher_logprobs": lps.float(),
              "teacher_tail": 1 - lps.float().exp().sum(-1), "kd_mask": mask, "id": ["a", "b"]}
    loss = make_trainer_class().compute_loss(fake, Model(), dict(inputs), num_items_in_batch=torch.tensor(50))
    assert "labels" not in seen and set(seen) == {"input_ids", "attention_mask", "use_cache"}
    want = ce_kd_loss(student, labels, ids, lps.float(), mask, spec, teacher_tail=inputs["teacher_tail"],
                      ce_weight=0.7, kd_weight=0.3 * 1.5**2, ce_items=50, kd_items=30, fused=False).loss
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert len(fake._metrics["train"]["ce"]) == 1 and fake._metrics["train"]["kd_coverage"][0] > 0
