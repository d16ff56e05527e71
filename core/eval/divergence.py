"""KL to the teacher and perplexity on teacher responses, from the backends' teacher-forced top-k scores.

Both models score the same conversations (prompt + the teacher's response) through `Backend.score`, one forward pass
each; nothing here runs a model. Per response position the teacher gives its top-k ids with log-probs and the tail
mass outside them; the student gives its own top-k. Forward KL(p_teacher ‖ q_student) is computed on the teacher's
top-k support plus one "tail" bucket (REFERENCE §4), never densified:

    KL_t = Σ_{i∈topk_p} p_i (log p_i − log q_i) + p_tail (log p_tail − log q_tail),   q_tail = 1 − Σ_{i∈topk_p} q_i

A teacher id missing from the student's top-k gets a student probability estimated from the student's tail (an even
share of it, never more than the student's smallest top-k probability); such positions are counted, so a user sees
when a larger k would sharpen the number. With k = the vocabulary size the result is the exact KL; identical models
give exactly 0. Perplexity uses the log-prob of each actual response token (`ScoredResponse.token_logprobs`, else the
top-k; a token outside it is bounded by the tail mass and counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import UserError

EPS = 1e-12


class TokenizerMismatch(UserError, ValueError):
    """The two models tokenised the same response differently: their distributions cannot be compared per token."""


@dataclass
class TopK:
    """One scored response in compact arrays (T positions, k alternatives): what is kept between the two models."""

    token_ids: np.ndarray  # (T,) int64: the response tokens
    ids: np.ndarray  # (T, k) int64
    logprobs: np.ndarray  # (T, k) float64
    tail: np.ndarray  # (T,) float64 in [0, 1]
    token_logprobs: np.ndarray | None = None  # (T,) log-prob of each actual token, when the backend reported it

    @property
    def tokens(self) -> int:
        return int(self.token_ids.shape[0])


def compact(scored: Any) -> TopK:
    """A backend's ScoredResponse as arrays (positions may have ragged k: padded with id -1 / log-prob -inf)."""
    positions = scored.positions
    t = len(positions)
    k = max((len(p.ids) for p in positions), default=0)
    ids = np.full((t, k), -1, dtype=np.int64)
    lps = np.full((t, k), -np.inf, dtype=np.float64)
    tail = np.zeros(t, dtype=np.float64)
    for i, p in enumerate(positions):
        n = len(p.ids)
        ids[i, :n] = p.ids
        lps[i, :n] = p.logprobs
        tm = getattr(p, "tail_mass", None)
        tail[i] = (1.0 - float(np.exp(lps[i, :n]).sum())) if tm is None else float(tm)
    tok_lps = getattr(scored, "token_logprobs", None)
    return TopK(
        token_ids=np.asarray(list(scored.response_token_ids), dtype=np.int64),
        ids=ids,
        logprobs=lps,
        tail=np.clip(tail, 0.0, 1.0),
        token_logprobs=None if tok_lps is None or len(tok_lps) != t else np.asarray(tok_lps, dtype=np.float64),
    )


@dataclass
class RowKl:
    kl_sum: float
    tokens: int
    estimated_positions: int = 0  # positions where a teacher top-k id was outside the student's top-k

    @property
    def kl(self) -> float | None:
        return self.kl_sum / self.tokens if self.tokens else None


@dataclass
class RowNll:
    nll_sum: float
    tokens: int
    bounded_positions: int = 0  # actual token outside the top-k: its log-prob was bounded by the tail mass

    @property
    def nll(self) -> float | None:
        return self.nll_sum / self.tokens if self.tokens else None

    @property
    def perplexity(self) -> float | None:
        return math.exp(min(self.nll_sum / self.tokens, 700.0)) if self.tokens else None


def row_kl(teacher: TopK, student: TopK, row_id: str = "?") -> RowKl:
    """KL(teacher ‖ student) summed over one response's positions (both scored on the same conversation)."""
    if teacher.tokens != student.tokens or not np.array_equal(teacher.token_ids, student.token_ids):
        raise TokenizerMismatch(
            f"row {row_id}: the two models tokenise the response differently ({teacher.tokens} vs {student.tokens} "
            "tokens); KL needs teacher and student to share one tokenizer — use the answer checks or the judge instead",
            code="kl_tokenizers_differ", params={"row": row_id, "teacher": teacher.tokens, "student": student.tokens}
        )
    if teacher.tokens == 0:
        return RowKl(0.0, 0)
    p_ids, p_lp = teacher.ids, teacher.logprobs
    q_ids, q_lp = student.ids, student.logprobs
    valid_p = p_ids >= 0
    match = (p_ids[:, :, None] == q_ids[:, None, :]) & (q_ids[:, None, :] >= 0)  # (T, kp, kq)
    found = match.any(-1)
    q_matched = np.where(found, np.where(match, q_lp[:, None, :], -np.inf).max(-1), -np.inf)
    missing = valid_p & ~found
    n_missing = missing.sum(-1)
    smallest = np.where(q_ids >= 0, q_lp, np.inf).min(-1)
    share = np.log(np.maximum(student.tail / np.maximum(n_missing, 1), EPS))
    estimate = np.minimum(share, smallest)
    q_on = np.where(missing, estimate[:, None], q_matched)
    p = np.where(valid_p, np.exp(p_lp), 0.0)
    terms = np.where(p > 0, p * (np.where(valid_p, p_lp, 0.0) - np.where(valid_p, q_on, 0.0)), 0.0)
    q_tail = np.maximum(1.0 - np.where(valid_p, np.exp(q_on), 0.0).sum(-1), 0.0)
    p_tail = teacher.tail
    tail_term = np.where(p_tail > EPS, p_tail * (np.log(np.maximum(p_tail, EPS)) - np.log(np.maximum(q_tail, EPS))),
                         0.0)
    per_pos = np.maximum(terms.sum(-1) + tail_term, 0.0)
    return RowKl(float(per_pos.sum()), teacher.tokens, int((n_missing > 0).sum()))


def row_nll(scored: TopK) -> RowNll:
    """Negative log-likelihood of the scored response's own tokens under the model that scored it."""
    if scored.token_logprobs is not None:
        return RowNll(-float(scored.token_logprobs.sum()), scored.tokens)
    if scored.tokens == 0:
        return RowNll(0.0, 0)
    hit = scored.ids == scored.token_ids[:, None]
    found = hit.any(-1)
    lp = np.where(found, np.where(hit, scored.logprobs, -np.inf).max(-1), np.log(np.maximum(scored.tail, EPS)))
    return RowNll(-float(lp.sum()), scored.tokens, int((~found).sum()))


@dataclass
class Totals:
    """Token-weighted aggregate across rows (long responses weigh more, as in training)."""

    kl_sum: float = 0.0
    kl_tokens: int = 0
    nll_sum: float = 0.0
    nll_tokens: int = 0
    estimated: int = 0
    bounded: int = 0

    @property
    def kl(self) -> float | None:
        return self.kl_sum / self.kl_tokens if self.kl_tokens else None

    @property
    def perplexity(self) -> float | None:
        return math.exp(min(self.nll_sum / self.nll_tokens, 700.0)) if self.nll_tokens else None
