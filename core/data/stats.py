"""Dataset statistics: rows, length distributions (characters, and tokens for a chosen tokenizer), duplicates,
empty and missing fields. Streams the file once; token counts use a seeded sample of rows so a 100k-row dataset
answers in seconds.

Tokenizers are loaded from a model folder's `tokenizer.json` with the light `tokenizers` library (no torch), so the
studio process can compute statistics without importing transformers; transformers is the lazy fallback for folders
that only have a slow tokenizer.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.errors import DataError
from core.data.ops import dedupe_key
from core.data.rows import field_text, iter_jsonl_rows, prompt_text, response_text
from core.data.store import dataset_path
from core.workspace import Workspace

STAT_FIELDS = ("instruction", "input", "output", "system", "thought", "solution", "chosen", "rejected", "text")


@dataclass
class FieldStats:
    present: int = 0
    empty: int = 0
    chars: list[int] = field(default_factory=list)


@dataclass
class DatasetStats:
    rows: int = 0
    fields: dict[str, FieldStats] = field(default_factory=dict)
    duplicate_instructions: int = 0
    duplicate_pairs: int = 0
    multi_turn: int = 0
    turns: Counter = field(default_factory=Counter)
    prompt_tokens: list[int] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    token_sample: int = 0
    tokenizer: str = ""
    categories: Counter = field(default_factory=Counter)

    def summary_rows(self) -> list[list[Any]]:
        """(field, present, empty, missing, mean chars, max chars) per field that occurs."""
        out = []
        for name, fs in self.fields.items():
            if not fs.present:
                continue
            mean = round(sum(fs.chars) / len(fs.chars), 1) if fs.chars else 0
            out.append([name, fs.present, fs.empty, self.rows - fs.present, mean, max(fs.chars, default=0)])
        return out


class TokenCounter:
    """Counts tokens with a model's tokenizer; built from tokenizer.json when possible (fast, no torch)."""

    def __init__(self, folder: str | os.PathLike):
        p = Path(folder)
        self.name = p.name
        tj = p / "tokenizer.json"
        if tj.is_file():
            from tokenizers import Tokenizer

            try:
                tok = Tokenizer.from_file(str(tj))
            except Exception as e:  # the tokenizers library raises a bare Exception for a damaged file
                raise DataError(f"{p.name}/tokenizer.json cannot be read as a tokenizer ({e})") from None
            self._count = lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
        elif p.is_dir():
            from transformers import AutoTokenizer  # lazy: only for folders without a fast tokenizer file

            try:
                tok2 = AutoTokenizer.from_pretrained(str(p))
            except (OSError, ValueError) as e:  # no tokenizer files there, or ones transformers cannot read
                raise DataError(f"no usable tokenizer in {p.name} ({e})") from None
            self._count = lambda texts: [len(tok2(t, add_special_tokens=False)["input_ids"]) for t in texts]
        else:
            raise DataError(f"no tokenizer found in {p} (expected a model folder with tokenizer.json)")

    def count(self, texts: list[str]) -> list[int]:
        return self._count(texts) if texts else []


def compute_stats(path: str | os.PathLike, tokenizer: str | os.PathLike | None = None, token_sample: int = 2000,
                  seed: int = 0) -> DatasetStats:
    """Statistics of a canonical JSONL dataset (one pass; token lengths on a seeded sample of `token_sample` rows)."""
    st = DatasetStats(fields={f: FieldStats() for f in STAT_FIELDS})
    seen_ins: set[str] = set()
    seen_pair: set[str] = set()
    rng = random.Random(seed)
    sample: list[tuple[str, str]] = []
    for row in iter_jsonl_rows(path):
        st.rows += 1
        for name in STAT_FIELDS:
            if name in row and row[name] is not None:
                fs = st.fields[name]
                fs.present += 1
                text = field_text(row, name)
                fs.chars.append(len(text))
                if not text.strip():
                    fs.empty += 1
        if row.get("messages"):
            st.multi_turn += 1
            st.turns[len(row["messages"])] += 1
        if row.get("category"):
            st.categories[str(row["category"])] += 1
        k1, k2 = dedupe_key(row, "instruction"), dedupe_key(row, "instruction_output")
        st.duplicate_instructions += k1 in seen_ins
        st.duplicate_pairs += k2 in seen_pair
        seen_ins.add(k1)
        seen_pair.add(k2)
        if tokenizer:
            pair = (prompt_text(row) if not row.get("messages") else field_text(row, "messages"),
                    str(response_text(row) or ""))
            if len(sample) < token_sample:  # reservoir sampling: every row equally likely, in one pass
                sample.append(pair)
            else:
                j = rng.randrange(st.rows)
                if j < token_sample:
                    sample[j] = pair
    if tokenizer and sample:
        tc = TokenCounter(tokenizer)
        st.tokenizer = tc.name
        st.prompt_tokens = tc.count([p for p, _ in sample])
        st.output_tokens = tc.count([o for _, o in sample if o])
        st.token_sample = len(sample)
    return st


def percentiles(values: list[int], qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, int]:
    if not values:
        return {}
    v = sorted(values)
    return {f"p{int(q * 100)}": v[min(len(v) - 1, int(q * len(v)))] for q in qs} | {"max": v[-1]}


def percentile_text(values: list[int]) -> str:
    """Percentiles as one short line ("p50 12 · p90 40 · p99 88 · max 91"); a dash when there are no values."""
    p = percentiles(values)
    return " · ".join(f"{k} {v}" for k, v in p.items()) if p else "—"


# ------------------------------------------------------------------------------------------ workspace wrappers


def tokenizer_choices(ws: Workspace) -> list[str]:
    """Workspace models with a tokenizer.json: what the token-count picker offers (fast to count, no torch)."""
    return sorted(p.parent.name for p in ws.models.glob("*/tokenizer.json")) if ws.models.exists() else []


def tokenizer_dir(ws: Workspace, ref: str) -> Path:
    """A model name under models/, or a folder path confined to the workspace (a web visitor names no server
    folder); PathOutsideWorkspace or DataError say what is wrong."""
    ref = ref.strip()
    cand = ws.models / ref
    if ref and "/" not in ref and cand.is_dir():
        return ws.inside(cand)
    p = ws.resolve(ref)
    if not p.is_dir():
        raise DataError(f"'{ref}' is not a model folder in the workspace")
    return p


def dataset_stats(ws: Workspace, name: str, tokenizer: str | None = None) -> DatasetStats:
    """Statistics of workspace dataset `name`, token lengths counted with `tokenizer` (a tokenizer_dir ref) if given."""
    tok = tokenizer_dir(ws, tokenizer) if (tokenizer or "").strip() else None
    path = dataset_path(ws, name)
    if not path.is_file():
        raise DataError(f"dataset '{name}' not found (deleted?); refresh the list")
    return compute_stats(path, tok)
