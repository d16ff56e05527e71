"""Dataset statistics: rows, length distributions (characters, and tokens for a chosen tokenizer), duplicates,
empty and missing fields. One streamed pass in bounded memory, whatever the file's size:

- counts, means and maxima are exact; the character lengths kept for the histograms are a sample of fewer than
  2 x CHAR_SAMPLE per field (every value until there are that many, then every 2nd, 4th, ...: an even spread through
  the file), so a file of fewer rows gets exactly the lengths of every row, as the whole-list version had them;
- duplicates are counted from 16-byte digests of the keys (core.data.digests: bounded, spilled to disk when large);
- token counts use a seeded reservoir sample of rows so a 100k-row dataset answers in seconds.

Tokenizers are loaded from a model folder's `tokenizer.json` with the light `tokenizers` library (no torch), so the
studio process can compute statistics without importing transformers; transformers is the lazy fallback for folders
that only have a slow tokenizer. The Data tab runs this in a job (`data_stats`); `DatasetStats.to_dict` /
`from_dict` carry the result from the job to the tab.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.errors import DataError
from core.data.ops import dedupe_key, pair_key
from core.data.rows import field_text, iter_jsonl_rows, prompt_text, response_text
from core.data.store import dataset_path
from core.data.stream import Tracker
from core.workspace import Workspace

STAT_FIELDS = ("instruction", "input", "output", "system", "thought", "solution", "chosen", "rejected", "text")
CHAR_SAMPLE = 2048


@dataclass
class FieldStats:
    present: int = 0
    empty: int = 0
    chars: list[int] = field(default_factory=list)  # the lengths, or an even sample of them (see the docstring)
    total_chars: int = 0
    max_chars: int = 0
    stride: int = 1  # chars keeps the length of every `stride`-th present value

    def add(self, n: int) -> None:
        if self.present % self.stride == 0:
            self.chars.append(n)
            if len(self.chars) >= 2 * CHAR_SAMPLE:
                del self.chars[1::2]
                self.stride *= 2
        self.present += 1
        self.total_chars += n
        self.max_chars = max(self.max_chars, n)


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
            mean = round(fs.total_chars / fs.present, 1)
            out.append([name, fs.present, fs.empty, self.rows - fs.present, mean, fs.max_chars])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what a stats job writes for the tab)."""
        return {
            "rows": self.rows, "duplicate_instructions": self.duplicate_instructions,
            "duplicate_pairs": self.duplicate_pairs, "multi_turn": self.multi_turn,
            "turns": {str(k): v for k, v in self.turns.items()},
            "fields": {k: {"present": f.present, "empty": f.empty, "chars": f.chars, "total_chars": f.total_chars,
                           "max_chars": f.max_chars, "stride": f.stride} for k, f in self.fields.items()},
            "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
            "token_sample": self.token_sample, "tokenizer": self.tokenizer, "categories": dict(self.categories),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetStats:
        return cls(
            rows=d["rows"], duplicate_instructions=d["duplicate_instructions"], duplicate_pairs=d["duplicate_pairs"],
            multi_turn=d["multi_turn"], turns=Counter({int(k): v for k, v in d["turns"].items()}),
            fields={k: FieldStats(**f) for k, f in d["fields"].items()},
            prompt_tokens=list(d["prompt_tokens"]), output_tokens=list(d["output_tokens"]),
            token_sample=d["token_sample"], tokenizer=d["tokenizer"], categories=Counter(d["categories"]),
        )


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
                  seed: int = 0, track: Tracker | None = None) -> DatasetStats:
    """Statistics of a canonical JSONL dataset: one pass in bounded memory (see the module's docstring); token lengths
    on a seeded sample of `token_sample` rows. `track` reports progress and stops the pass when asked."""
    from core.data.digests import RepeatFinder
    from core.data.io import count_lines

    st = DatasetStats(fields={f: FieldStats() for f in STAT_FIELDS})
    rng = random.Random(seed)
    sample: list[tuple[str, str]] = []
    expected = count_lines(path)
    track = track or Tracker()
    if track.total is None:
        track.total = expected
    folder = Path(path).parent if os.access(Path(path).parent, os.W_OK) else None  # where digests spill
    same_ins, same_pair = RepeatFinder(expected, folder), RepeatFinder(expected, folder)
    try:
        for row in track.watch(iter_jsonl_rows(path)):
            _count(st, row)
            key = dedupe_key(row, "instruction")
            same_ins.add(key, st.rows)
            same_pair.add(pair_key(row, key), st.rows)
            st.rows += 1
            if tokenizer:
                pair = (prompt_text(row) if not row.get("messages") else field_text(row, "messages"),
                        str(response_text(row) or ""))
                if len(sample) < token_sample:  # reservoir sampling: every row equally likely, in one pass
                    sample.append(pair)
                else:
                    j = rng.randrange(st.rows)
                    if j < token_sample:
                        sample[j] = pair
        st.duplicate_instructions = same_ins.repeat_count()
        st.duplicate_pairs = same_pair.repeat_count()
    finally:
        same_ins.close()
        same_pair.close()
    if tokenizer and sample:
        tc = TokenCounter(tokenizer)
        st.tokenizer = tc.name
        st.prompt_tokens = tc.count([p for p, _ in sample])
        st.output_tokens = tc.count([o for _, o in sample if o])
        st.token_sample = len(sample)
    track.finish()
    return st


def _count(st: DatasetStats, row: dict) -> None:
    for name in STAT_FIELDS:
        if name in row and row[name] is not None:
            fs = st.fields[name]
            text = field_text(row, name)
            fs.add(len(text))
            if not text.strip():
                fs.empty += 1
    if row.get("messages"):
        st.multi_turn += 1
        st.turns[len(row["messages"])] += 1
    if row.get("category"):
        st.categories[str(row["category"])] += 1


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


def dataset_stats(ws: Workspace, name: str, tokenizer: str | None = None, track: Tracker | None = None
                  ) -> DatasetStats:
    """Statistics of workspace dataset `name`, token lengths counted with `tokenizer` (a tokenizer_dir ref) if given."""
    tok = tokenizer_dir(ws, tokenizer) if (tokenizer or "").strip() else None
    path = dataset_path(ws, name)
    if not path.is_file():
        raise DataError(f"dataset '{name}' not found (deleted?); refresh the list", code="dataset_not_found",
                        params={"name": name})
    return compute_stats(path, tok, track=track)
