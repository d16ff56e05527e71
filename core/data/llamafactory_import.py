"""Import of LLaMA-Factory datasets: an entry of a `dataset_info.json` and its file(s) become canonical rows.

A person who trains in LLaMA-Factory already has `data/dataset_info.json`: one entry per dataset, naming its file
(`file_name`, relative to that folder; a folder of files works too), its `formatting` (alpaca, sharegpt, openai),
`ranking` (preference pairs), the `columns` its fields live in and, for conversations, the `tags` of roles. The rows
read here are what LLaMA-Factory's own converters (data/converter.py, 0.9.x) make of the same records:

- alpaca: the prompt is `prompt` + "\n" + `query` (instruction + input; canonical `input`, joined by
  core.data.rows.prompt_text exactly so), `history` turns before it, `response` the answer, `system` the system
  prompt; with `ranking`, `chosen` / `rejected` are the two answers.
- sharegpt / openai: the `messages` column holds turns `{role_tag: ..., content_tag: ...}` with the entry's user /
  assistant / system tags; a leading system turn is the system prompt; with `ranking`, `chosen` / `rejected` are
  assistant turns after a conversation that ends with the user. A conversation without ranking that ends with the
  user's turn (LLaMA-Factory skips it in SFT) is kept as a prompt without an answer, e.g. for synthesis.

As LLaMA-Factory reads it: an entry with `columns` uses only the columns it names, one without uses the defaults
(instruction / input / output, conversations); `tags` likewise. What the studio cannot hold is refused by name rather
than half-imported: hub and script entries (import the downloaded file), KTO tags, images / videos / audios, and
tool calls (function_call / observation turns, per row). Every column the entry does not use is counted in the
import summary, and the rows keep it.

Files are reached by the workspace's rules (core.workspace), each one checked on its resolved path: a web visitor's
import (`confined=True`) reads only inside the workspace or an allowed root, so a `file_name` with `../` or a link
(the file, a folder entry, a file inside that folder) leading out is refused; a local CLI user's (`confined=False`)
may name any place, but a path into the workspace never leads out of it through a link.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core import textfile
from core.data.errors import DataError, RowError, RowInvalid, excerpt
from core.data.formats import MISSING, _conversation_row, _history_messages, _str, kind_of, unused_columns
from core.data.io import EXTENSIONS, iter_records, json_problem
from core.data.rows import IdAssigner, with_id_first
from core.said import Said, of_error
from core.workspace import LinkOutsideWorkspace, PathOutsideWorkspace, Workspace

INFO_FILE = "dataset_info.json"
FORMATTINGS = ("alpaca", "sharegpt", "openai")
COLUMNS = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
           "chosen", "rejected", "kto_tag")
DEFAULT_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "messages": "conversations"}
TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
DEFAULT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
MEDIA = ("images", "videos", "audios")


@dataclass
class LFEntry:
    """One dataset_info.json entry as LLaMA-Factory's parser reads it (DatasetAttr), resolved to local files."""

    name: str
    files: list[Path]
    formatting: str = "alpaca"
    ranking: bool = False
    columns: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def col(self, key: str) -> str | None:
        return self.columns.get(key)

    def used(self) -> set[str]:
        """The columns LLaMA-Factory reads for this entry (the rest of a record is extra)."""
        keys = ["system", "chosen", "rejected"]
        keys += ["prompt", "query", "response", "history"] if self.formatting == "alpaca" else ["messages"]
        if not self.ranking:
            keys = [k for k in keys if k not in ("chosen", "rejected")]
        return {c for k in keys if (c := self.col(k))} | {"id"}


def read_dataset_info(path: str | os.PathLike, *, ws: Workspace | None = None,
                      confined: bool = False) -> dict[str, dict]:
    """The entries of a dataset_info.json (a folder holding one works too), with problems named. With `ws` and
    `confined` (a web visitor's import, as in `load_entry`) messages name the file relative to the workspace, never
    by the server's absolute path."""
    p = Path(path)
    if p.is_dir():
        p = p / INFO_FILE
    name = _shown(ws, confined)(p)
    if not p.is_file():
        raise DataError(f"{name}: not found (a LLaMA-Factory dataset_info.json, or the folder that holds one)",
                        code="lf_info_not_found", params={"file": name})
    text, why = textfile.decode(p.read_bytes())
    if text is None:
        raise DataError(textfile.not_text_message(name, why or ""), code="not_text",
                        params={"file": name, "why": why or ""})
    try:
        info = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{name}: not valid JSON ({json_problem(e)})", code="json_invalid",
                        params={"file": name, "line": e.lineno, "column": e.colno}) from None
    except RecursionError:
        raise DataError(f"{name}: not usable: JSON nested too deeply", code="json_too_deep",
                        params={"file": name}) from None
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise DataError(f"{name}: expected an object of dataset entries ({{\"name\": {{\"file_name\": ...}}}})",
                        code="lf_info_shape", params={"file": name})
    return info


