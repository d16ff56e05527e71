"""Multi-teacher KD: several teachers' cached top-k (same tokenizer as the student) mixed per token into one target.

One KD job, one loss: the mixture is built in the collator and fed to the same top-k loss as a single teacher's
top-k (`core.train.kd_losses.ce_kd_loss`), with a support of varying size per position (`teacher_valid`).

The formula. Teachers j = 1..M with weights w_j ≥ 0. At a response position t, teacher j's cache holds its top-k ids
S_j(t) with probabilities p_j(i) and its tail mass r_j(t) = 1 − Σ_{i∈S_j(t)} p_j(i). Teacher j takes part at t when
its cache has the row and its cached token there is the student's label (as for one teacher); C(t) = those teachers.

    a_j(t)  = w_j / Σ_{l∈C(t)} w_l  for j ∈ C(t), else 0        (no KD at t when the sum is 0)
    U(t)    = ∪_{j : a_j(t) > 0} S_j(t)                          (the union of the top-k ids)
    p̄(i)    = Σ_j a_j(t) · p_j(i) · [i ∈ S_j(t)]                 for i ∈ U(t)
    p̄_tail  = Σ_j a_j(t) · r_j(t)  = 1 − Σ_{i∈U(t)} p̄(i)

i.e. the weighted mixture of the teachers' cached distributions (top-k + one tail bucket each), where a teacher's
probability of an id it did not rank in its top-k is not known and stays in its tail (a lower bound on the true
mixture at that id). KD then compares p̄ on U(t) + the tail bucket (or U(t) renormalised) with the student, exactly as
for one teacher whose top-k is U(t): L = (1 − λ)·CE + λ·τ²·(1/N)·Σ_t m_t·D(p̄_t, q_t), N = positions with a_j > 0.

Weights 1/0 give p̄ = p_1 on U = S_1 in teacher 1's order with its tail, so the loss is the single-teacher loss to the
bit (tested). Slots are ordered by first appearance (teacher 1's ids in its rank order, then each next teacher's new
ids); duplicates are summed in float64; a single-member slot keeps log a_j + log p_j(i) as is.
"""

from __future__ import annotations

import numpy as np

_NONE = np.iinfo(np.int64).max  # sort key of a slot that takes no part (its teacher has a_j = 0 there)


def shares(weights: np.ndarray, present: np.ndarray) -> np.ndarray:
    """a_j(t): (M,) weights and (P, M) bool presence -> (P, M) shares summing to 1 where any present weight is > 0,
    all 0 elsewhere."""
    w = np.where(present, np.asarray(weights, dtype=np.float64)[None, :], 0.0)
    total = w.sum(1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def mix_topk(
    ids: list[np.ndarray], logprobs: list[np.ndarray], tails: list[np.ndarray], share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mixture p̄ at P positions: (ids (P, K), log p̄ (P, K) float32, p̄_tail (P,) float32, valid (P, K) bool).

    Inputs per teacher j: ids and log-probs (P, k_j), tail (P,); `share` (P, M) = a_j(t). K = the largest |U(t)|;
    slots past |U(t)| are padding (valid False, id 0, log-prob 0). Entries of a teacher with a_j(t) = 0 are ignored
    (they may hold anything).
    """
    p_count = share.shape[0]
    cat_ids = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids], axis=1)
    cat_lp = np.concatenate([np.asarray(x, dtype=np.float64) for x in logprobs], axis=1)
    owner = np.concatenate([np.full(np.shape(x)[1], j) for j, x in enumerate(ids)])
    a = share[:, owner]
    keep = a > 0
    width = cat_ids.shape[1]
    with np.errstate(divide="ignore"):
        log_w = np.where(keep, np.log(a) + cat_lp, 0.0)  # log(a_j · p_j(i)); exactly log p_j(i) when a_j = 1
    slot = np.where(keep, np.arange(width)[None, :], width)
    key = np.where(keep, cat_ids, _NONE)
    order = np.lexsort((slot, key), axis=-1)  # by id, then by first appearance
    s_key = np.take_along_axis(key, order, 1)
    s_slot = np.take_along_axis(slot, order, 1)
    s_lw = np.take_along_axis(log_w, order, 1)
    kept = s_slot < width
    start = kept.copy()
    start[:, 1:] &= s_key[:, 1:] != s_key[:, :-1]
    group = np.cumsum(start, axis=1) - 1  # each kept entry's slot in the union (unordered yet)
    rows = np.broadcast_to(np.arange(p_count)[:, None], group.shape)
    r_k, g_k = rows[kept], group[kept]
    sums = np.zeros((p_count, width))
    np.add.at(sums, (r_k, g_k), np.exp(s_lw[kept]))
    count = np.zeros((p_count, width), dtype=np.int64)
    np.add.at(count, (r_k, g_k), 1)
    g_id = np.zeros((p_count, width), dtype=np.int64)
    g_first = np.full((p_count, width), width)
    g_lw = np.zeros((p_count, width))
    r_s, c_s = np.nonzero(start)
    g_s = group[r_s, c_s]
    g_id[r_s, g_s], g_first[r_s, g_s], g_lw[r_s, g_s] = s_key[r_s, c_s], s_slot[r_s, c_s], s_lw[r_s, c_s]
    with np.errstate(divide="ignore"):
        g_log = np.where(count == 1, g_lw, np.log(np.where(count > 0, sums, 1.0)))
    by_first = np.argsort(g_first, axis=1, kind="stable")
    n_union = int(start.sum(1).max()) if p_count else 0
    by_first = by_first[:, :n_union]
    out_ids = np.take_along_axis(g_id, by_first, 1)
    out_lp = np.take_along_axis(g_log, by_first, 1)
    valid = np.take_along_axis(g_first, by_first, 1) < width
    out_ids = np.where(valid, out_ids, 0)
    out_lp = np.where(valid, out_lp, 0.0).astype(np.float32)
    tail_stack = np.stack([np.asarray(t, dtype=np.float64) for t in tails], axis=1)
    tail = np.where(share > 0, share * tail_stack, 0.0).sum(1).astype(np.float32)
    return out_ids, out_lp, tail, valid
