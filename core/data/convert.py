"""Exports of canonical rows to the formats other tools read, and LLaMA-Factory `dataset_info.json` entries.

Each export is the inverse of the matching import in core.data.formats, so import -> export gives the file back
(tested per format). Rows a format cannot express (a multi-turn chat as a flat pair, a row without chosen/rejected
as DPO) are skipped and listed with the reason, never silently dropped; what a written row loses (a pair's rejected
answer in a one-answer format, a system prompt in EasyDistill's) is counted in `ExportResult.lost`. An export that
would write nothing is refused (and leaves an earlier file of that name as it was).

Preference pairs (rows with chosen and rejected) are written in LLaMA-Factory's preference shapes: alpaca
{instruction, input, chosen, rejected}, sharegpt {conversations ending with the user turn, chosen: {from, value},
rejected: {from, value}} and dpo {prompt, chosen, rejected}; their entries say `ranking: true` (stage rm / dpo).
The entry lists exactly the columns the written file has (LLaMA-Factory 0.9 indexes every listed column of every
row, so naming an optional `system` or `history` that no row has fails its loader with a KeyError).
tests/test_llamafactory_roundtrip.py loads every format x kind of data through LLaMA-Factory's own pipeline.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.errors import DataError, RowInvalid
from core.data.io import file_type, write_records
from core.data.rows import prompt_text, response_text, to_messages
from core.data.store import exports_dir
from core.data.stream import Tracker, holds_pairs, open_source
from core.said import Said, of_error
from core.workspace import Workspace

EXPORT_FORMATS: dict[str, str] = {  # format -> default file extension
    "messages": ".jsonl", "alpaca": ".json", "sharegpt": ".json", "easydistill": ".json", "dpo": ".jsonl",
    "omnithought": ".json", "canonical": ".jsonl",
}
EXPORT_LABELS: dict[str, str] = {  # what a person picks from (format names, the same in every language)
    "messages": "OpenAI messages (JSONL)", "alpaca": "Alpaca (JSON)", "sharegpt": "ShareGPT (JSON)",
    "easydistill": "EasyDistill labeled (JSON)", "dpo": "DPO prompt/chosen/rejected (JSONL)",
    "omnithought": "OmniThought (JSON)",
}
CANONICAL_KEYS = {"id", "system", "instruction", "input", "output", "messages", "chosen", "rejected", "thought",
                  "solution", "text"}
# format -> (LLaMA-Factory column key, the column our export writes); an entry names those the file has
LF_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "alpaca": [("prompt", "instruction"), ("query", "input"), ("response", "output"), ("system", "system"),
               ("history", "history"), ("chosen", "chosen"), ("rejected", "rejected")],
    "easydistill": [("prompt", "instruction"), ("response", "output")],
    "sharegpt": [("messages", "conversations"), ("system", "system"), ("chosen", "chosen"), ("rejected", "rejected")],
    "messages": [("messages", "messages")],
    "dpo": [("prompt", "prompt"), ("system", "system"), ("history", "history"), ("chosen", "chosen"),
            ("rejected", "rejected")],
}
LF_ALWAYS: dict[str, set[str]] = {  # columns every file of the format has (an entry built without the file's columns)
    "alpaca": {"instruction", "input", "output"}, "easydistill": {"instruction", "output"},
    "sharegpt": {"conversations"}, "messages": {"messages"}, "dpo": {"prompt", "chosen", "rejected"},
}
LF_CONTAINERS = ("json", "jsonl", "parquet")  # CSV cells would hold the nested columns as text
LOST_TEXT = {  # what a written row could not keep -> how the summary says it
    "rejected": "pair(s) written with the chosen answer only ({fmt} holds one answer: dpo, alpaca or sharegpt keep "
                "both)",
    "system": "row(s) written without their system prompt ({fmt} holds instruction and output only)",
}


@dataclass
class ExportResult:
    path: Path
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row id, reason)
    columns: list[str] = field(default_factory=list)  # every column a written record has, in first-seen order
    lost: dict[str, int] = field(default_factory=dict)  # LOST_TEXT key -> written rows that lost it
    fmt: str = ""

    def summary(self) -> str:
        s = f"{self.written} row(s) written to {self.path.name}"
        if self.skipped:
            s += f"; {len(self.skipped)} skipped (first: {self.skipped[0][0]}: {self.skipped[0][1]})"
        for key, n in self.lost.items():
            s += f"; {n} {LOST_TEXT[key].format(fmt=self.fmt)}"
        return s


def _is_pair(row: dict) -> bool:
    return row.get("chosen") is not None and row.get("rejected") is not None


def _history_turns(h: Any) -> list[dict] | None:
    """Earlier turns kept in a row's `history` (the pairs job: role/content dicts; Alpaca: [user, answer] pairs) as
    messages; None when `h` is neither (then it is an ordinary extra column)."""
    if not isinstance(h, list) or not h:
        return None
    if all(isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
           for m in h):
        return [{"role": m["role"], "content": m["content"]} for m in h]
    if all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in h):
        return [t for u, a in h for t in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
    return None


def _extras(row: dict, keep_id: bool) -> dict:
    out = {k: v for k, v in row.items()
           if k not in CANONICAL_KEYS and not (k == "history" and _history_turns(v) is not None)}
    if keep_id and "id" in row:
        out = {"id": row["id"], **out}
    return out


def _conversation(row: dict, include_output: bool = True) -> list[dict]:
    """The row as messages, with the earlier turns a pair row keeps in `history` before its prompt."""
    msgs = to_messages(row, include_output=include_output)
    history = None if row.get("messages") else _history_turns(row.get("history"))
    if history:
        at = 1 if msgs and msgs[0]["role"] == "system" else 0
        msgs = msgs[:at] + history + msgs[at:]
    return msgs


def _pairs(msgs: list[dict]) -> tuple[str | None, list[list[str]], str, str | None]:
    """(system, history pairs, last user turn, last answer) of a strictly alternating conversation."""
    system = None
    if msgs and msgs[0]["role"] == "system":
        system, msgs = msgs[0]["content"], msgs[1:]
    answer = None
    if msgs and msgs[-1]["role"] == "assistant":
        answer, msgs = msgs[-1]["content"], msgs[:-1]
    if not msgs or msgs[-1]["role"] != "user":
        raise RowInvalid("conversation does not end with a user turn (+ answer)", code="row_end_user")
    last, msgs = msgs[-1]["content"], msgs[:-1]
    if len(msgs) % 2 or any(m["role"] != ("user", "assistant")[i % 2] for i, m in enumerate(msgs)):
        raise RowInvalid("turns do not alternate user/assistant, so they cannot be written as Alpaca history",
                         code="row_history_alternate")
    return system, [[msgs[i]["content"], msgs[i + 1]["content"]] for i in range(0, len(msgs), 2)], last, answer


def _check_preference(row: dict, preference: bool | None) -> bool:
    pref = _is_pair(row) if preference is None else preference
    if pref and not _is_pair(row):
        raise RowInvalid("not a preference pair: this export holds the dataset's pairs (chosen/rejected), and "
                         "LLaMA-Factory reads one kind per dataset", code="row_not_pair")
    return pref


def _alpaca(row: dict, keep_id: bool, pref: bool) -> dict:
    if not row.get("instruction") and not row.get("messages"):
        raise RowInvalid("no instruction", code="row_no_instruction")
    system, history, last, answer = _pairs(_conversation(row, include_output=not pref))
    ins, inp = (row["instruction"], row.get("input", "")) if prompt_text(row) == last else (last, "")
    out: dict[str, Any] = {**_extras(row, keep_id), "instruction": ins, "input": inp}
    if pref:
        out.update(chosen=row["chosen"], rejected=row["rejected"])
        if row.get("output") is not None:
            out["output"] = row["output"]
    else:
        out["output"] = answer or ""
    if system:
        out["system"] = system
    if history:
        out["history"] = history
    return out


def _sharegpt(row: dict, keep_id: bool, pref: bool) -> dict:
    if not row.get("instruction") and not row.get("messages"):
        raise RowInvalid("no instruction or messages", code="row_no_prompt_messages")
    msgs = _conversation(row, include_output=not pref)
    out: dict[str, Any] = _extras(row, keep_id)
    if msgs and msgs[0]["role"] == "system":
        out["system"] = msgs[0]["content"]
        msgs = msgs[1:]
    names = {"user": "human", "assistant": "gpt", "system": "system"}
    out["conversations"] = [{"from": names[m["role"]], "value": m["content"]} for m in msgs]
    if pref:
        if not msgs or msgs[-1]["role"] != "user":
            raise RowInvalid("the pair's prompt does not end with a user turn", code="row_pair_end_user_plain")
        out["chosen"] = {"from": "gpt", "value": row["chosen"]}
        out["rejected"] = {"from": "gpt", "value": row["rejected"]}
    return out


def export_row(row: dict, fmt: str, keep_id: bool = True, preference: bool | None = None) -> dict:
    """One canonical row in format `fmt` (RowInvalid when the row cannot be expressed in it).

    `preference` (alpaca, sharegpt): write the preference shape (chosen/rejected) rather than the one-answer one;
    default: whether the row is a pair. export_rows decides it once for the whole file.
    """
    if fmt == "canonical":
        return dict(row)
    if fmt == "messages":
        if not row.get("instruction") and not row.get("messages"):
            raise RowInvalid("no instruction or messages", code="row_no_prompt_messages")
        return {**_extras(row, keep_id), "messages": _conversation(row)}
    if fmt == "sharegpt":
        return _sharegpt(row, keep_id, _check_preference(row, preference))
    if fmt == "alpaca":
        return _alpaca(row, keep_id, _check_preference(row, preference))
    if fmt == "easydistill":
        if len([m for m in _conversation(row) if m["role"] == "user"]) > 1:
            raise RowInvalid("a multi-turn conversation cannot be written as one instruction/output pair",
                             code="row_multi_turn")
        if not row.get("instruction"):
            raise RowInvalid("no instruction", code="row_no_instruction")
        out = {"instruction": prompt_text(row)}
        ans = response_text(row)
        if ans is not None:
            out["output"] = ans
        return out
    if fmt == "dpo":
        if not _is_pair(row):
            raise RowInvalid("no chosen/rejected pair", code="row_no_pair")
        system, history, last, _ = _pairs(_conversation(row, include_output=False))
        out = {**_extras(row, keep_id), "prompt": last, "chosen": row["chosen"], "rejected": row["rejected"]}
        if system:
            out["system"] = system
        if history:
            out["history"] = history
        return out
    raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(EXPORT_FORMATS)}")


def _lost(row: dict, fmt: str) -> list[str]:
    """What of a written row `fmt` cannot hold (LOST_TEXT keys)."""
    out = []
    if fmt in ("messages", "easydistill") and _is_pair(row):
        out.append("rejected")
    if fmt == "easydistill" and any(m["role"] == "system" for m in _conversation(row)):
        out.append("system")
    return out


def _omnithought_records(rows: Iterable[dict], keep_id: bool, skipped: list) -> list[dict]:
    """Regroup flattened traces (rows sharing `question_id`, else the same instruction) into OmniThought records."""
    groups: dict[str, dict] = {}
    for row in rows:
        if not row.get("instruction"):
            skipped.append((row.get("id", "?"), Said("no instruction", "errors.row_no_instruction")))
            continue
        qid = str(row.get("question_id") or row["instruction"])
        rec = groups.get(qid)
        if rec is None:
            rec = groups[qid] = {"id": qid} if keep_id and row.get("question_id") else {}
            rec.update({"question": row["instruction"], "reasoning": []})
        trace: dict[str, Any] = {}
        for k in ("thought", "solution"):
            if row.get(k) is not None:
                trace[k] = row[k]
        trace["full_response"] = row.get("output", "")
        if row.get("teacher") is not None:
            trace["teacher"] = row["teacher"]
        if row.get("correctness") is not None:
            trace["thought_correctness_verify"] = bool(row["correctness"])
        for key, name, judge in (("rv", "Reasoning_Verbosity", "rv_judge"), ("cd", "Cognitive_Difficulty", "cd_judge")):
            if row.get(key) is not None:
                trace[name] = {"level": row[key], **({"judge": row[judge]} if row.get(judge) else {})}
        skip = {"id", "question_id", "trace_index", "instruction", "output", "thought", "solution", "teacher",
                "correctness", "rv", "cd", "rv_judge", "cd_judge"}
        trace.update({k: v for k, v in row.items() if k not in skip})
        rec["reasoning"].append(trace)
    return list(groups.values())


def _nothing_written(fmt: str, total: int, skipped: list[tuple[str, str]]) -> DataError:
    if not total:
        return DataError(f"nothing to export: the dataset has no rows (no {fmt} file written)")
    first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
    return DataError(f"nothing to export as {fmt}: none of the {total} row(s) can be written in it{first}; no file "
                     "written. Pick a format that holds these rows (dpo needs chosen/rejected pairs)")


def export_rows(rows: Iterable[dict], fmt: str, path: str | os.PathLike, keep_id: bool = True,
                preference: bool | None = None) -> ExportResult:
    """Write rows in `fmt` to `path` (container by the path's extension: .json, .jsonl, .csv, .parquet).

    DataError, and `path` left as it was, when no row can be written. Alpaca and ShareGPT of a dataset holding
    preference pairs write the pairs in the preference shape (the other rows are skipped, listed). Rows are written
    as they come (a generator streams: JSON and JSONL files) when the caller says whether the dataset holds pairs
    (`preference`, alpaca and sharegpt); otherwise they are gathered first to find out, as omnithought's regrouping
    gathers them.
    """
    p = Path(path)
    if fmt == "omnithought" or (fmt in ("alpaca", "sharegpt") and preference is None):
        rows = list(rows)
    skipped: list[tuple[str, str]] = []
    columns: dict[str, None] = {}
    if fmt == "omnithought":
        records = _omnithought_records(rows, keep_id, skipped)
        if not records:
            raise _nothing_written(fmt, len(rows), skipped)
        for rec in records:
            columns.update(dict.fromkeys(rec))
        return ExportResult(p, write_records(p, records), skipped, list(columns), fmt=fmt)

    if fmt not in ("alpaca", "sharegpt"):
        preference = None
    elif preference is None:
        preference = any(_is_pair(r) for r in rows)
    lost: Counter[str] = Counter()
    total = 0

    def gen():
        nonlocal total
        n = 0
        for row in rows:
            total += 1
            try:
                rec = export_row(row, fmt, keep_id, preference=preference)
            except RowInvalid as e:
                skipped.append((str(row.get("id", "?")), of_error(e)))
                continue
            columns.update(dict.fromkeys(rec))
            lost.update(_lost(row, fmt))
            n += 1
            yield rec
        if not n:  # raised inside write_records: its temporary file goes, an earlier export stays
            raise _nothing_written(fmt, total, skipped)

    n = write_records(p, gen())
    return ExportResult(p, n, skipped, list(columns), dict(lost), fmt)


def check_llamafactory(fmt: str, path: str | os.PathLike | None = None) -> None:
    """DataError when LLaMA-Factory cannot read `fmt` (or a file at `path`): checked before anything is written."""
    if fmt not in LF_COLUMNS:
        raise DataError(f"LLaMA-Factory has no entry type for format {fmt!r}; export as "
                        f"{', '.join(LF_COLUMNS)} instead")
    if path is not None and file_type(Path(path)) not in LF_CONTAINERS:
        raise DataError(f"{Path(path).name}: a LLaMA-Factory entry needs a .json, .jsonl or .parquet file (the "
                        "conversation columns do not fit in CSV cells)")


def llamafactory_entry(file_name: str, fmt: str, columns: Iterable[str] | None = None) -> dict:
    """The `dataset_info.json` entry LLaMA-Factory needs to read a file we exported in `fmt`.

    `columns`: those the written file has (ExportResult.columns); the entry names exactly those of them LLaMA-Factory
    reads, and is a preference (`ranking`) entry when the file has chosen and rejected. Without it, only the columns
    every file of the format has are named.
    """
    check_llamafactory(fmt)
    have = set(LF_ALWAYS[fmt] if columns is None else columns)
    ranking = {"chosen", "rejected"} <= have
    cols = {key: col for key, col in LF_COLUMNS[fmt] if col in have and not (ranking and key == "response")}
    if fmt in ("alpaca", "easydistill", "dpo") and "prompt" not in cols:
        raise DataError(f"{file_name} has no '{LF_COLUMNS[fmt][0][1]}' column: LLaMA-Factory cannot read it")
    if fmt in ("sharegpt", "messages") and "messages" not in cols:
        raise DataError(f"{file_name} has no '{LF_COLUMNS[fmt][0][1]}' column: LLaMA-Factory cannot read it")
    entry: dict[str, Any] = {"file_name": file_name}
    if fmt in ("sharegpt", "messages"):
        entry["formatting"] = "sharegpt"
    if ranking:
        entry["ranking"] = True
    entry["columns"] = cols
    if fmt == "messages":
        entry["tags"] = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system"}
    return entry


def update_dataset_info(folder: str | os.PathLike, name: str, entry: dict) -> Path:
    """Add or replace `name` in folder/dataset_info.json (other entries kept)."""
    path = Path(folder) / "dataset_info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name} is not valid JSON (line {e.lineno}): fix or remove it, then export again"
                        ) from None
    if not isinstance(info, dict):
        raise DataError(f"{path.name} is not a JSON object of dataset entries: fix or remove it, then export again")
    info[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def register_llamafactory(result: ExportResult, fmt: str) -> tuple[Path, str]:
    """Enter a written export in dataset_info.json beside it, named after the file: (dataset_info.json, name)."""
    if not result.written:
        raise DataError(f"{result.path.name} holds no rows: no LLaMA-Factory entry written")
    name = result.path.stem
    entry = llamafactory_entry(result.path.name, fmt, result.columns)
    return update_dataset_info(result.path.parent, name, entry), name


# ------------------------------------------------------------------------------------------ workspace wrapper


@dataclass
class DatasetExport:
    """What exporting a workspace dataset wrote: the file, and the LLaMA-Factory entry when one was asked for."""

    result: ExportResult
    info_path: Path | None = None  # dataset_info.json, beside the export
    info_name: str = ""  # the entry's name in it


def export_dataset(ws: Workspace, name: str, fmt: str, keep_id: bool = True,
                   llamafactory: bool = False, track: Tracker | None = None) -> DatasetExport:
    """Export workspace dataset `name` to `datasets/exports/<name>-<fmt><ext>` (and register it for LLaMA-Factory).

    A format LLaMA-Factory cannot read fails before anything is written; an export with no row to write is refused
    (DataError) with no file and no entry. The dataset is streamed (alpaca and sharegpt read it once more first, to
    the first pair, to pick the shape); `track` reports progress and stops the export when asked.
    """
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    out = exports_dir(ws) / f"{name}-{fmt}{EXPORT_FORMATS[fmt]}"
    if llamafactory:
        check_llamafactory(fmt, out)
    src = open_source(ws, name)
    track = track or Tracker()
    passes = 2 if fmt in ("alpaca", "sharegpt") else 1
    track.total = track.total or passes * src.estimate()
    pairs = holds_pairs(track.watch(src.rows())) if passes == 2 else None
    done = DatasetExport(export_rows(track.watch(src.rows()), fmt, out, keep_id=keep_id, preference=pairs))
    track.finish()
    if llamafactory:
        done.info_path, done.info_name = register_llamafactory(done.result, fmt)
    return done