def _shown(ws: Workspace | None, confined: bool) -> Callable[[str | os.PathLike], str]:
    """How this import names a path in a message: relative to the workspace for a web visitor, as is otherwise."""
    return ws.shown if ws is not None and confined else str


def visitor_entries(ws: Workspace, text: str | os.PathLike) -> tuple[Path, list[str]]:
    """(the dataset_info.json, its entry names) a web visitor named by a workspace path (the file or its folder),
    confined to the workspace: what the Data tab lists before importing one entry."""
    p = ws.resolve(text)
    if p.is_dir():
        p = ws.resolve(p / INFO_FILE)
    return p, list(read_dataset_info(p, ws=ws, confined=True))


def is_dataset_info(path: str | os.PathLike) -> bool:
    """Whether a path given to `data import` names a LLaMA-Factory dataset_info.json (or its folder)."""
    p = Path(path)
    return p.name == INFO_FILE or (p.is_dir() and (p / INFO_FILE).is_file())


def load_entry(path: str | os.PathLike, name: str | None = None, *, ws: Workspace | None = None,
               confined: bool = False) -> LFEntry:
    """Entry `name` of a dataset_info.json, its files found (the only entry when `name` is None). With `ws`, the
    dataset_info.json and every file are checked by the workspace's rules: `confined` for a web visitor
    (Workspace.resolve), else a local user's (Workspace.local); without, paths are taken as written."""
    reach = _reach(ws, confined)
    path = reach(path)
    if path.is_dir():
        path = reach(path / INFO_FILE)
    info = read_dataset_info(path, ws=ws, confined=confined)
    folder = path.parent
    if not info:
        shown = _shown(ws, confined)(folder / INFO_FILE)
        raise DataError(f"{shown}: no dataset entries", code="lf_no_entries", params={"file": shown})
    if name is None:
        if len(info) != 1:
            raise DataError(f"{INFO_FILE} has {len(info)} entries; say which one to import: {', '.join(info)}",
                            code="lf_which_entry", params={"n": len(info), "entries": ", ".join(info)})
        name = next(iter(info))
    if name not in info:
        raise DataError(f"{INFO_FILE} has no entry '{name}'; its entries are: {', '.join(info)}",
                        code="lf_no_entry", params={"entry": name, "entries": ", ".join(info)})
    attr = info[name]
    hub = next((k for k in HUB_KEYS if k in attr), None)
    if hub:
        raise DataError(f"entry '{name}' is loaded from {hub} {attr[hub]!r}, not a local file; download it and "
                        "import the file (or add a file_name entry for it)", code="lf_hub",
                        params={"entry": name, "via": hub, "source": repr(attr[hub])})
    if not isinstance(attr.get("file_name"), str) or not attr["file_name"].strip():
        raise DataError(f"entry '{name}' has no file_name", code="lf_no_file_name", params={"entry": name})
    formatting = attr.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        raise DataError(f"entry '{name}': formatting {formatting!r} is not supported (one of {', '.join(FORMATTINGS)})",
                        code="lf_formatting", params={"entry": name, "formatting": repr(formatting),
                                                      "choices": ", ".join(FORMATTINGS)})
    files = _files(folder, attr["file_name"], name, reach)
    entry = LFEntry(name, files, formatting, bool(attr.get("ranking", False)))
    cols = attr.get("columns")
    if cols is not None and not isinstance(cols, dict):
        raise DataError(f"entry '{name}': 'columns' must be an object (e.g. {{\"prompt\": \"instruction\"}})",
                        code="lf_columns_object", params={"entry": name})
    entry.columns = {k: (cols or {}).get(k) for k in COLUMNS} if cols is not None else dict(DEFAULT_COLUMNS)
    tags = attr.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise DataError(f"entry '{name}': 'tags' must be an object (e.g. {{\"role_tag\": \"role\"}})",
                        code="lf_tags_object", params={"entry": name})
    entry.tags = {k: tags.get(k) for k in TAGS} if tags is not None else dict(DEFAULT_TAGS)
    _refuse_unsupported(entry)
    if attr.get("num_samples"):
        entry.notes.append(Said(f"num_samples {attr['num_samples']}: every row of the file is imported (LLaMA-Factory "
                                "samples at training time)", "data.lf_note_num_samples", {"n": attr["num_samples"]}))
    return entry


