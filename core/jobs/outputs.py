"""What a job writes and what it reads, as resolved paths, so that two jobs never write one output at once and a
job that reads what another queued or running job is still writing waits for it (never uses a partial file).

`writes(config, ws)`: the files and folders the job creates or appends to outside its run folder (a dataset with its
rejects file, a logit cache, a model folder). Each room's own naming rule decides (the default `<input>-<operator>`
of synthesis, a capture's cache name, ...): the rule is looked up by module name, as a job's ENTRY is, because those
rooms build on `core.jobs` and not the other way round. An output the rule refuses (a bad name) is left out here:
the job reports it itself when it runs.

`reads(config, ws)`: every path a dataset, model or cache field of the config could name. Over-approximate on
purpose: a candidate that no active job writes costs nothing.

A pipeline writes what its steps write, and reads what its steps read that no earlier step of its own writes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.errors import UserError
from core.workspace import Workspace

# `<input>-<suffix>` default output of the kinds that write through core.synth.job's output_target
_DATA_SUFFIX: dict[str, str | None] = {"synth": None, "judge": "judge", "curate": "curated", "pairs": "pairs",
                                       "crv": "crv"}
_MODEL_OUTPUT = ("train_sft", "train_kd", "train_onpolicy", "train_dpo", "train_reward", "train_grpo", "export",
                 "derive")
READ_KEYS = {"input", "dataset", "eval_dataset", "student", "teacher", "teachers", "logits", "rejected_from",
             "reference", "reward_model", "source", "base", "model", "tokenizer"}
_DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def _room(module: str) -> Any:
    return importlib.import_module(module)


def key(path: str | os.PathLike) -> str:
    """A path as compared between jobs: absolute, every link followed (two names for one file are one file)."""
    return os.path.realpath(os.path.expanduser(path))


def overlaps(a: str, b: str) -> bool:
    """Whether two keys name the same file or one lies inside the other (a model folder and a file in it)."""
    return a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep)


def _steps(config: Any) -> list[Any]:
    return [s.job for s in getattr(config, "steps", [])] if getattr(config, "kind", "") == "pipeline" else [config]


def _writes_one(config: Any, ws: Workspace) -> list[Path]:
    kind = config.kind
    if kind in _DATA_SUFFIX:
        target = _room("core.synth.job").output_target(ws, config, _DATA_SUFFIX[kind])
        out = [target.rows, target.rejects, target.json_path]
        if kind == "judge":
            out.append(target.rows.with_name(target.rows.stem + ".judge.ndjson"))
        return [p for p in out if p is not None]
    if kind == "capture":
        capture = _room("core.train.capture")
        return [capture.cache_folder(SimpleNamespace(workspace=ws), capture.cache_name(config))]
    if kind in _MODEL_OUTPUT and getattr(config, "output", ""):
        return [ws.models / config.output]
    if kind.startswith("data_"):  # split / dedupe / stats / export / balance
        return _room("core.data.job").writes(config, ws)
    if kind == "prepare_demo":
        demo = _room("core.models.demo")
        return [ws.models / demo.TEACHER_NAME, ws.models / demo.STUDENT_NAME]
    return []


def writes(config: Any, ws: Workspace) -> list[str]:
    """Keys of what the job writes outside its run folder (sorted, no repeats)."""
    out: set[str] = set()
    for step in _steps(config):
        try:
            out.update(key(p) for p in _writes_one(step, ws))
        except (UserError, ImportError, AttributeError, ValueError):
            continue  # the job refuses its own output when it runs; nothing to guard here
    return sorted(out)


def _values(data: Any) -> Iterable[str]:
    """String values under READ_KEYS anywhere in a config's dict (nested backends, lists of names)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in READ_KEYS and isinstance(v, str) and v.strip():
                yield v.strip()
            elif k in READ_KEYS and isinstance(v, list):
                yield from (x.strip() for x in v if isinstance(x, str) and x.strip())
            else:
                yield from _values(v)
    elif isinstance(data, list):
        for v in data:
            yield from _values(v)


def _candidates(value: str, ws: Workspace) -> list[Path]:
    if "/" in value or os.sep in value or value.startswith((".", "~")):
        p = Path(value).expanduser()
        return [p if p.is_absolute() else ws.root / p]
    out = [ws.models / value, ws.cache / value]
    stem = value
    for suffix in _DATASET_SUFFIXES:
        stem = stem.removesuffix(suffix)
    out += [ws.datasets / f"{stem}.jsonl", ws.datasets / f"{stem}.json", ws.datasets / value]
    return out


def reads(config: Any, ws: Workspace) -> list[str]:
    """Keys of every file or folder the job may read that another job could be writing."""
    from core.config.io import to_dict

    own: set[str] = set()
    out: set[str] = set()
    for step in _steps(config):
        try:
            data = to_dict(step)
        except (ValueError, TypeError):
            continue
        for value in _values(data):
            for p in _candidates(value, ws):
                k = key(p)
                if not any(overlaps(k, w) for w in own):  # an earlier step of this pipeline writes it: not a wait
                    out.add(k)
        own.update(writes(step, ws))
    return sorted(out)


def conflicts(mine: Iterable[str], theirs: Iterable[str]) -> str | None:
    """The first of `mine` that overlaps one of `theirs` (None: no overlap)."""
    theirs = list(theirs)
    return next((m for m in mine if any(overlaps(m, t) for t in theirs)), None)
