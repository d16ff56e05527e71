"""Top-k sparse distillation losses (REFERENCE §4): the teacher is known only on its top-k ids plus a tail bucket.

Why this file exists: EasyDistill 1.x scattered the cached top-k into a dense B·T·V tensor, then divided the KL by the
token count twice. Here the divergence only ever touches the k (+1 tail) entries per position; the student's
log-softmax needs a logsumexp over the vocabulary, which the fused path computes in row chunks, and its backward
writes the gradient of the logits analytically (d log q_i / d z_j = (δ_ij − softmax_j) / τ) into one buffer, so no
B·T·V intermediate is kept besides the logits and their own gradient. The trainer's cross-entropy comes from the same
pass (`ce_kd_loss`: CE is a gather at the label next to the logsumexp), so the whole training loss costs the logits'
gradient and nothing more; `fused=False` is the plain-autograd reference the tests compare against.

Conventions (shared with the KD trainer and the capture job):
- `student_logits[b, t]` is the student's prediction for the token at t+1 (the model's raw output, unshifted);
  the teacher arrays, the mask and the (shifted) labels are placed at the same positions, so nothing is sliced or
  copied here.
- Teacher log-probs come from the cache as captured (at the capture temperature); the student is tempered by τ.
- D is summed over the support, masked, and averaged ONCE over N = Σ m_t (or over `num_items`, the token count of
  the whole accumulated batch, so gradient accumulation gives the same update as one big batch).
- The τ² factor and the (1 − λ)·CE + λ·KD mix belong to the trainer (passed to `ce_kd_loss` as weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

Divergence = Literal["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv"]
Support = Literal["tail_bucket", "renormalize"]
DIVERGENCES: tuple[str, ...] = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "tv")

# Smallest probability a tail bucket may take. fp32 sums of k probabilities are exact to ~1e-7, so a tail below
# this is noise; flooring keeps log(tail) and its gradient finite when the support holds (almost) all the mass.
TAIL_FLOOR = 1e-6
# Elements per chunk of the vocabulary-wide work in the fused path (16 MiB of fp32 per temporary: small next to the
# logits' own gradient, large enough that per-chunk overhead does not show).
CHUNK_ELEMENTS = 1 << 22


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


def _kl(logp: torch.Tensor, logq: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p ‖ q) per row, 0·log 0 = 0; entries outside `valid` (when given) count for nothing."""
    p = logp.exp()
    keep = p > 0 if valid is None else (p > 0) & valid
    return torch.where(keep, p * (logp - logq), torch.zeros_like(p)).sum(-1)


def _mix(logp: torch.Tensor, logq: torch.Tensor, w_p: float) -> torch.Tensor:
    """log(w_p·p + (1 − w_p)·q), stable."""
    return torch.logaddexp(logp + math.log(w_p), logq + math.log1p(-w_p))