def _reach(ws: Workspace | None, confined: bool) -> Callable[[str | os.PathLike], Path]:
    """How a path of this import is checked and resolved (the `load_entry` rules)."""
    if ws is None:
        return Path
    if not confined:
        return ws.local

    def visitor(p: str | os.PathLike) -> Path:
        q = Path(p)  # named relative to the workspace when written inside it: messages never show the server's paths
        return ws.resolve(q.relative_to(ws.root) if q.is_absolute() and q.is_relative_to(ws.root) else q)

    return visitor


def _files(folder: Path, file_name: str, name: str, reach: Callable[[str | os.PathLike], Path] = Path) -> list[Path]:
    """The file, or the files of the folder, `file_name` names (relative to the dataset_info.json's folder), each
    checked by `reach`: a link among them leading where the import may not read is refused, never followed."""
    try:
        p = reach(folder / file_name)
        if p.is_dir():
            files = [reach(f) for f in sorted(p.iterdir()) if not f.name.startswith(".") and f.is_file()]
        elif p.is_file():
            files = [p]
        else:
            raise DataError(f"entry '{name}': file_name '{file_name}' not found next to {INFO_FILE}",
                            code="lf_file_not_found", params={"entry": name, "file_name": file_name})
    except LinkOutsideWorkspace as e:
        raise DataError(f"entry '{name}': file_name '{file_name}': {e}", code="lf_link_outside",
                        params={"entry": name, "file_name": file_name, **e.params}) from None
    except PathOutsideWorkspace as e:
        if e.code != "path_outside":  # a NUL byte in the name: worded as such
            raise DataError(f"entry '{name}': file_name '{file_name}': {e}", code=e.code, params=e.params) from None
        raise DataError(f"entry '{name}': file_name '{file_name}': {e}", code="lf_path_outside",
                        params={"entry": name, "file_name": file_name, **e.params}) from None
    reads = "the studio reads .json, .jsonl, .csv and .parquet files (convert .arrow / .txt first)"
    if not files:
        raise DataError(f"entry '{name}': the folder '{file_name}' has no files: {reads}", code="lf_no_files",
                        params={"entry": name, "file_name": file_name})
    bad = [f.name for f in files if f.suffix.lower() not in EXTENSIONS]
    if bad:
        raise DataError(f"entry '{name}': {', '.join(bad)}: {reads}", code="lf_file_type",
                        params={"entry": name, "files": ", ".join(bad)})
    return files


def _refuse_unsupported(entry: LFEntry) -> None:
    if entry.col("kto_tag"):
        raise DataError(f"entry '{entry.name}' is KTO data (kto_tag '{entry.col('kto_tag')}'): the studio holds "
                        "SFT rows and preference pairs, not KTO's desirable / undesirable labels", code="lf_kto",
                        params={"entry": entry.name, "column": entry.col("kto_tag")})
    media = [k for k in MEDIA if entry.col(k)]
    if media:
        raise DataError(f"entry '{entry.name}' has {', '.join(media)}: the studio imports text data only",
                        code="lf_media", params={"entry": entry.name, "media": ", ".join(media)})
    if entry.ranking and not (entry.col("chosen") and entry.col("rejected")):
        raise DataError(f"entry '{entry.name}' has ranking: true but its columns name no chosen and rejected",
                        code="lf_ranking_columns", params={"entry": entry.name})
    if entry.formatting != "alpaca" and not entry.col("messages"):
        raise DataError(f"entry '{entry.name}' ({entry.formatting}) names no messages column", code="lf_no_messages",
                        params={"entry": entry.name, "formatting": entry.formatting})
    if entry.formatting == "alpaca" and not (entry.col("prompt") or entry.col("query")):
        raise DataError(f"entry '{entry.name}' names neither a prompt nor a query column", code="lf_no_prompt",
                        params={"entry": entry.name})


