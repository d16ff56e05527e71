"""Exports of canonical rows to the formats other tools read, and LLaMA-Factory `dataset_info.json` entries.

Each export is the inverse of the matching import in core.data.formats, so import -> export gives the file back
(tested per format). Rows a format cannot express (a multi-turn chat as a flat pair, a row without chosen/rejected
as DPO) are skipped and listed with the reason, never silently dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.errors import DataError, RowInvalid
from core.data.io import write_records
from core.data.rows import prompt_text, response_text, to_messages
from core.data.store import exports_dir, load_rows
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


@dataclass
class ExportResult:
    path: Path
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row id, reason)

    def summary(self) -> str:
        s = f"{self.written} row(s) written to {self.path.name}"
        if self.skipped:
            s += f"; {len(self.skipped)} skipped (first: {self.skipped[0][0]}: {self.skipped[0][1]})"
        return s


def _extras(row: dict, keep_id: bool) -> dict:
    out = {k: v for k, v in row.items() if k not in CANONICAL_KEYS}
    if keep_id and "id" in row:
        out = {"id": row["id"], **out}
    return out


def _pairs(msgs: list[dict]) -> tuple[str | None, list[list[str]], str, str | None]:
    """(system, history pairs, last user turn, last answer) of a strictly alternating conversation."""
    system = None
    if msgs and msgs[0]["role"] == "system":
        system, msgs = msgs[0]["content"], msgs[1:]
    answer = None
    if msgs and msgs[-1]["role"] == "assistant":
        answer, msgs = msgs[-1]["content"], msgs[:-1]
    if not msgs or msgs[-1]["role"] != "user":
        raise RowInvalid("conversation does not end with a user turn (+ answer)")
    last, msgs = msgs[-1]["content"], msgs[:-1]
    if len(msgs) % 2 or any(m["role"] != ("user", "assistant")[i % 2] for i, m in enumerate(msgs)):
        raise RowInvalid("turns do not alternate user/assistant, so they cannot be written as Alpaca history")
    return system, [[msgs[i]["content"], msgs[i + 1]["content"]] for i in range(0, len(msgs), 2)], last, answer


def export_row(row: dict, fmt: str, keep_id: bool = True) -> dict:
    """One canonical row in format `fmt` (RowInvalid when the row cannot be expressed in it)."""
    if fmt == "canonical":
        return dict(row)
    if fmt == "messages":
        if not row.get("instruction") and not row.get("messages"):
            raise RowInvalid("no instruction or messages")
        return {**_extras(row, keep_id), "messages": to_messages(row)}
    if fmt == "sharegpt":
        msgs = to_messages(row)
        out: dict[str, Any] = _extras(row, keep_id)
        if msgs and msgs[0]["role"] == "system":
            out["system"] = msgs[0]["content"]
            msgs = msgs[1:]
        names = {"user": "human", "assistant": "gpt", "system": "system"}
        out["conversations"] = [{"from": names[m["role"]], "value": m["content"]} for m in msgs]
        return out
    if fmt == "alpaca":
        if row.get("messages"):
            system, history, last, answer = _pairs(row["messages"])
            ins, inp = (row["instruction"], row.get("input", "")) if prompt_text(row) == last else (last, "")
            out = {**_extras(row, keep_id), "instruction": ins, "input": inp, "output": answer or ""}
            if system:
                out["system"] = system
            out["history"] = history
            return out
        if not row.get("instruction"):
            raise RowInvalid("no instruction")
        out = {**_extras(row, keep_id), "instruction": row["instruction"], "input": row.get("input", ""),
               "output": response_text(row) or ""}
        if row.get("system"):
            out["system"] = row["system"]
        return out
    if fmt == "easydistill":
        if row.get("messages") and len([m for m in row["messages"] if m["role"] == "user"]) > 1:
            raise RowInvalid("a multi-turn conversation cannot be written as one instruction/output pair")
        if not row.get("instruction"):
            raise RowInvalid("no instruction")
        out = {"instruction": prompt_text(row)}
        ans = response_text(row)
        if ans is not None:
            out["output"] = ans
        return out
    if fmt == "dpo":
        if row.get("chosen") is None or row.get("rejected") is None:
            raise RowInvalid("no chosen/rejected pair")
        out = {**_extras(row, keep_id), "prompt": prompt_text(row), "chosen": row["chosen"],
               "rejected": row["rejected"]}
        if row.get("system"):
            out["system"] = row["system"]
        return out
    raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(EXPORT_FORMATS)}")


def _omnithought_records(rows: Iterable[dict], keep_id: bool, skipped: list) -> list[dict]:
    """Regroup flattened traces (rows sharing `question_id`, else the same instruction) into OmniThought records."""
    groups: dict[str, dict] = {}
    for row in rows:
        if not row.get("instruction"):
            skipped.append((row.get("id", "?"), "no instruction"))
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


def export_rows(rows: Iterable[dict], fmt: str, path: str | os.PathLike, keep_id: bool = True) -> ExportResult:
    """Write rows in `fmt` to `path` (container by the path's extension: .json, .jsonl, .csv, .parquet)."""
    p = Path(path)
    skipped: list[tuple[str, str]] = []
    if fmt == "omnithought":
        n = write_records(p, _omnithought_records(rows, keep_id, skipped))
        return ExportResult(p, n, skipped)

    def gen():
        for row in rows:
            try:
                yield export_row(row, fmt, keep_id)
            except RowInvalid as e:
                skipped.append((str(row.get("id", "?")), str(e)))

    n = write_records(p, gen())
    return ExportResult(p, n, skipped)


def llamafactory_entry(file_name: str, fmt: str) -> dict:
    """The `dataset_info.json` entry LLaMA-Factory needs to read a file we exported in `fmt`."""
    if fmt == "alpaca":
        return {"file_name": file_name, "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                                    "system": "system", "history": "history"}}
    if fmt == "easydistill":
        return {"file_name": file_name, "columns": {"prompt": "instruction", "response": "output"}}
    if fmt == "sharegpt":
        return {"file_name": file_name, "formatting": "sharegpt",
                "columns": {"messages": "conversations", "system": "system"}}
    if fmt == "messages":
        return {"file_name": file_name, "formatting": "sharegpt", "columns": {"messages": "messages"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system"}}
    if fmt == "dpo":
        return {"file_name": file_name, "ranking": True,
                "columns": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", "system": "system"}}
    raise DataError(f"LLaMA-Factory has no entry type for format {fmt!r}; export as alpaca, sharegpt or messages")


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


# ------------------------------------------------------------------------------------------ workspace wrapper


@dataclass
class DatasetExport:
    """What exporting a workspace dataset wrote: the file, and the LLaMA-Factory entry when one was asked for."""

    result: ExportResult
    info_path: Path | None = None  # dataset_info.json, beside the export
    info_name: str = ""  # the entry's name in it


def export_dataset(ws: Workspace, name: str, fmt: str, keep_id: bool = True,
                   llamafactory: bool = False) -> DatasetExport:
    """Export workspace dataset `name` to `datasets/exports/<name>-<fmt><ext>` (and register it for LLaMA-Factory).

    The LLaMA-Factory entry is built before anything is written, so a format it cannot read fails with nothing half
    done.
    """
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    out = exports_dir(ws) / f"{name}-{fmt}{EXPORT_FORMATS[fmt]}"
    entry = llamafactory_entry(out.name, fmt) if llamafactory else None
    rows, _ = load_rows(ws, name)
    done = DatasetExport(export_rows(rows, fmt, out, keep_id=keep_id))
    if entry is not None:
        done.info_path, done.info_name = update_dataset_info(out.parent, out.stem, entry), out.stem
    return done
