"""Export a trained model into workspace/models/<name>: merge a LoRA adapter into its base, or re-save a checkpoint.

Why a separate step: a LoRA adapter alone cannot be served by vLLM's simplest path nor picked as a teacher; a merged
folder with tokenizer and chat template is a model like any other, listed by the registry, usable in Chat and as the
next teacher or student. Training jobs call `merge_adapter` at their end; the `export` job does it for any run,
checkpoint or adapter folder (e.g. a checkpoint saved by Stop).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from core.config.train import ExportJob
from core.errors import UserError
from core.jobs.context import JobContext

PROVENANCE = "eds_model.json"


class ExportError(UserError, ValueError):
    """The source cannot be exported as asked; the message says what to give instead."""


def is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file()


def is_full_model(folder: Path) -> bool:
    weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    return (folder / "config.json").is_file() and weights


def find_source(ctx: JobContext, ref: str) -> Path:
    """A run id, a run's output folder, a checkpoint, an adapter or a model folder -> the folder to export."""
    ws = ctx.workspace
    candidates = [ws.runs / ref / "output", ws.root / ref, Path(ref).expanduser()]
    for base in candidates:
        if not base.is_dir():
            continue
        base = base.resolve()
        if is_adapter(base) or is_full_model(base):
            return base
        for sub in (base / "adapter", *(p for p in base.glob("*/adapter"))):
            if is_adapter(sub):
                return sub
        ckpts = sorted(base.rglob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1]
                       .isdigit() else -1)
        if ckpts:
            return ckpts[-1]
    raise ExportError(
        f"source: '{ref}' is not a run, checkpoint, LoRA adapter or model folder (no adapter_config.json or "
        "config.json found)"
    )


def _base_of(adapter_dir: Path) -> str:
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ExportError(f"{adapter_dir}/adapter_config.json names no base model; set `base`")
    return str(base)


def merge_adapter(adapter_dir: Path, base: str | Path, out_dir: Path) -> Path:
    """Load base + adapter in fp32, merge the LoRA weights into the base, save model + tokenizer + chat template."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else Path(base)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_src))
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def resave_model(src: Path, out_dir: Path) -> Path:
    """A full checkpoint -> a clean model folder (weights, config, generation config, tokenizer; no optimizer state)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(src))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok_src = src if (src / "tokenizer_config.json").is_file() else src.parent.parent
    AutoTokenizer.from_pretrained(str(tok_src)).save_pretrained(str(out_dir))
    return out_dir


def run(config: ExportJob, ctx: JobContext) -> None:
    from core.models.registry import resolve_model

    name = config.output.strip()
    if not name or "/" in name or name.startswith("."):
        raise ExportError(f"output: '{config.output}' is not a model name (letters, digits, '-', '_', '.')")
    source = find_source(ctx, config.source)
    target = ctx.workspace.inside(ctx.workspace.models / name)  # not through a link leading out
    if target.exists() and any(target.iterdir()):
        raise ExportError(f"output: workspace/models/{name} already exists; choose another name or delete it")
    ctx.progress(0, 2, phase="load")
    tmp = target.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if is_adapter(source):
            base = str(resolve_model(config.base, ctx.workspace)) if config.base else _base_of(source)
            ctx.event(f"merging adapter {source} into {base}")
            merge_adapter(source, base, tmp)
            kind = "lora-merge"
        else:
            base = None
            ctx.event(f"re-saving {source}")
            resave_model(source, tmp)
            kind = "checkpoint"
        (tmp / PROVENANCE).write_text(json.dumps({
            "created": time.time(), "job_id": ctx.job_id, "method": "export", "export": kind, "source": str(source),
            "base": base,
        }, indent=2), encoding="utf-8")
        if target.exists():
            target.rmdir()
        tmp.rename(target)  # atomic: a crash never leaves a half model under its name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ctx.progress(2, 2, phase="done")
    ctx.event(f"model exported to workspace/models/{name}", model=name, path=str(target))