# ------------------------------------------------------------------------------------------------ records -> rows


def lf_rows(record: Any, entry: LFEntry) -> list[dict]:
    """The canonical row of one record, as LLaMA-Factory's converter for the entry reads it (RowInvalid if not)."""
    if not isinstance(record, dict):
        raise RowInvalid(f"expected a JSON object with named fields, got {kind_of(record)}", code="row_not_object",
                         params={"kind": kind_of(record)})
    row = _alpaca(record, entry) if entry.formatting == "alpaca" else _conversation(record, entry)
    extras = {k: v for k, v in record.items() if k not in entry.used() or k == "id"}  # a source id stays the id
    from core.data.formats import _extras

    row.update({k: v for k, v in _extras(extras, set()).items() if k not in row})
    return [row]


def _get(record: dict, entry: LFEntry, key: str) -> Any:
    col = entry.col(key)
    return record.get(col, MISSING) if col else MISSING


def _given(v: Any) -> bool:
    return v is not MISSING and v is not None and v != ""


def _alpaca(record: dict, entry: LFEntry) -> dict:
    ins, inp = _get(record, entry, "prompt"), _get(record, entry, "query")
    parts = []
    if _given(ins):
        parts.append(("instruction", _str(ins, entry.col("prompt") or "prompt")))
    if _given(inp):
        parts.append(("input", _str(inp, entry.col("query") or "query", allow_empty=True, numbers=True)))
    parts = [(k, v) for k, v in parts if v.strip()]
    if not parts:
        cols = " / ".join(c for c in (entry.col("prompt"), entry.col("query")) if c)
        raise RowInvalid(f"no prompt: '{cols}' is missing or empty", code="row_no_prompt", params={"field": cols})
    row: dict[str, Any] = {"instruction": parts[0][1]}
    if len(parts) == 2:
        row["input"] = parts[1][1]
    system = _get(record, entry, "system")
    if _given(system):
        row["system"] = _str(system, entry.col("system") or "system")
    if entry.ranking:
        row["chosen"] = _str(_get(record, entry, "chosen"), entry.col("chosen") or "chosen", allow_empty=True)
        row["rejected"] = _str(_get(record, entry, "rejected"), entry.col("rejected") or "rejected", allow_empty=True)
    else:
        resp = _get(record, entry, "response")
        if _given(resp):
            row["output"] = _str(resp, entry.col("response") or "response", allow_empty=True)
    hist = _get(record, entry, "history")
    if _given(hist) and hist != []:
        row["messages"] = _history_messages(hist, entry.col("history") or "history", row)
    return row


def _conversation(record: dict, entry: LFEntry) -> dict:
    col = entry.col("messages") or "messages"
    msgs = record.get(col, MISSING)
    if msgs is MISSING:
        raise RowInvalid(f"no '{col}' field in this record", code="row_no_field", params={"field": col})
    if not isinstance(msgs, list):
        raise RowInvalid(f"'{col}' must be a list of turns, got {kind_of(msgs)}", code="row_turns_list",
                         params={"field": col, "kind": kind_of(msgs)})
    t = entry.tags
    role_key, content_key = t.get("role_tag"), t.get("content_tag")
    roles = {t.get("user_tag"): "user", t.get("assistant_tag"): "assistant", t.get("system_tag"): "system"}
    tools = {t.get("observation_tag"), t.get("function_tag")} - {None}
    system = None
    turns = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or role_key not in m:
            raise RowInvalid(f"'{col}'[{i}] must be an object with '{role_key}' and '{content_key}'",
                             code="row_turn_object", params={"field": col, "i": i, "role_key": role_key,
                                                             "content_key": content_key})
        role = m[role_key]
        if role in tools:
            raise RowInvalid(f"'{col}'[{i}]: tool calls ({role!r} turns) are not supported", code="row_tool_turn",
                             params={"field": col, "i": i, "role": repr(role)})
        mapped = roles.get(role) if isinstance(role, str) else None
        if mapped is None:
            known = [k for k in roles if k]
            raise RowInvalid(f"'{col}'[{i}]: unknown {role_key} {role!r} (this entry's tags: {', '.join(known)})",
                             code="row_turn_tag", params={"field": col, "i": i, "role_key": role_key,
                                                          "role": repr(role), "tags": ", ".join(known)})
        content = _str(m.get(content_key, MISSING), f"{col}[{i}].{content_key}", allow_empty=True)
        if mapped == "system" and i == 0:
            system = content
            continue
        turns.append({"role": mapped, "content": content})
    for i, turn in enumerate(turns):
        if turn["role"] != ("user" if i % 2 == 0 else "assistant"):
            raise RowInvalid(f"'{col}': turns must alternate user / assistant (turn {i + 1} is {turn['role']})",
                             code="row_alternate", params={"field": col, "n": i + 1, "role": turn["role"]})
    if not turns:
        raise RowInvalid(f"'{col}' has no user turn", code="row_no_user", params={"field": col})
    if system is None and _given(_get(record, entry, "system")):
        system = _str(_get(record, entry, "system"), entry.col("system") or "system")
    if entry.ranking:
        if turns[-1]["role"] != "user":
            raise RowInvalid(f"'{col}' must end with the user's turn; chosen and rejected are the answers to it",
                             code="row_pair_end_user", params={"field": col})
        row = _conversation_row(turns, system)
        row["chosen"] = _answer(record, entry, "chosen")
        row["rejected"] = _answer(record, entry, "rejected")
        return row
    return _conversation_row(turns, system)


