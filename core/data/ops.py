"""Whole-dataset operations: seeded train/eval split, dedupe, instruction balancing (resample to target shares).

Pure functions over lists of canonical rows, plus thin workspace wrappers that write the results as new datasets
(the source dataset is never modified).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.data.errors import DataError
from core.data.rows import content_id, field_text, prompt_text, response_text
from core.workspace import Workspace

DedupeBy = Literal["instruction", "instruction_output", "content"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def dedupe_key(row: dict, by: DedupeBy = "instruction") -> str:
    """What makes two rows "the same": the prompt, prompt + answer, or every content field (whitespace/case folded)."""
    if by == "instruction":
        return _norm(field_text(row, "messages") if row.get("messages") else prompt_text(row))
    if by == "instruction_output":
        base = field_text(row, "messages") if row.get("messages") else prompt_text(row)
        return _norm(base) + "\x00" + _norm(str(response_text(row) or ""))
    return content_id({k: (_norm(v) if isinstance(v, str) else v) for k, v in row.items()}, 40)


def dedupe(rows: list[dict], by: DedupeBy = "instruction") -> tuple[list[dict], list[tuple[str, str]]]:
    """Keep the first of each group of duplicates; returns kept rows and (removed id, id it duplicates)."""
    first: dict[str, str] = {}
    kept, removed = [], []
    for r in rows:
        k = dedupe_key(r, by)
        if k in first:
            removed.append((str(r.get("id")), first[k]))
        else:
            first[k] = str(r.get("id"))
            kept.append(r)
    return kept, removed


def split(rows: list[dict], eval_share: float, seed: int = 42, group_key: str | None = "question_id"
          ) -> tuple[list[dict], list[dict]]:
    """Seeded train/eval split. Rows sharing `group_key` (e.g. several traces of one question) stay together, so the
    eval set never contains a question the student trained on. File order is kept inside each part."""
    if not 0 < eval_share < 1:
        raise DataError("eval share must be between 0 and 1 (e.g. 0.1)")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        g = r.get(group_key) if group_key else None
        groups[str(g) if g is not None else f"\x00{i}"].append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = max(1, round(len(rows) * eval_share)) if len(rows) > 1 else 0
    eval_idx: set[int] = set()
    for k in keys:
        if len(eval_idx) >= target:
            break
        eval_idx.update(groups[k])
    train = [r for i, r in enumerate(rows) if i not in eval_idx]
    ev = [r for i, r in enumerate(rows) if i in eval_idx]
    return train, ev


# ------------------------------------------------------------------------------------------ instruction balancing

# The task/domain categories of the DistilQwen2 recipe and its target shares (the default the UI table starts from).
DEFAULT_SHARES: dict[str, float] = {
    "Math": 0.167, "Code Generation": 0.083, "Writing": 0.017, "Computer Science": 0.017, "Reasoning": 0.167,
    "Complex Format": 0.017, "Code Debug": 0.083, "Common-Sense": 0.017, "Counterfactual": 0.017,
    "Multilingual": 0.017, "Roleplay": 0.017, "Biology": 0.017, "Technology": 0.017, "Ethics": 0.017, "Sport": 0.017,
    "Law": 0.017, "Medicine": 0.017, "Literature": 0.017, "Entertainment": 0.017, "Art": 0.017, "Music": 0.017,
    "Toxicity": 0.017, "Economy": 0.017, "Physics": 0.017, "History": 0.017, "Chemistry": 0.017, "Philosophy": 0.017,
    "Health": 0.017, "Ecology": 0.017, "Grammar": 0.017, "Paraphrase": 0.017, "Others": 0.041,
}


@dataclass
class BalanceReport:
    before: dict[str, int]
    after: dict[str, int]
    target: dict[str, int]
    short: dict[str, int] = field(default_factory=dict)  # categories that had fewer rows than their target


def balance(rows: list[dict], shares: dict[str, float], total: int | None = None, seed: int = 42,
            upsample: bool = False, key: str = "category") -> tuple[list[dict], BalanceReport]:
    """Resample classified rows toward target shares per category.

    Shares are normalised to sum to 1; the result has about `total` rows (default: as many as the input). A category
    with more rows than its target is sampled down (seeded); one with fewer keeps all its rows, and with `upsample`
    repeats them (copies get ids `<id>~2`, `<id>~3` so ids stay unique). Categories without a share are left out.
    """
    shares = {k: float(v) for k, v in shares.items() if float(v) > 0}
    if not shares:
        raise ValueError("give at least one category a share above 0")
    s = sum(shares.values())
    total = total or len(rows)
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cat[str(r.get(key) or "Others")].append(r)
    rng = random.Random(seed)
    out: list[dict] = []
    target_counts: dict[str, int] = {}
    short: dict[str, int] = {}
    for cat in sorted(shares):
        want = round(total * shares[cat] / s)
        target_counts[cat] = want
        have = by_cat.get(cat, [])
        if len(have) >= want:
            picked = rng.sample(have, want)
        else:
            short[cat] = want - len(have)
            picked = list(have)
            if upsample and have:
                for j in range(want - len(have)):
                    src = have[j % len(have)]
                    picked.append({**src, "id": f"{src.get('id')}~{j // len(have) + 2}"})
        out.extend(picked)
    order = {id(r): i for i, r in enumerate(rows)}
    out.sort(key=lambda r: order.get(id(r), len(rows)))
    report = BalanceReport(
        before=dict(Counter(str(r.get(key) or "Others") for r in rows)),
        after=dict(Counter(str(r.get(key) or "Others") for r in out)), target=target_counts, short=short,
    )
    return out, report


# ------------------------------------------------------------------------------------------ workspace wrappers


def split_dataset(ws: Workspace, name: str, eval_share: float, seed: int = 42,
                  train_name: str | None = None, eval_name: str | None = None,
                  confined: bool = True) -> tuple[str, int, str, int]:
    """Write <name>-train and <name>-eval; returns (train name, rows, eval name, rows). `name` may be a file
    (confined to the workspace for web visitors, `confined=False` for the CLI's local user)."""
    from core.data.store import load_rows, save_rows

    rows, _ = load_rows(ws, name, confined)
    train, ev = split(rows, eval_share, seed)
    base = Path(name).stem if "/" in name else name
    tn, en = train_name or f"{base}-train", eval_name or f"{base}-eval"
    how = f"split of {name} (eval share {eval_share}, seed {seed})"
    save_rows(ws, tn, train, created_by="split", source=how)
    save_rows(ws, en, ev, created_by="split", source=how)
    return tn, len(train), en, len(ev)


def dedupe_dataset(ws: Workspace, name: str, by: DedupeBy = "instruction", out_name: str | None = None,
                   confined: bool = True) -> tuple[str, int, int]:
    """Write <name>-dedup; returns (new name, rows kept, rows removed). `confined`: as for `split_dataset`."""
    from core.data.store import load_rows, save_rows

    rows, _ = load_rows(ws, name, confined)
    kept, removed = dedupe(rows, by)
    new = out_name or f"{Path(name).stem if '/' in name else name}-dedup"
    save_rows(ws, new, kept, created_by="dedupe", source=f"dedupe of {name} by {by}", removed=len(removed))
    return new, len(kept), len(removed)
