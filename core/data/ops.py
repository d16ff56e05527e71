"""Whole-dataset operations: seeded train/eval split, dedupe, instruction balancing (resample to target shares).

Each has a pure function over a list of canonical rows (the reference the tests compare against, and what a job that
already holds its rows calls) and a workspace wrapper that streams: the dataset is read a row at a time, as many
times as the operation needs, and the results are written as new datasets atomically (the source is never
modified). Memory is bounded by design, not by the file's size:

- split: one pass, nothing kept. A row goes to eval when the hash of its group (its `question_id`, else its id) with
  the seed falls below the eval share, so a row lands in the same part whatever the file's order or size (add rows,
  shuffle them: no row changes sides); the eval part holds the share of the groups up to chance (binomial), not
  an exact count. Only when a part would be empty does the group with the lowest (highest) hash move over, so a small
  dataset still gets both parts.
- dedupe: two passes. The first keeps a 16-byte digest of each row's key with its position (core.data.digests:
  24 bytes a row, spilled to disk past 32 MB), the second writes every row whose position is not a repeat
  (a bitmap: one bit a row). The first occurrence is kept.
- balance: two passes: counts per category, then the seeded sample of positions per category (kept as a bitmap,
  one bit a row; Python's random.sample holds the positions it draws while drawing them, ~40 bytes each, so that
  the sample is the list version's) decides which rows are written; upsampled copies are read back from a temporary
  file per short category.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from core.data.digests import Bitmap
from core.data.errors import DataError
from core.data.rows import content_id, field_text, prompt_text, response_text
from core.data.stream import DatasetWriter, Tracker, open_source
from core.workspace import Workspace

DedupeBy = Literal["instruction", "instruction_output", "content"]


def _norm(text: str) -> str:
    """Runs of whitespace as one space, no space at the ends, lower case (str.split's whitespace is re's \\s: the
    same for every code point, and five times faster than re.sub on long answers)."""
    return " ".join(text.split()).lower()


def dedupe_key(row: dict, by: DedupeBy = "instruction") -> str:
    """What makes two rows "the same": the prompt, prompt + answer, or every content field (whitespace/case folded)."""
    if by == "instruction":
        return _norm(field_text(row, "messages") if row.get("messages") else prompt_text(row))
    if by == "instruction_output":
        return pair_key(row, dedupe_key(row))
    return content_id({k: (_norm(v) if isinstance(v, str) else v) for k, v in row.items()}, 40)


def pair_key(row: dict, instruction_key: str) -> str:
    """dedupe_key(row, "instruction_output") from the row's instruction key (statistics need both)."""
    return instruction_key + "\x00" + _norm(str(response_text(row) or ""))


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


def split_score(key: str, seed: int) -> float:
    """Where a group key falls in [0, 1) for `seed`: the same number on every machine and in every run (BLAKE2b,
    personalised so it does not coincide with the trainer's held-out hash of core.train.dataset)."""
    h = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8", "surrogatepass"), digest_size=8, person=b"eds-split")
    return int.from_bytes(h.digest(), "big") / 2**64


class SplitRule:
    """Which part a row goes to: eval when its group's score is below the share. It also watches the rows placed, so
    that a pass that left a part empty can say which group moves over (`move`)."""

    def __init__(self, eval_share: float, seed: int = 42, group_key: str | None = "question_id"):
        if not 0 < eval_share < 1:
            raise DataError("eval share must be between 0 and 1 (e.g. 0.1)", code="eval_share")
        self.share, self.seed, self.group_key = eval_share, seed, group_key
        self._lowest_train: tuple[float, str] | None = None
        self._highest_eval: tuple[float, str] | None = None
        self._first_key: str | None = None
        self._keys = 0  # 0, 1 or 2: "several" is all that matters

    def key(self, row: dict, pos: int) -> str:
        g = row.get(self.group_key) if self.group_key else None
        if g is not None:
            return f"g\x00{g}"
        rid = row.get("id")
        return f"i\x00{rid}" if rid not in (None, "") else f"p\x00{pos}"

    def place(self, row: dict, pos: int, move: str | None = None) -> bool:
        """True: eval. `move`: the key of the group moved to the other part (see `move`)."""
        key = self.key(row, pos)
        score = split_score(key, self.seed)
        to_eval = score < self.share
        if self._keys < 2 and key != self._first_key:
            self._keys += 1
            self._first_key = self._first_key or key
        if to_eval and (self._highest_eval is None or (score, key) > self._highest_eval):
            self._highest_eval = (score, key)
        if not to_eval and (self._lowest_train is None or (score, key) < self._lowest_train):
            self._lowest_train = (score, key)
        return to_eval != (key == move)

    def move(self, n_train: int, n_eval: int) -> str | None:
        """After a pass: the group to move when a part came out empty and there are two groups or more."""
        if self._keys < 2:
            return None
        if not n_eval and self._lowest_train:
            return self._lowest_train[1]
        if not n_train and self._highest_eval:
            return self._highest_eval[1]
        return None