def _answer(record: dict, entry: LFEntry, key: str) -> str:
    """A ranking answer: an assistant turn {role_tag, content_tag} (LLaMA-Factory's shape) or plain text."""
    col = entry.col(key) or key
    v = record.get(col, MISSING)
    if isinstance(v, dict):
        role = v.get(entry.tags.get("role_tag"))
        if role != entry.tags.get("assistant_tag"):
            raise RowInvalid(f"'{col}' must be an assistant turn, got role {role!r}", code="row_answer_role",
                             params={"field": col, "role": repr(role)})
        return _str(v.get(entry.tags.get("content_tag"), MISSING), f"{col}.{entry.tags.get('content_tag')}",
                    allow_empty=True)
    return _str(v, col, allow_empty=True)


# ---------------------------------------------------------------------------------------------------------- import


def iter_entry_rows(entry: LFEntry, unused: Counter | None = None) -> Iterator[dict | RowError]:
    """Canonical rows (with ids) of every file of the entry, or a RowError per record that cannot be used."""
    ids = IdAssigner()
    used = entry.used()
    for path in entry.files:
        for rec in iter_records(path):
            if rec.error:
                yield RowError(path.name, rec.line, rec.error, excerpt(rec.value), rec.index)
                continue
            try:
                rows = lf_rows(rec.value, entry)
            except RowInvalid as e:
                yield RowError(path.name, rec.line, of_error(e),
                               excerpt(json.dumps(rec.value, ensure_ascii=False, default=str)), rec.index)
                continue
            if unused is not None:
                unused.update(unused_columns(rec.value, used))
            for row in rows:
                yield with_id_first(ids.assign(row))


def dataset_name(entry_name: str) -> str:
    """A workspace dataset name for an entry name (which may hold spaces or slashes)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", entry_name).strip("-.")[:120] or "llamafactory"


def import_llamafactory(ws: Workspace, info_path: str | os.PathLike, entry_name: str | None = None,
                        name: str | None = None, on_error: Literal["skip", "stop"] = "skip",
                        overwrite: bool = False, *, confined: bool = False):
    """Import entry `entry_name` of a LLaMA-Factory dataset_info.json as workspace dataset `name` (default: the
    entry's name). Returns core.data.store.ImportResult; the entry's notes are in `.notes`. `confined=True` for a web
    visitor (every file inside the workspace or an allowed root); the CLI's local user passes False."""
    from core.data.store import _check_target, check_name, write_import

    entry = load_entry(info_path, entry_name, ws=ws, confined=confined)
    name = check_name(name or dataset_name(entry.name))
    _check_target(ws, name, overwrite)
    unused: Counter = Counter()
    fmt = f"llamafactory-{entry.formatting}" + ("-ranking" if entry.ranking else "")
    label = f"{INFO_FILE}:{entry.name}"
    res = write_import(ws, name, iter_entry_rows(entry, unused), label, fmt,
                       {k: v for k, v in entry.columns.items() if v}, on_error, "import", unused,
                       llamafactory={"entry": entry.name, "files": [f.name for f in entry.files],
                                     "tags": entry.tags if entry.formatting != "alpaca" else {}})
    res.notes = entry.notes
    return res
