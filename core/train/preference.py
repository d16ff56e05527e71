"""Preference pairs for DPO / CogPO and reward models: workspace rows -> TRL conversational (prompt, chosen, rejected).

Rows are read through core.data (any imported DPO data: `instruction`/`messages` prompt + `chosen` + `rejected`), or
built from two datasets matched by id (`rejected_from`: chosen = the teacher's `output`, rejected = the student's), as
EasyDistill 1.x's rank_dpo did. Ties (chosen == rejected) and empty answers teach nothing and are dropped with a note.
The held-out split is by id hash, so the same pairs stay held out across resumes (as for SFT).

CogPO's β per pair is resolved here, once: the row's `beta_column` value, else its pair type's β, else the global β.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.data.errors import DataError
from core.data.rows import response_text, to_messages
from core.jobs.context import JobContext
from core.train.dataset import in_eval_split


@dataclass
class Pairs:
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    beta_counts: dict[str, int] = field(default_factory=dict)  # where each pair's β came from (column/type/global)


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _rows(ctx: JobContext, ref: str) -> list[dict]:
    from core.data.store import load_rows

    rows, errors = load_rows(ctx.workspace, ref, confined=False)
    if errors:
        raise DataError(f"{ref}: {len(errors)} row(s) cannot be read; fix or re-import the dataset", errors)
    return rows


def row_beta(row: dict, cfg: Any) -> tuple[float, str]:
    """(β, where it came from) of one pair: `beta_column`, else `pair_type_beta[row[pair_type_column]]`, else β."""
    col = getattr(cfg, "beta_column", None)
    if col and row.get(col) not in (None, ""):
        try:
            b = float(row[col])
        except (TypeError, ValueError):
            raise DataError(f"row {row.get('id')!r}: {col} = {row[col]!r} is not a number") from None
        if b <= 0:
            raise DataError(f"row {row.get('id')!r}: {col} = {b} (β must be > 0)")
        return b, "column"
    by_type = getattr(cfg, "pair_type_beta", None) or {}
    kind = row.get(getattr(cfg, "pair_type_column", "pair_type"))
    if kind is not None and str(kind) in by_type:
        return float(by_type[str(kind)]), "pair_type"
    return float(cfg.beta), "global"


def load_pairs(ctx: JobContext, cfg: Any, with_beta: bool = False) -> Pairs:
    """The job's pairs (train / held-out) as TRL conversational records {id, prompt, chosen, rejected[, beta]}."""
    notes: list[str] = []
    rows = _rows(ctx, cfg.dataset)
    rejected_of: dict[str, str] | None = None
    if cfg.rejected_from:
        rejected_of = {str(r.get("id")): _text(response_text(r)) for r in _rows(ctx, cfg.rejected_from)}
    out: list[dict[str, Any]] = []
    dropped = {"no pair": 0, "tie": 0, "unmatched": 0}
    counts: dict[str, int] = {}
    for row in rows:
        rid = str(row.get("id"))
        if rejected_of is not None:
            if rid not in rejected_of:
                dropped["unmatched"] += 1
                continue
            chosen, rejected = _text(response_text(row)), rejected_of[rid]
        else:
            chosen, rejected = _text(row.get("chosen")), _text(row.get("rejected"))
        if not chosen.strip() or not rejected.strip():
            dropped["no pair"] += 1
            continue
        if chosen.strip() == rejected.strip():
            dropped["tie"] += 1
            continue
        prompt = to_messages({k: v for k, v in row.items() if k not in ("output", "chosen")}, include_output=False)
        rec: dict[str, Any] = {"id": rid, "prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                               "rejected": [{"role": "assistant", "content": rejected}]}
        if with_beta:
            rec["beta"], source = row_beta(row, cfg)
            counts[source] = counts.get(source, 0) + 1
        out.append(rec)
    if dropped["unmatched"]:
        notes.append(f"{dropped['unmatched']} row(s) of {cfg.dataset} have no answer with the same id in "
                     f"{cfg.rejected_from}: skipped")
    if dropped["no pair"]:
        notes.append(f"{dropped['no pair']} row(s) without both a chosen and a rejected answer skipped")
    if dropped["tie"]:
        notes.append(f"{dropped['tie']} row(s) whose chosen and rejected answers are the same skipped (nothing to "
                     "prefer)")
    if not out:
        raise DataError(f"{cfg.dataset}: no preference pair (prompt, chosen, rejected) to train on")
    train, held = split_pairs(ctx, cfg, out)
    return Pairs(train, held, notes, counts)


def split_pairs(ctx: JobContext, cfg: Any, pairs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(train, held-out): `eval_dataset`'s pairs, else a stable `eval_split` share by id hash."""
    if cfg.eval_dataset:
        held_cfg = cfg.model_copy(update={"dataset": cfg.eval_dataset, "eval_dataset": None, "eval_split": 0.0,
                                          "rejected_from": None})
        return pairs, load_pairs(ctx, held_cfg, with_beta="beta" in pairs[0]).train
    if cfg.eval_split <= 0 or len(pairs) < 2:
        return pairs, []
    held = [p for p in pairs if in_eval_split(p["id"], cfg.eval_split, cfg.seed)]
    train = [p for p in pairs if not in_eval_split(p["id"], cfg.eval_split, cfg.seed)]
    if not held:
        held, train = train[-1:], train[:-1]
    if not train:
        train, held = held[:1], held[1:]
    return train, held


def to_dataset(pairs: list[dict]):
    from datasets import Dataset

    return Dataset.from_list(pairs)