def split(rows: list[dict], eval_share: float, seed: int = 42, group_key: str | None = "question_id"
          ) -> tuple[list[dict], list[dict]]:
    """Seeded train/eval split by group hash (see the module's docstring). Rows sharing `group_key` (several traces
    of one question) stay together, so the eval set never contains a question the student trained on. File order
    is kept inside each part."""
    rule = SplitRule(eval_share, seed, group_key)
    placed = [rule.place(r, i) for i, r in enumerate(rows)]
    move = rule.move(placed.count(False), placed.count(True))
    if move is not None:
        placed = [rule.place(r, i, move) for i, r in enumerate(rows)]
    return [r for r, e in zip(rows, placed, strict=True) if not e], [r for r, e in zip(rows, placed, strict=True) if e]


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


@dataclass
class _Plan:
    """What balancing decided from the counts alone: rows wanted per category, which positions (within each
    category, in file order) are kept, and how many copies a short category gets."""

    target: dict[str, int]
    keep: dict[str, Bitmap | None]  # category -> kept positions (None: all of its rows)
    short: dict[str, int]
    copies: dict[str, int]


_NONE = Bitmap(0)  # a category without a share: no row kept


def _plan(counts: Counter, shares: dict[str, float], total: int | None, seed: int, upsample: bool) -> _Plan:
    shares = {k: float(v) for k, v in shares.items() if float(v) > 0}
    if not shares:
        raise ValueError("give at least one category a share above 0")
    s = sum(shares.values())
    total = total or sum(counts.values())
    rng = random.Random(seed)
    plan = _Plan({}, {}, {}, {})
    for cat in sorted(shares):
        want = round(total * shares[cat] / s)
        plan.target[cat] = want
        have = counts.get(cat, 0)
        if have >= want:
            plan.keep[cat] = Bitmap(have)  # the positions random.sample(rows, want) picks: the list version's rows
            plan.keep[cat].set(np.array(rng.sample(range(have), want), dtype=np.uint64))
        else:
            plan.short[cat] = want - have
            plan.keep[cat] = None
            if upsample and have:
                plan.copies[cat] = want - have
    return plan


def _copy(row: dict, j: int, have: int) -> dict:
    """Copy `j` (0-based) of a short category's rows: ids `<id>~2`, `<id>~3`, ... so ids stay unique."""
    return {**row, "id": f"{row.get('id')}~{j // have + 2}"}


def balance(rows: list[dict], shares: dict[str, float], total: int | None = None, seed: int = 42,
            upsample: bool = False, key: str = "category") -> tuple[list[dict], BalanceReport]:
    """Resample classified rows toward target shares per category.

    Shares are normalised to sum to 1; the result has about `total` rows (default: as many as the input). A category
    with more rows than its target is sampled down (seeded); one with fewer keeps all its rows, and with `upsample`
    repeats them (copies get ids `<id>~2`, `<id>~3` so ids stay unique, after the original rows). Categories without
    a share are left out. `balance_dataset` does the same, streamed.
    """
    cats = [str(r.get(key) or "Others") for r in rows]
    before = Counter(cats)
    plan = _plan(before, shares, total, seed, upsample)
    seen: Counter = Counter()
    out: list[dict] = []
    members: dict[str, list[dict]] = defaultdict(list)
    for r, cat in zip(rows, cats, strict=True):
        i = seen[cat]
        seen[cat] += 1
        if cat in plan.keep and (plan.keep[cat] is None or i in plan.keep[cat]):  # type: ignore[operator]
            out.append(r)
        if cat in plan.copies:
            members[cat].append(r)
    for cat, n in plan.copies.items():
        have = members[cat]
        out.extend(_copy(have[j % len(have)], j, len(have)) for j in range(n))
    report = BalanceReport(before=dict(before), after=dict(Counter(str(r.get(key) or "Others") for r in out)),
                           target=plan.target, short=plan.short)
    return out, report


# ------------------------------------------------------------------------------------------ workspace wrappers


