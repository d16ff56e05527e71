"""Top-k sparse distillation losses (REFERENCE §4): the teacher is known only on its top-k ids plus a tail bucket.

Why this file exists: EasyDistill 1.x scattered the cached top-k into a dense B·T·V tensor, then divided the KL by the
token count twice. Here the divergence only ever touches the k (+1 tail) entries per position; the student's
log-softmax needs a logsumexp over the vocabulary, which the fused path computes in row chunks, and its backward
writes the gradient of the logits analytically (d log q_i / d z_j = (δ_ij − softmax_j) / τ) into one buffer, so no
B·T·V intermediate is kept besides the logits and their own gradient.

Conventions (shared with the KD trainer and the capture job):
- `student_logits[b, t]` is the student's prediction for the token at t+1 (the model's raw output, unshifted);
  the teacher arrays and the mask are placed at the same positions, so nothing is sliced or copied here.
- Teacher log-probs come from the cache as captured (at the capture temperature); the student is tempered by τ.
- D is summed over the support, masked, and averaged ONCE over N = Σ m_t (or over `num_items`, the token count of
  the whole accumulated batch, so gradient accumulation gives the same update as one big batch).
- The τ² factor and the (1 − λ)·CE + λ·KD mix belong to the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Divergence = Literal["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv"]
Support = Literal["tail_bucket", "renormalize"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv")

# Smallest probability a tail bucket may take. fp32 sums of k probabilities are exact to ~1e-7, so a tail below
# this is noise; flooring keeps log(tail) and its gradient finite when the support holds (almost) all the mass.
TAIL_FLOOR = 1e-6
# Elements per chunk of the vocabulary-wide work in the fused path (64 MiB of fp32 per temporary).
CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class KdLossSpec:
    """Which divergence, on which support, at which student temperature."""

    divergence: Divergence = "forward_kl"
    beta: float = 0.5  # generalized JSD: 0 = forward KL, 1 = reverse KL (TRL GKD convention)
    alpha: float = 0.1  # skew KL / skew reverse KL mixing (DistiLLM)
    temperature: float = 1.0
    support: Support = "tail_bucket"

    def __post_init__(self) -> None:
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence '{self.divergence}'; choose one of {', '.join(DIVERGENCES)}")
        if self.support not in ("tail_bucket", "renormalize"):
            raise ValueError(f"unknown support '{self.support}'; choose tail_bucket or renormalize")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


# --------------------------------------------------------------------------------------------------------------------
# Distributions on the support and the divergences between them: (N, S) tensors, S = k or k + 1. Cheap, plain autograd.


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate on both sides of −log 2."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def tail_logprob(logprobs: torch.Tensor, floor: float = TAIL_FLOOR) -> torch.Tensor:
    """log of the mass outside the support, (N, k) -> (N,), floored at `floor` (see TAIL_FLOOR)."""
    covered = torch.logsumexp(logprobs, dim=-1).clamp(max=math.log1p(-floor))
    return _log1mexp(covered)


def support_distribution(
    logprobs: torch.Tensor, support: Support, tail: torch.Tensor | None = None
) -> torch.Tensor:
    """Log-probabilities over the compared support: k ids + one tail bucket, or the k ids renormalised.

    `tail` (N,) is the tail's probability when it is known more precisely than 1 − Σ exp(logprobs) (the capture job
    stores it); otherwise it is derived.
    """
    if support == "renormalize":
        return logprobs - torch.logsumexp(logprobs, dim=-1, keepdim=True)
    if tail is None:
        log_tail = tail_logprob(logprobs)
    else:
        log_tail = torch.log(tail.to(logprobs.dtype).clamp(min=TAIL_FLOOR))
    return torch.cat([logprobs, log_tail.unsqueeze(-1)], dim=-1)


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row, 0·log 0 = 0."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def _mix(logp: torch.Tensor, logq: torch.Tensor, w_p: float) -> torch.Tensor:
    """log(w_p·p + (1 − w_p)·q), stable."""
    return torch.logaddexp(logp + math.log(w_p), logq + math.log1p(-w_p))


def divergence(logp: torch.Tensor, logq: torch.Tensor, spec: KdLossSpec) -> torch.Tensor:
    """D(p_t, q_t) for each row of teacher `logp` and student `logq` (same support, each summing to 1)."""
    kind = spec.divergence
    if kind == "forward_kl":
        return _kl(logp, logq)
    if kind == "reverse_kl":
        return _kl(logq, logp)
    if kind == "jsd":
        beta = spec.beta
        if beta == 0.0:
            return _kl(logp, logq)
        if beta == 1.0:
            return _kl(logq, logp)
        logm = _mix(logp, logq, beta)  # m = β·p + (1 − β)·q
        return beta * _kl(logp, logm) + (1.0 - beta) * _kl(logq, logm)
    if kind == "skew_kl":
        return _kl(logp, _mix(logp, logq, spec.alpha))  # KL(p ‖ αp + (1 − α)q)
    if kind == "skew_reverse_kl":
        return _kl(logq, _mix(logp, logq, 1.0 - spec.alpha))  # KL(q ‖ (1 − α)p + αq)
    if kind == "tv":
        return 0.5 * (logp.exp() - logq.exp()).abs().sum(-1)
    raise ValueError(f"unknown divergence '{kind}'")


def _pair(
    student_support_logq: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    teacher_tail: torch.Tensor | None,
    spec: KdLossSpec,
) -> torch.Tensor:
    """Per-row divergence from the student's log q on the k teacher ids (N, k)."""
    logp = support_distribution(teacher_logprobs.to(student_support_logq.dtype), spec.support, teacher_tail)
    logq = support_distribution(student_support_logq, spec.support)
    return divergence(logp, logq, spec)


