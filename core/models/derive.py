"""Derive a student from a teacher by keeping some of its decoder layers (REFERENCE.md §7).

Which layers matters more than how many: the last layers carry the most, and a contiguous head + tail block beats
even spacing. The student keeps the embeddings, final norm and head; kept attention modules get their `layer_idx`
renumbered (the KV cache indexes by it) and the config its new `num_hidden_layers`. Right after deriving, the student's
cross-entropy and KL to the teacher on a few held-out teacher answers show what pruning cost before any training.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.llm.base import BackendError
from core.said import Said, said_fields

STRATEGIES = ("head_tail", "even", "first")
DERIVED_FILE = "derived_from.json"
REPORT_FILE = "derive_report.json"  # in the derive job's output folder
EVAL_CACHE = ".derive_eval_answers.json"
# Held-out prompts for the before-training check (short: the teacher answers them greedily on a CPU).
EVAL_PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Explain what a neural network is in one paragraph.",
    "Write a short poem about the sea.",
    "How do I reverse a list in Python?",
    "What is 12 times 7? Explain the steps.",
]


@dataclass
class DeriveReport:
    teacher: str
    output: str
    strategy: str
    kept_layers: list[int]
    teacher_layers: int
    params_before: int
    params_after: int
    teacher_ce: float | None = None  # the teacher's CE on its own answers (the floor)
    student_ce: float | None = None  # student CE on the teacher's answers, before training
    student_kl: float | None = None  # KL(teacher || student) per answer token
    eval_tokens: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    vocab_size: int | None = None

    def summary(self) -> str:
        s = (f"kept {len(self.kept_layers)}/{self.teacher_layers} layers {self.kept_layers} ({self.strategy}); "
             f"parameters {self.params_before / 1e6:.1f}M -> {self.params_after / 1e6:.1f}M")
        if self.student_ce is not None:
            s += (f"; before training, on {self.eval_tokens} held-out answer tokens: student CE {self.student_ce:.2f}"
                  f" / KL to teacher {self.student_kl:.2f} (teacher's own CE {self.teacher_ce:.2f}")
            s += f", uniform guess {math.log(self.vocab_size):.1f})" if self.vocab_size else ")"
        return s


def select_layers(total: int, keep: int, strategy: str = "head_tail") -> list[int]:
    """Indices of the teacher layers the student keeps."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")
    if not 1 <= keep <= total:
        raise ValueError(f"layers must be between 1 and the teacher's {total} layers, got {keep}")
    if strategy == "first":
        return list(range(keep))
    if strategy == "even":
        if keep == 1:
            return [total - 1]
        return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})
    head = keep // 2
    return list(range(head)) + list(range(total - (keep - head), total))


def estimate_params(folder: Path, keep: list[int]) -> tuple[int, int]:
    """(teacher params, student params) from safetensors headers, without loading weights or torch."""
    from core.models.registry import safetensors_header

    layer_re = re.compile(r"(?:^|\.)(?:layers|h)\.(\d+)\.")
    total = kept = 0
    for f in sorted(Path(folder).glob("*.safetensors")):
        for name, meta in safetensors_header(f).items():
            if name == "__metadata__":
                continue
            n = math.prod(meta["shape"])
            total += n
            m = layer_re.search(name)
            if m is None or int(m.group(1)) in keep:
                kept += n
    return total, kept


def decoder_layers(model):
    """The ModuleList of decoder blocks, wherever this architecture keeps it."""
    paths = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers", "model.language_model.layers")
    for path in paths:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj, path
    raise BackendError(f"layer pruning does not know where {type(model).__name__} keeps its decoder layers")


def prune_layers(model, keep: list[int]) -> None:
    """Keep only `keep` layers in place, renumbering layer_idx and updating the config."""
    import torch

    layers, path = decoder_layers(model)
    kept = torch.nn.ModuleList([layers[i] for i in keep])
    for new_idx, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
    parent = model
    for part in path.split(".")[:-1]:
        parent = getattr(parent, part)
    setattr(parent, path.split(".")[-1], kept)
    cfg = getattr(model.config, "text_config", None) or model.config
    cfg.num_hidden_layers = len(keep)
    for attr in ("layer_types",):
        values = getattr(cfg, attr, None)
        if isinstance(values, list) and len(values) == len(layers):
            setattr(cfg, attr, [values[i] for i in keep])
    if getattr(cfg, "max_window_layers", None) is not None:
        cfg.max_window_layers = min(cfg.max_window_layers, len(keep))