def divergence(
    logp: torch.Tensor, logq: torch.Tensor, spec: KdLossSpec, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """D(p_t, q_t) for each row of teacher `logp` and student `logq` (same support, each summing to 1).

    `valid` (same shape, bool): the entries of the support; the others must hold finite values and add nothing (every
    divergence here is a sum of per-entry terms). A support of varying size per row is padded this way.
    """
    kind = spec.divergence
    if kind == "forward_kl":
        return _kl(logp, logq, valid)
    if kind == "reverse_kl":
        return _kl(logq, logp, valid)
    if kind == "jsd":
        beta = spec.beta
        if beta == 0.0:
            return _kl(logp, logq, valid)
        if beta == 1.0:
            return _kl(logq, logp, valid)
        logm = _mix(logp, logq, beta)  # m = β·p + (1 − β)·q
        return beta * _kl(logp, logm, valid) + (1.0 - beta) * _kl(logq, logm, valid)
    if kind == "skew_kl":
        return _kl(logp, _mix(logp, logq, spec.alpha), valid)  # KL(p ‖ αp + (1 − α)q)
    if kind == "skew_reverse_kl":
        return _kl(logq, _mix(logp, logq, 1.0 - spec.alpha), valid)  # KL(q ‖ (1 − α)p + αq)
    if kind == "tv":
        diff = (logp.exp() - logq.exp()).abs()
        return 0.5 * (diff if valid is None else torch.where(valid, diff, torch.zeros_like(diff))).sum(-1)
    raise ValueError(f"unknown divergence '{kind}'")


def _pair(
    student_support_logq: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    teacher_tail: torch.Tensor | None,
    spec: KdLossSpec,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row divergence from the student's log q on the k teacher ids (N, k).

    `valid` (N, k): which of the k slots are teacher ids (a mixture of teachers has a support of varying size per
    position, padded to k); padded slots are out of both distributions, the tail and the renormalisation.
    """
    t_lp = teacher_logprobs.to(student_support_logq.dtype)
    if valid is None:
        logp = support_distribution(t_lp, spec.support, teacher_tail)
        logq = support_distribution(student_support_logq, spec.support)
        return divergence(logp, logq, spec)
    valid = valid.to(torch.bool)
    out = ~valid
    logp = support_distribution(t_lp.masked_fill(out, -math.inf), spec.support, teacher_tail)
    logq = support_distribution(student_support_logq.masked_fill(out, -math.inf), spec.support)
    if spec.support == "tail_bucket":
        valid = torch.cat([valid, torch.ones_like(valid[:, :1])], dim=-1)
    # Padded slots hold −inf now; give them a finite stand-in so no 0·inf reaches a gradient (they add nothing).
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    return divergence(torch.where(valid, logp, zero), torch.where(valid, logq, zero), spec, valid)


# --------------------------------------------------------------------------------------------------------------------
# Entry points.


class CeKd(NamedTuple):
    """What `ce_kd_loss` gives: the loss to back-propagate and detached figures for the logs."""

    loss: torch.Tensor  # ce_weight·CE + kd_weight·KD (scalar, differentiable)
    ce_sum: torch.Tensor  # Σ −log softmax(z)[label] over the label positions (detached)
    kd: torch.Tensor  # KD = Σ m_t·D_t / N_kd (detached)
    per_token: torch.Tensor  # D_t at each position (...), zero where m_t = 0 (detached, float32)


def topk_kd_loss(
    student_logits: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    mask: torch.Tensor,
    spec: KdLossSpec = KdLossSpec(),
    *,
    teacher_tail: torch.Tensor | None = None,
    teacher_valid: torch.Tensor | None = None,
    num_items: int | torch.Tensor | None = None,
    vocab_limit: int | None = None,
    fused: bool = True,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(1/N)·Σ_t m_t·D(p_t, q_t) and the per-position D (detached, zero where m_t = 0).

    Shapes: logits (..., V); teacher_ids / teacher_logprobs (..., k); mask and teacher_tail (...). N = `num_items`
    when given (tokens in the whole accumulated batch), else Σ mask. Masked-out positions may hold any ids.
    `vocab_limit`: use only the first n logits (the tokenizer's tokens) when the output head is padded beyond them.
    `teacher_valid` (..., k) bool: which slots hold a teacher id when the support's size varies by position (a
    mixture of teachers, `core.train.kd_mixture`); None = all k.
    """
    out = ce_kd_loss(student_logits, None, teacher_ids, teacher_logprobs, mask, spec, teacher_tail=teacher_tail,
                     teacher_valid=teacher_valid, ce_weight=0.0, kd_weight=1.0, kd_items=num_items,
                     vocab_limit=vocab_limit, fused=fused, chunk_elements=chunk_elements)
    return out.loss, out.per_token


def ce_kd_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor | None,
    teacher_ids: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    mask: torch.Tensor,
    spec: KdLossSpec = KdLossSpec(),
    *,
    teacher_tail: torch.Tensor | None = None,
    teacher_valid: torch.Tensor | None = None,
    ce_weight: float = 1.0,
    kd_weight: float = 1.0,
    ce_items: int | torch.Tensor | None = None,
    kd_items: int | torch.Tensor | None = None,
    vocab_limit: int | None = None,
    ignore_index: int = -100,
    fused: bool = True,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> CeKd:
    """The trainer's whole loss, ce_weight·CE + kd_weight·KD, from one pass over the vocabulary.

    `labels[..., t]` is the token the logits at t predict (already shifted), `ignore_index` where there is none; CE is
    at temperature 1 and averaged over `ce_items` (else the label count), KD as in `topk_kd_loss` over `kd_items`.
    `labels=None`: KD alone. `teacher_valid`: as in `topk_kd_loss`. Fused: the logsumexp per row is computed once in
    row chunks (CE is a gather at the label, KD a gather at the k teacher ids; with τ ≠ 1 a second logsumexp of z/τ in
    the same chunk), and the backward writes ∂loss/∂logits analytically into one buffer. `fused=False` is the
    plain-autograd reference (full log-softmax).
    """
    full_vocab = student_logits.shape[-1]
    vocab = min(full_vocab, vocab_limit) if vocab_limit else full_vocab
    k = teacher_ids.shape[-1]
    lead = student_logits.shape[:-1]
    if teacher_ids.shape[:-1] != lead or teacher_logprobs.shape != teacher_ids.shape or mask.shape != lead or (
        labels is not None and labels.shape != lead
    ) or (teacher_valid is not None and teacher_valid.shape != teacher_ids.shape):
        raise ValueError(
            f"shape mismatch: logits {tuple(student_logits.shape)}, teacher ids {tuple(teacher_ids.shape)}, "
            f"teacher logprobs {tuple(teacher_logprobs.shape)}, mask {tuple(mask.shape)}"
            + ("" if labels is None else f", labels {tuple(labels.shape)}")
        )
    device = student_logits.device
    logits2d = student_logits.reshape(-1, full_vocab)
    kd_flat = mask.reshape(-1).to(torch.bool)
    if labels is None:
        ce_flat = torch.zeros_like(kd_flat)
    else:
        ce_flat = labels.reshape(-1) != ignore_index
    rows = (kd_flat | ce_flat).nonzero().squeeze(-1)
    kd_sel, ce_sel = kd_flat.index_select(0, rows), ce_flat.index_select(0, rows)
    kd_at = kd_sel.nonzero().squeeze(-1)  # which of `rows` carry a teacher
    ids = teacher_ids.reshape(-1, k).index_select(0, rows).long()
    kd_rows = rows.index_select(0, kd_at)
    t_valid = None if teacher_valid is None else teacher_valid.reshape(-1, k).index_select(0, kd_rows).to(torch.bool)
    keep = kd_sel.unsqueeze(1)
    if teacher_valid is not None:  # a padded slot's id is whatever the collator put there: read it as id 0
        keep = keep & teacher_valid.reshape(-1, k).index_select(0, rows).to(torch.bool)
    ids = torch.where(keep, ids, torch.zeros_like(ids))
    kd_ids = ids.index_select(0, kd_at)
    if kd_ids.numel() and (int(kd_ids.max()) >= vocab or int(kd_ids.min()) < 0):
        raise ValueError(
            f"teacher token id {int(kd_ids.max())} is outside the student's vocabulary ({vocab}); "
            "teacher and student must share the tokenizer"
        )
    if labels is None:
        lab = torch.zeros(rows.numel(), dtype=torch.long, device=device)
    else:
        lab = torch.where(ce_sel, labels.reshape(-1).index_select(0, rows).long(), 0)
        if lab.numel() and (int(lab.max()) >= vocab or int(lab.min()) < 0):
            raise ValueError(f"label token id {int(lab.max())} is outside the student's vocabulary ({vocab})")
    t_lp = teacher_logprobs.reshape(-1, k).index_select(0, kd_rows)
    t_tail = None if teacher_tail is None else teacher_tail.reshape(-1).index_select(0, kd_rows)
    ce_denom = max(float(ce_items) if ce_items is not None else float(ce_sel.sum()), 1.0)
    kd_denom = max(float(kd_items) if kd_items is not None else float(kd_at.numel()), 1.0)
    w = _Weights(ce=float(ce_weight) / ce_denom, kd=float(kd_weight) / kd_denom, kd_mean=1.0 / kd_denom)
    batch = _Rows(rows, ce_sel, kd_at, ids, lab, t_lp, t_tail, t_valid)
    if fused:
        loss, ce_sum, kd, per_row = _FusedCeKd.apply(logits2d, batch, spec, w, vocab, chunk_elements)
    else:
        loss, ce_sum, kd, per_row = _reference(logits2d[:, :vocab], batch, spec, w)
    per_token = torch.zeros(logits2d.shape[0], dtype=torch.float32, device=device)
    per_token.index_copy_(0, kd_rows, per_row.detach().float())
    return CeKd(loss, ce_sum.detach(), kd.detach(), per_token.view(lead))


class _Weights(NamedTuple):
    ce: float  # ce_weight / N_ce (0: no CE)
    kd: float  # kd_weight / N_kd
    kd_mean: float  # 1 / N_kd, for the logged KD


class _Rows(NamedTuple):
    """The positions that carry a label or a teacher ("rows" of the (N, V) logits), sorted, and their targets."""

    rows: torch.Tensor  # (n,) logits rows
    ce_sel: torch.Tensor  # (n,) bool: has a label
    kd_at: torch.Tensor  # (n_kd,) indices into rows that have a teacher
    ids: torch.Tensor  # (n, k) teacher ids (0 where no teacher)
    labels: torch.Tensor  # (n,) label ids (0 where none)
    t_lp: torch.Tensor  # (n_kd, k)
    t_tail: torch.Tensor | None  # (n_kd,)
    t_valid: torch.Tensor | None = None  # (n_kd, k) bool: slots holding a teacher id (None: all)


def _small_part(lse1, lset, x_label, sup, batch: _Rows, spec: KdLossSpec, w: _Weights):
    """From the per-row logsumexps and gathered logits: loss, CE sum, KD, per-row D and ∂(kd part)/∂log q (n_kd, k)."""
    ce_sum = torch.where(batch.ce_sel, lse1 - x_label, torch.zeros_like(lse1)).sum()
    with torch.enable_grad():
        logq = (sup.index_select(0, batch.kd_at) - lset.index_select(0, batch.kd_at).unsqueeze(1))
        logq = logq.detach().requires_grad_(True)
        per_row = _pair(logq, batch.t_lp, batch.t_tail, spec, batch.t_valid)
        kd_sum = per_row.sum()
        if batch.kd_at.numel() and w.kd:
            (g,) = torch.autograd.grad(kd_sum * w.kd, logq)
        else:
            g = torch.zeros_like(logq)
    kd_sum = kd_sum.detach()
    loss = ce_sum * w.ce + kd_sum * w.kd
    return loss, ce_sum, kd_sum * w.kd_mean, per_row.detach(), g


def _reference(logits2d, batch: _Rows, spec: KdLossSpec, w: _Weights):
    """Plain autograd: full log-softmax rows (several (n, V) tensors kept for backward). What the tests compare to."""
    x = logits2d.index_select(0, batch.rows).to(_compute_dtype(logits2d))
    logq1 = torch.log_softmax(x, dim=-1)
    logqt = logq1 if spec.temperature == 1.0 else torch.log_softmax(x / spec.temperature, dim=-1)
    ce_terms = -logq1.gather(1, batch.labels.unsqueeze(1)).squeeze(1)
    ce_sum = torch.where(batch.ce_sel, ce_terms, torch.zeros_like(ce_terms)).sum()
    per_row = _pair(logqt.gather(1, batch.ids).index_select(0, batch.kd_at), batch.t_lp, batch.t_tail, spec,
                    batch.t_valid)
    kd_sum = per_row.sum()
    return ce_sum * w.ce + kd_sum * w.kd, ce_sum, kd_sum * w.kd_mean, per_row


def _pieces(rows: torch.Tensor, chunk: int) -> list[tuple[int, int, int]]:
    """(u0, u1, r0): ranges of `rows` (sorted, unique) that are runs of consecutive logits rows starting at r0,
    each at most `chunk` rows long, so every piece is read and written in place."""
    n = rows.numel()
    if n == 0:
        return []
    breaks = ((rows[1:] - rows[:-1]) != 1).nonzero().squeeze(-1).add(1).tolist()
    starts = [0, *breaks]
    ends = [*breaks, n]
    first = rows.index_select(0, torch.tensor(starts, device=rows.device)).tolist()
    out = []
    for s, e, r in zip(starts, ends, first, strict=True):
        for u in range(s, e, chunk):
            out.append((u, min(u + chunk, e), r + (u - s)))
    return out


class _FusedCeKd(torch.autograd.Function):
    """Chunked forward (one logsumexp per row, gathers at the label and the k ids); analytic backward into a single
    gradient buffer.

    The small (n, k) KD part runs under autograd inside forward, which yields G = ∂(w_kd·Σ D)/∂log q_i. Per row, with
    a = w_ce for a label row (else 0), s = softmax(z), s_τ = softmax(z/τ):
        ∂L/∂z_j = a·(s_j − [j = label]) + (Σ_i G_i·[j = id_i] − s_τ,j·Σ_i G_i) / τ
    and with τ = 1 the two softmax terms are one: (a − Σ_i G_i)·s_j.
    """

    @staticmethod
    def forward(ctx, logits2d, batch: _Rows, spec: KdLossSpec, w: _Weights, vocab: int, chunk_elements: int):
        tau = spec.temperature
        n = batch.rows.numel()
        cdt = _compute_dtype(logits2d)
        dev = logits2d.device
        need_ce, need_kd = bool(batch.ce_sel.any()), batch.kd_at.numel() > 0
        lse1 = torch.zeros(n, dtype=cdt, device=dev)
        lset = lse1 if tau == 1.0 else torch.zeros(n, dtype=cdt, device=dev)
        x_label = torch.zeros(n, dtype=cdt, device=dev)
        sup = torch.zeros(batch.ids.shape, dtype=cdt, device=dev)
        if logits2d.dtype != cdt:  # bf16 / fp16 logits: each piece is copied to fp32, so keep the copies small too
            chunk_elements = max(1, chunk_elements // 4)
        pieces = _pieces(batch.rows, max(1, chunk_elements // vocab))
        with torch.no_grad():
            for u0, u1, r0 in pieces:
                z = logits2d[r0 : r0 + (u1 - u0), :vocab]
                if z.dtype != cdt:
                    z = z.to(cdt)
                if need_ce or tau == 1.0:
                    lse1[u0:u1] = torch.logsumexp(z, dim=-1)
                if need_ce:
                    x_label[u0:u1] = z.gather(1, batch.labels[u0:u1].unsqueeze(1)).squeeze(1)
                if need_kd:
                    if tau != 1.0:
                        zt = z / tau
                        lset[u0:u1] = torch.logsumexp(zt, dim=-1)
                        del zt
                    sup[u0:u1] = z.gather(1, batch.ids[u0:u1])
                del z
            if tau != 1.0:
                sup.div_(tau)
        loss, ce_sum, kd, per_row, g = _small_part(lse1, lset, x_label, sup, batch, spec, w)
        ctx.save_for_backward(logits2d, lse1, lset, g)
        ctx.batch, ctx.pieces, ctx.tau, ctx.vocab, ctx.w = batch, pieces, tau, vocab, w
        ctx.chunk_elements = chunk_elements
        ctx.mark_non_differentiable(ce_sum, kd, per_row)
        return loss, ce_sum, kd, per_row

    @staticmethod
    def backward(ctx, grad_loss, *_):
        logits2d, lse1, lset, g = ctx.saved_tensors
        batch, tau, vocab, w = ctx.batch, ctx.tau, ctx.vocab, ctx.w
        grad = torch.empty_like(logits2d)
        covered = torch.zeros(logits2d.shape[0], dtype=torch.bool, device=logits2d.device)
        covered[batch.rows] = True
        if not bool(covered.all()):
            grad[~covered] = 0
        if vocab < grad.shape[1]:
            grad[:, vocab:] = 0
        if batch.rows.numel() == 0:
            return grad, None, None, None, None, None
        target = grad if vocab == grad.shape[1] else grad.narrow(1, 0, vocab)
        cdt = lse1.dtype
        scale = grad_loss.to(cdt)
        n, k = batch.ids.shape
        gk = torch.zeros((n, k), dtype=cdt, device=g.device)
        gk.index_copy_(0, batch.kd_at, g * (scale / tau))  # (Σ_i G_i·[j = id_i]) / τ, per row
        a = torch.where(batch.ce_sel, scale * w.ce, torch.zeros_like(lse1)) if w.ce else torch.zeros_like(lse1)
        s = gk.sum(-1)  # coefficient of −s_τ
        index = torch.cat([batch.ids, batch.labels.unsqueeze(1)], 1)
        values = torch.cat([gk, -a.unsqueeze(1)], 1)
        has_a, has_s = bool(w.ce) and bool(batch.ce_sel.any()), batch.kd_at.numel() > 0
        sub_rows = max(1, ctx.chunk_elements // 16 // vocab)  # the second softmax term's temporary stays small
        for u0, u1, r0 in ctx.pieces:
            z = logits2d[r0 : r0 + (u1 - u0), :vocab]
            out = target[r0 : r0 + (u1 - u0)]
            x = out if out.dtype == cdt else torch.empty(out.shape, dtype=cdt, device=out.device)
            if not (has_a or has_s):
                x.zero_()
            elif tau == 1.0 or not has_s:  # one softmax: (a − Σ G)·s
                torch.sub(z, lse1[u0:u1].unsqueeze(1), out=x)
                x.exp_().mul_((a - s)[u0:u1].unsqueeze(1))
            elif not has_a:  # KD alone at τ ≠ 1: −Σ G·s_τ
                x.copy_(z)
                x.div_(tau).sub_(lset[u0:u1].unsqueeze(1)).exp_().mul_(-s[u0:u1].unsqueeze(1))
            else:  # τ ≠ 1 with CE and KD: a·s − Σ G·s_τ, the second term in small row blocks
                torch.sub(z, lse1[u0:u1].unsqueeze(1), out=x)
                x.exp_().mul_(a[u0:u1].unsqueeze(1))
                for v0 in range(0, u1 - u0, sub_rows):
                    v1 = min(v0 + sub_rows, u1 - u0)
                    t = z[v0:v1].to(cdt) / tau
                    t.sub_(lset[u0 + v0 : u0 + v1].unsqueeze(1)).exp_().mul_(s[u0 + v0 : u0 + v1].unsqueeze(1))
                    x[v0:v1].sub_(t)
                    del t
            x.scatter_add_(1, index[u0:u1], values[u0:u1])
            if x is not out:
                out.copy_(x)
            del x
        return grad, None, None, None, None, None


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """fp32 for fp32/bf16/fp16 logits; fp64 stays fp64 (gradcheck)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def per_row_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean D over each sequence's assistant tokens (B,): what alignment tests and logs compare across batchings."""
    m = mask.float()
    return (per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)