# --------------------------------------------------------------------------------------------------------------------
# Entry point.


def topk_kd_loss(
    student_logits: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    mask: torch.Tensor,
    spec: KdLossSpec = KdLossSpec(),
    *,
    teacher_tail: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
    vocab_limit: int | None = None,
    fused: bool = True,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(1/N)·Σ_t m_t·D(p_t, q_t) and the per-position D (detached, zero where m_t = 0).

    Shapes: logits (..., V); teacher_ids / teacher_logprobs (..., k); mask and teacher_tail (...). N = `num_items`
    when given (tokens in the whole accumulated batch), else Σ mask. Masked-out positions may hold any ids.
    `vocab_limit`: use only the first n logits (the tokenizer's tokens) when the output head is padded beyond them.
    """
    full_vocab = student_logits.shape[-1]
    vocab = min(full_vocab, vocab_limit) if vocab_limit else full_vocab
    k = teacher_ids.shape[-1]
    lead = student_logits.shape[:-1]
    if teacher_ids.shape[:-1] != lead or teacher_logprobs.shape != teacher_ids.shape or mask.shape != lead:
        raise ValueError(
            f"shape mismatch: logits {tuple(student_logits.shape)}, teacher ids {tuple(teacher_ids.shape)}, "
            f"teacher logprobs {tuple(teacher_logprobs.shape)}, mask {tuple(mask.shape)}"
        )
    logits2d = student_logits.reshape(-1, full_vocab)
    rows = mask.reshape(-1).nonzero().squeeze(-1)
    ids = teacher_ids.reshape(-1, k).index_select(0, rows).long()
    if ids.numel() and (int(ids.max()) >= vocab or int(ids.min()) < 0):
        raise ValueError(
            f"teacher token id {int(ids.max())} is outside the student's vocabulary ({vocab}); "
            "teacher and student must share the tokenizer"
        )
    t_lp = teacher_logprobs.reshape(-1, k).index_select(0, rows)
    t_tail = None if teacher_tail is None else teacher_tail.reshape(-1).index_select(0, rows)
    denom = float(num_items) if num_items is not None else float(rows.numel())
    denom = max(denom, 1.0)
    if fused:
        loss, per_row = _FusedTopKKd.apply(logits2d, rows, ids, t_lp, t_tail, spec, denom, chunk_elements, vocab)
    else:
        loss, per_row = _reference_rows(logits2d[:, :vocab], rows, ids, t_lp, t_tail, spec, denom)
    per_token = torch.zeros(logits2d.shape[0], dtype=torch.float32, device=student_logits.device)
    per_token.index_copy_(0, rows, per_row.detach().float())
    return loss, per_token.view(lead)


def _reference_rows(
    logits2d: torch.Tensor,
    rows: torch.Tensor,
    ids: torch.Tensor,
    t_lp: torch.Tensor,
    t_tail: torch.Tensor | None,
    spec: KdLossSpec,
    denom: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Straightforward sparse path: full log-softmax with autograd, then gather. Keeps several (N, V) tensors."""
    x = logits2d.index_select(0, rows).to(_compute_dtype(logits2d))
    logq_all = torch.log_softmax(x / spec.temperature, dim=-1)
    per_row = _pair(logq_all.gather(1, ids), t_lp, t_tail, spec)
    return per_row.sum() / denom, per_row


class _FusedTopKKd(torch.autograd.Function):
    """Chunked logsumexp forward; analytic backward into a single gradient buffer.

    The small (N, k) part (support distributions and the divergence) runs under autograd inside forward, which
    yields G = ∂L/∂log q_i. The vocabulary-wide part is then: ∂L/∂z_j = (Σ_i G_i·[j = id_i] − softmax_j·Σ_i G_i) / τ.
    """

    @staticmethod
    def forward(ctx, logits2d, rows, ids, t_lp, t_tail, spec: KdLossSpec, denom: float, chunk_elements: int,
                vocab: int):
        tau = spec.temperature
        chunk = max(1, chunk_elements // vocab)
        n = rows.numel()
        cdt = _compute_dtype(logits2d)
        lse = torch.empty(n, dtype=cdt, device=logits2d.device)
        sup = torch.empty(ids.shape, dtype=cdt, device=logits2d.device)
        with torch.no_grad():
            for s in range(0, n, chunk):
                r = rows[s : s + chunk]
                span = _span(r)
                if span is not None and logits2d.dtype == cdt:  # a run of rows: read the logits in place
                    x = logits2d[span[0] : span[1], :vocab]
                    if tau != 1.0:
                        x = x / tau
                else:
                    x = logits2d.index_select(0, r)[:, :vocab].to(cdt)
                    if tau != 1.0:
                        x.div_(tau)
                lse[s : s + chunk] = torch.logsumexp(x, dim=-1)
                sup[s : s + chunk] = x.gather(1, ids[s : s + chunk])
                del x
        with torch.enable_grad():
            logq = (sup - lse.unsqueeze(1)).requires_grad_(True)
            per_row = _pair(logq, t_lp, t_tail, spec)
            loss = per_row.sum() / denom
            (g,) = torch.autograd.grad(loss, logq) if n else (torch.zeros_like(logq),)
        ctx.save_for_backward(logits2d, rows, ids, lse, g)
        ctx.tau = tau
        ctx.chunk = chunk
        ctx.vocab = vocab
        ctx.mark_non_differentiable(per_row)
        return loss.detach(), per_row.detach()

    @staticmethod
    def backward(ctx, grad_loss, _grad_per_row):
        logits2d, rows, ids, lse, g = ctx.saved_tensors
        grad = torch.zeros_like(logits2d)
        if rows.numel() == 0:
            return grad, None, None, None, None, None, None, None, None
        tau, chunk, vocab = ctx.tau, ctx.chunk, ctx.vocab
        target = grad if vocab == grad.shape[1] else grad.narrow(1, 0, vocab)
        g = g * (grad_loss.to(g.dtype) / tau)
        g_sum = g.sum(-1, keepdim=True)
        in_place = grad.dtype == g.dtype
        for s in range(0, rows.numel(), chunk):
            r = rows[s : s + chunk]
            span = _span(r) if in_place else None
            if span is not None:  # a run of rows: compute straight into the gradient buffer
                x = target[span[0] : span[1]]
                torch.div(logits2d[span[0] : span[1], :vocab], tau, out=x)
            else:
                x = logits2d.index_select(0, r)[:, :vocab].to(g.dtype)
                if tau != 1.0:
                    x.div_(tau)
            x.sub_(lse[s : s + chunk].unsqueeze(1)).exp_()  # softmax(z/τ), in place
            x.mul_(-g_sum[s : s + chunk])
            x.scatter_add_(1, ids[s : s + chunk], g[s : s + chunk])
            if span is None:
                target.index_copy_(0, r, x.to(grad.dtype))
            del x
        return grad, None, None, None, None, None, None, None, None


def _span(rows: torch.Tensor) -> tuple[int, int] | None:
    """(start, end) when `rows` (sorted, unique) is one contiguous run, else None."""
    first, last = int(rows[0]), int(rows[-1])
    return (first, last + 1) if last - first + 1 == rows.numel() else None


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """fp32 for fp32/bf16/fp16 logits; fp64 stays fp64 (gradcheck)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def per_row_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean D over each sequence's assistant tokens (B,): what alignment tests and logs compare across batchings."""
    m = mask.float()
    return (per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)