def split_dataset(ws: Workspace, name: str, eval_share: float, seed: int = 42,
                  train_name: str | None = None, eval_name: str | None = None,
                  confined: bool = True, track: Tracker | None = None,
                  group_key: str | None = "question_id") -> tuple[str, int, str, int]:
    """Write <name>-train and <name>-eval in one pass; returns (train name, rows, eval name, rows). `name` may be a
    file (confined to the workspace for web visitors, `confined=False` for the CLI's local user)."""
    src = open_source(ws, name, confined)
    rule = SplitRule(eval_share, seed, group_key)
    track = track or Tracker()
    if track.total is None:
        track.total = src.estimate()
    tn, en = train_name or f"{src.base}-train", eval_name or f"{src.base}-eval"
    if tn == en:
        raise DataError(f"the train and eval datasets need different names (both are '{tn}')", code="split_same_names",
                        params={"name": tn})
    how = f"split of {name} (eval share {eval_share}, seed {seed}, by hash of {group_key or 'id'})"
    move: str | None = None
    for _ in range(2):  # a second pass only when the first left a part empty
        with DatasetWriter(ws, tn) as train, DatasetWriter(ws, en) as ev:
            for i, (row, line) in enumerate(track.watch(src.records())):
                out = ev if rule.place(row, i, move) else train
                out.write_line(line) if line else out.write(row)
            move = None if move is not None else rule.move(train.rows, ev.rows)
            if move is None:
                train.commit("split", how)
                ev.commit("split", how)
                track.finish()
                return tn, train.rows, en, ev.rows
    raise AssertionError("unreachable: the second pass always commits")


def dedupe_dataset(ws: Workspace, name: str, by: DedupeBy = "instruction", out_name: str | None = None,
                   confined: bool = True, track: Tracker | None = None) -> tuple[str, int, int]:
    """Write <name>-dedup (first occurrences, in order); returns (new name, rows kept, rows removed). Two passes: see
    the module's docstring. `confined`: as for `split_dataset`."""
    from core.data.digests import RepeatFinder

    src = open_source(ws, name, confined)
    estimate = src.estimate()
    track = track or Tracker()
    if track.total is None:
        track.total = 2 * estimate
    new = out_name or f"{src.base}-dedup"
    finder = RepeatFinder(estimate, ws.datasets)
    try:
        n = 0
        for n, row in enumerate(track.watch(src.rows()), 1):
            finder.add(dedupe_key(row, by), n - 1)
        repeats = Bitmap(n)
        removed = 0
        for rep, _ in finder.repeats():
            repeats.set(rep)
            removed += len(rep)
    finally:
        finder.close()
    track.total = track.done + n  # the second pass reads the n rows the first one counted
    with DatasetWriter(ws, new) as out:
        for i, line in enumerate(track.watch(src.lines())):  # the kept rows' lines, copied without parsing
            if i >= n:
                break  # rows appended since the first pass are not this dedupe's
            if i not in repeats:
                out.write_line(line)
        out.commit("dedupe", f"dedupe of {name} by {by}", removed=removed)
    track.finish()
    return new, out.rows, removed


def balance_dataset(ws: Workspace, name: str, shares: dict[str, float], total: int | None = None, seed: int = 42,
                    upsample: bool = False, out_name: str | None = None, key: str = "category",
                    confined: bool = True, track: Tracker | None = None) -> tuple[str, int, BalanceReport]:
    """`balance` over a dataset, streamed (two passes and, with `upsample`, a reread of each short category's rows
    from a temporary file); writes <name>-balanced. Returns (new name, rows, report)."""
    src = open_source(ws, name, confined)
    track = track or Tracker()
    if track.total is None:
        track.total = 2 * src.estimate()
    before: Counter = Counter()
    tagged = False
    for row in track.watch(src.rows()):
        before[str(row.get(key) or "Others")] += 1
        tagged = tagged or key in row
    if not tagged:
        raise DataError(f"'{name}' has no '{key}' column: classify it first (synth operator classify)",
                        code="classify_first", params={"name": name, "column": key})
    plan = _plan(before, shares, total, seed, upsample)
    new = out_name or f"{src.base}-balanced"
    seen: Counter = Counter()
    after: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix=".balance-", dir=ws.datasets) as tmp, DatasetWriter(ws, new) as out:
        spill = {cat: open(Path(tmp) / f"{i}.jsonl", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
                 for i, cat in enumerate(plan.copies)}
        try:
            for row, line in track.watch(src.records()):
                cat = str(row.get(key) or "Others")
                i = seen[cat]
                seen[cat] += 1
                keep = plan.keep.get(cat, _NONE)
                if keep is None or i in keep:
                    out.write_line(line) if line else out.write(row)
                    after[cat] += 1
                if cat in spill:
                    spill[cat].write((line or json.dumps(row, ensure_ascii=False)) + "\n")
            for cat, n in plan.copies.items():
                f, have = spill[cat], before[cat]
                for j in range(n):
                    if j % have == 0:
                        f.seek(0)
                    out.write(_copy(json.loads(f.readline()), j, have))
                    after[cat] += 1
        finally:
            for f in spill.values():
                f.close()
        out.commit("balance", name, shares=shares, before=dict(before), after=dict(after))
    track.finish()
    return new, out.rows, BalanceReport(dict(before), dict(after), plan.target, plan.short)