def count_params(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def teacher_answers(backend, prompts: list[str], max_new_tokens: int = 48) -> list[list[dict]]:
    """The teacher's greedy answers, cached in the teacher folder (deriving again from it skips the generation)."""
    from core.llm.base import SamplingParams

    key = hashlib.sha256(json.dumps([prompts, max_new_tokens]).encode()).hexdigest()[:16]
    cache = Path(backend.path) / EVAL_CACHE
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["conversations"]
    except (OSError, ValueError):
        pass
    convs = [[{"role": "user", "content": p}] for p in prompts]
    outs = backend.chat(convs, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    result = [c + [{"role": "assistant", "content": o.text}] for c, o in zip(convs, outs, strict=True)
              if o.text.strip()]
    try:
        cache.write_text(json.dumps({"key": key, "conversations": result}))
    except OSError:
        pass  # a read-only teacher folder: no cache
    return result


def ce_kl(teacher_backend, student_model, conversations: list[list[dict]]) -> tuple[float, float, float, int]:
    """(teacher CE, student CE, KL(teacher||student)) per response token, and the number of tokens."""
    import torch

    t_ce = s_ce = kl = 0.0
    n = 0
    for conv in conversations:
        ids, start, end = teacher_backend.response_span(conv)
        if end <= start:
            continue
        x = torch.tensor([ids], device=teacher_backend.device)
        with torch.inference_mode():
            t = torch.log_softmax(teacher_backend.model(input_ids=x).logits[0, start - 1:end - 1].float(), -1)
            s_logits = student_model(input_ids=x.to(student_model.device)).logits[0, start - 1:end - 1].float()
            s = torch.log_softmax(s_logits.to(t.device), -1)
        target = x[0, start:end]
        t_ce -= float(t.gather(-1, target[:, None]).sum())
        s_ce -= float(s.gather(-1, target[:, None]).sum())
        kl += float((t.exp() * (t - s)).sum())
        n += end - start
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    return t_ce / n, s_ce / n, kl / n, n


def derive_student(
    teacher: str | Path,
    output_dir: str | Path,
    layers: int,
    strategy: str = "head_tail",
    evaluate: bool = True,
    prompts: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> DeriveReport:
    """Load the teacher, keep `layers` of its decoder layers, save the student; measure CE/KL before training."""
    import torch

    from core.llm.hf_local import HFLocalBackend

    say = progress or (lambda msg: None)
    teacher, output_dir = Path(teacher), Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise BackendError(f"'{output_dir}' already exists: choose another name or remove it first")
    t0 = time.monotonic()
    say(Said(f"loading teacher {teacher}", "models.event_loading", {"teacher": teacher.name}))
    backend = HFLocalBackend(teacher, dtype="auto", device="cpu", batch_size=8)
    tmodel = backend.model
    total = (getattr(tmodel.config, "text_config", None) or tmodel.config).num_hidden_layers
    keep = select_layers(total, layers, strategy)
    before = count_params(tmodel)
    # the student: a copy of the teacher with layers dropped (the teacher stays whole for the CE/KL check)
    student = copy.deepcopy(tmodel)
    prune_layers(student, keep)
    after = count_params(student)
    report = DeriveReport(teacher=str(teacher), output=str(output_dir), strategy=strategy, kept_layers=keep,
                          teacher_layers=total, params_before=before, params_after=after,
                          vocab_size=tmodel.get_output_embeddings().weight.shape[0])
    say(Said(f"kept layers {keep} of {total}; parameters {before:,} -> {after:,}", "models.event_kept",
             {"kept": keep, "total": total, "before": f"{before:,}", "after": f"{after:,}"}))
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-derive")  # hidden from the registry while written
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(tmp, safe_serialization=True)
    backend.tokenizer.save_pretrained(tmp)
    for extra in ("chat_template.jinja", "chat_template.json"):  # keep the teacher's template file verbatim
        if (teacher / extra).exists():
            shutil.copy2(teacher / extra, tmp / extra)
    if evaluate:
        say(Said("measuring what pruning cost: the teacher answers held-out prompts, the student is scored on them",
                 "models.event_measuring"))
        convs = teacher_answers(backend, prompts or EVAL_PROMPTS)
        student.eval()
        with torch.inference_mode():
            t_ce, s_ce, kl, n = ce_kl(backend, student, convs)
        report.teacher_ce, report.student_ce, report.student_kl, report.eval_tokens = (
            round(t_ce, 3), round(s_ce, 3), round(kl, 3), n)
        say(Said(f"before training: student CE {s_ce:.2f} / KL {kl:.2f} (teacher's own CE {t_ce:.2f}) on {n} tokens",
                 "models.event_measured", {"ce": f"{s_ce:.2f}", "kl": f"{kl:.2f}", "teacher_ce": f"{t_ce:.2f}",
                                           "n": n}))
    report.seconds = round(time.monotonic() - t0, 1)
    (tmp / DERIVED_FILE).write_text(json.dumps(asdict(report), indent=2))
    if output_dir.exists():
        shutil.rmtree(output_dir)
    tmp.rename(output_dir)
    backend.close()
    return report


def read_derived(folder: Path) -> dict | None:
    p = Path(folder) / DERIVED_FILE
    return json.loads(p.read_text()) if p.exists() else None


def read_report(run_dir: str | Path) -> DeriveReport | None:
    """The report a finished derive job left in its run folder (None when it has none: failed, or another kind)."""
    p = Path(run_dir) / "output" / REPORT_FILE
    try:
        return DeriveReport(**json.loads(p.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def run(config, ctx) -> None:
    """DeriveJob entry: the student lands in workspace/models/<output>; the report in the run's output folder."""
    from core.models.registry import resolve_model

    teacher = resolve_model(config.teacher, ctx.workspace)
    out = ctx.workspace.inside(ctx.workspace.models / config.output)  # not through a link leading out
    step = [0]

    def say(msg: str) -> None:
        step[0] += 1
        ctx.event(msg, **said_fields(msg))
        ctx.progress(min(step[0], 3), 4)

    report = derive_student(teacher, out, config.layers, config.strategy, progress=say)
    (ctx.output_dir / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
    ctx.progress(4, 4, params_before=report.params_before, params_after=report.params_after,
                 student_ce=report.student_ce, student_kl=report.student_kl)
