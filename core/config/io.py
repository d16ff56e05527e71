"""Reading and writing job configs: studio YAML/JSON, EasyDistill 1.x JSON, secrets kept out of every file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, TypeAdapter, ValidationError

from core import textfile
from core.config.base import JobBase
from core.config.errors import ConfigError, explain
from core.config.registry import KINDS, JobConfig, PipelineJob

_ADAPTER: TypeAdapter = TypeAdapter(JobConfig)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader where PyYAML has it: ~10x faster

# Keys whose values may be files relative to the config file (CLI use). Resolved only when the file exists there,
# so workspace dataset names and hub ids pass through untouched.
PATH_KEYS = {"input", "dataset", "eval_dataset", "logits", "template", "student", "teacher", "source", "base"}
# Keys that name what a job writes: a relative path (one with a folder part, `out/x.jsonl`, `./x.jsonl`) is anchored at
# the config file's folder although it does not exist yet; a bare name stays a workspace dataset/model/cache name.
OUTPUT_KEYS = {"output"}


def parse_config(data: Any, source: str | None = None) -> JobBase:
    """Validate a dict into the job config of its `kind`; every problem is reported at once."""
    if not isinstance(data, dict):
        raise ConfigError([f"a config must be a mapping of settings, got {type(data).__name__}"], source)
    if "kind" not in data:
        raise ConfigError(["'kind' is missing: say which job this is (e.g. kind: train_sft)"], source)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise ConfigError(explain(e, set(KINDS)), source) from None


def read_mapping(path: Path) -> Any:
    """JSON or YAML by content; a syntax error names the file and line, a file that is not UTF-8 text (UTF-16,
    Latin-1, binary) says so instead of a UnicodeDecodeError."""
    text, why = textfile.decode(path.read_bytes())
    if text is None:
        raise ConfigError([f"not UTF-8 text ({why}); {textfile.FIX}"], str(path))
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError([f"not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}"], str(path)) from None
        except RecursionError:
            raise ConfigError(["not usable: nested too deeply"], str(path)) from None
    try:
        return yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError([f"not valid YAML{where}: {getattr(e, 'problem', e)}"], str(path)) from None
    except (ValueError, TypeError, OverflowError) as e:  # a value YAML reads as a date or number that cannot be one
        raise ConfigError([f"not valid YAML: {e}"], str(path)) from None
    except RecursionError:
        raise ConfigError(["not usable: nested too deeply"], str(path)) from None


V1_SECTIONS = ("dataset", "inference", "models", "training", "distillation")


def _missing_kind(data: Any) -> str | None:
    """What to say when a mapping names no job: a 1.x config (it has 1.x sections) lacks `job_type`, a studio
    config lacks `kind`. None when it names one."""
    if not isinstance(data, dict) or "kind" in data or "job_type" in data or isinstance(data.get("pipeline"), list):
        return None
    if any(k in data for k in V1_SECTIONS):
        from core.config.easydistill_v1 import JOB_TYPES

        return ("'job_type' is missing: an EasyDistill 1.x config names its job, e.g. \"job_type\": "
                f"\"kd_black_box_api\" (one of {', '.join(JOB_TYPES)})")
    return ("neither 'kind' (a studio config, e.g. kind: train_sft) nor 'job_type' (an EasyDistill 1.x config, "
            "e.g. job_type: kd_black_box_api) is set: say which job this is")


def load_config_file(path: str | os.PathLike, anchor_paths: bool = True) -> tuple[JobBase, list[str]]:
    """Load a studio config or an EasyDistill 1.x JSON. Returns the config and notes for the user
    (keys not honoured, secrets moved out of the file, ...)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError([f"{p} is a folder; give the config file inside it"])
    if not p.is_file():
        raise ConfigError([f"config file not found: {p}"])
    data = read_mapping(p)
    missing = _missing_kind(data.get("job", data) if isinstance(data, dict) and "preset" in data else data)
    if missing:
        raise ConfigError([missing], str(p))
    notes: list[str] = []
    from core.config.easydistill_v2 import import_v2, is_v2

    if is_v2(data):  # an EasyDistill 2.0 pipeline (it has a job_type too, so this test comes first)
        try:
            data, notes = import_v2(data, base_dir=p.parent)
        except ConfigError as e:
            raise ConfigError(e.problems, str(p)) from None
    elif isinstance(data, dict) and "job_type" in data:
        from core.config.easydistill_v1 import import_v1

        try:
            data, notes = import_v1(data, base_dir=p.parent)
        except ConfigError as e:
            raise ConfigError(e.problems, str(p)) from None
    elif isinstance(data, dict):
        if "preset" in data and "job" in data:  # a preset file: its job is the config
            data = data["job"]
        if anchor_paths:
            data = _anchor(data, p.parent)
    return parse_config(data, str(p)), notes


def _anchor(obj: Any, base: Path) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in PATH_KEYS and isinstance(v, str) and v and not os.path.isabs(v) and (base / v).exists():
                out[k] = str((base / v).resolve())
            elif k in OUTPUT_KEYS and isinstance(v, str) and not os.path.isabs(v) and ("/" in v or v.startswith(".")):
                out[k] = os.path.abspath(base / os.path.expanduser(v))  # links are checked when the job runs
            else:
                out[k] = _anchor(v, base)
        return out
    if isinstance(obj, list):
        return [_anchor(v, base) for v in obj]
    return obj


def to_dict(config: JobBase, keep_defaults: bool = True) -> dict:
    """A plain dict for YAML/JSON: literal secrets are dropped (never written), env-var names stay."""
    data = config.model_dump(mode="python", exclude_defaults=not keep_defaults)
    data = {"kind": config.kind, **data}  # the kind is a default of its class, but a file must say it
    if isinstance(config, PipelineJob):
        data["steps"] = [{"name": s.name, "job": to_dict(s.job, keep_defaults)} for s in config.steps]
    return _drop_secrets(data)


def _drop_secrets(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_secrets(v) for k, v in obj.items() if not isinstance(v, SecretStr) and k != "api_key"}
    if isinstance(obj, list):
        return [_drop_secrets(v) for v in obj]
    if isinstance(obj, tuple):
        return [_drop_secrets(v) for v in obj]
    return obj


def dump_yaml(config: JobBase, keep_defaults: bool = False) -> str:
    return yaml.safe_dump(to_dict(config, keep_defaults), sort_keys=False, allow_unicode=True)


def externalize_secrets(config: JobBase) -> tuple[JobBase, dict[str, str]]:
    """Move literal API keys into environment variables for the worker process.

    The returned config references `api_key_env` only (safe to write to the run folder); the dict is the
    environment the worker needs. This is how an EasyDistill config with an inline key still runs.
    """
    env: dict[str, str] = {}
    data = config.model_dump(mode="python")

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, dict):
            key = obj.get("api_key")
            if isinstance(key, SecretStr) and key.get_secret_value():
                name = "EDS_SECRET_" + (re.sub(r"[^A-Z0-9]", "_", path.upper()) or "KEY")
                env[name] = key.get_secret_value()
                obj = {**obj, "api_key": None, "api_key_env": obj.get("api_key_env") or name}
            return {k: walk(v, f"{path}_{k}" if path else k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, f"{path}_{i}") for i, v in enumerate(obj)]
        return obj

    clean = walk(data, "")
    return type(config).model_validate(clean), env
