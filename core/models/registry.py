"""What models exist and what they are, without importing torch.

Models are folders under `workspace/models/`, extra local folders, hub ids (Hugging Face or ModelScope snapshots) and
remote OpenAI-compatible endpoints kept in `workspace/endpoints.json`. Facts come from config.json, tokenizer files
and safetensors headers, so listing a workspace of 7B checkpoints costs milliseconds and never touches a GPU.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.endpoints import (  # noqa: F401 - re-exported: the endpoint registry lives below core.forms
    ENDPOINTS_FILE,
    EndpointEntry,
    endpoints_path,
    load_endpoints,
    remove_endpoint,
    save_endpoint,
)
from core.llm.base import BackendError
from core.modelpath import (  # noqa: F401 - re-exported: name -> folder resolution lives below core.llm
    HUB_ID,
    has_chat_template,
    hub_snapshot,
    read_json,
    require_chat_template,
    resolve_model,
)
from core.workspace import Workspace

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass
class ModelInfo:
    """One row of the models table (and `easydistill models list --json`)."""

    name: str
    source: str  # workspace | path | hub | endpoint
    path: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    params: int | None = None
    dtype: str | None = None
    vocab_size: int | None = None  # rows of the output head (config.json)
    tokenizer_size: int | None = None  # tokens the tokenizer knows (<= vocab_size when the head is padded)
    num_layers: int | None = None
    hidden_size: int | None = None
    chat_template: bool | None = None
    disk_bytes: int | None = None
    is_adapter: bool = False
    head: str | None = None  # "reward": a scoring head (a train_reward output), not a chat model; None: a causal LM
    base_url: str | None = None
    api_key_env: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# How a KD job distils between two models (Compatibility.method).
KD_LOGITS = "logits"  # same tokenizer, same output head: top-k logit KD
KD_TRUNCATE = "truncate"  # same tokenizer, heads padded to different sizes: logit KD on the first n logits
KD_ULD = "uld"  # different tokenizers: cross-tokenizer KD (TRL GOLD, ULD loss), the teacher live in the job


@dataclass
class Compatibility:
    """`ok`: the student can learn from the teacher's own logits (a logit cache, capture, on-policy KD). `method`: what
    a `train_kd` job between them does (KD_LOGITS / KD_TRUNCATE / KD_ULD; "" = nothing, the models are broken)."""

    ok: bool
    message: str
    details: dict = field(default_factory=dict)
    method: str = ""
    code: str = ""  # the verdict for the studio to word (`models.compat_<code>` with `params`); message: English
    params: dict = field(default_factory=dict)


# ---------------------------------------------------------------- reading a folder


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file: tensor names -> dtype, shape, offsets (8-byte length + JSON)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100_000_000:
            raise BackendError(f"{path}: not a safetensors file (header length {n})")
        return json.loads(f.read(n))


def weight_stats(folder: Path) -> tuple[int | None, str | None]:
    """Parameter count and dominant dtype from safetensors headers (tied weights are stored once, counted once)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None, None
    total, by_dtype = 0, {}
    for f in files:
        for name, meta in safetensors_header(f).items():
            if name == "__metadata__":
                continue
            n = 1
            for d in meta["shape"]:
                n *= d
            total += n
            by_dtype[meta["dtype"]] = by_dtype.get(meta["dtype"], 0) + n
    dominant = max(by_dtype, key=by_dtype.get) if by_dtype else None
    return total, {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}.get(dominant, dominant)


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _text_config(cfg: dict) -> dict:
    """Multimodal configs keep the language model's shape under text_config."""
    return cfg.get("text_config") or cfg


def tokenizer_vocab(folder: Path) -> dict[str, int] | None:
    """token -> id from tokenizer.json (model vocab + added tokens); None when the folder has no tokenizer.json."""
    data = read_json(folder / "tokenizer.json")
    if not data:
        vocab = read_json(folder / "vocab.json")
        return vocab or None
    model_vocab = data.get("model", {}).get("vocab", {})
    if isinstance(model_vocab, list):  # Unigram: [[piece, score], ...]
        vocab = {piece: i for i, (piece, _score) in enumerate(model_vocab)}
    else:
        vocab = dict(model_vocab)
    for t in data.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
    return vocab


def special_tokens(folder: Path) -> dict[str, str | None]:
    cfg = read_json(folder / "tokenizer_config.json")
    special_map = read_json(folder / "special_tokens_map.json")
    out = {}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        v = cfg.get(key, special_map.get(key))
        out[key] = v.get("content") if isinstance(v, dict) else v
    return out


def model_head(folder: Path, architecture: str | None) -> str | None:
    """What the model's output is, when it is not a causal LM's next token: "reward" for a scoring head — written by
    a train_reward job in eds_model.json, or any one-label `*ForSequenceClassification` (a reward model trained
    elsewhere). Such a model cannot chat, generate or be a student."""
    head = read_json(folder / "eds_model.json").get("head")
    if head:
        return str(head)
    if architecture and architecture.endswith("ForSequenceClassification"):
        cfg = read_json(folder / "config.json")
        labels = len(cfg["id2label"]) if cfg.get("id2label") else cfg.get("num_labels", 2)
        return "reward" if labels == 1 else "classifier"
    return None


def inspect_model_dir(folder: Path, name: str | None = None, source: str = "path") -> ModelInfo:
    """Facts about one local model folder; `error` says what is wrong instead of raising."""
    folder = Path(folder)
    info = ModelInfo(name=name or folder.name, source=source, path=str(folder))
    if not folder.is_dir():
        info.error = f"{folder} is not a folder"
        return info
    try:
        adapter = read_json(folder / "adapter_config.json")
        cfg = read_json(folder / "config.json")
        if adapter and not cfg:
            info.is_adapter = True
            info.architecture = f"LoRA adapter of {adapter.get('base_model_name_or_path', '?')}"
        elif not cfg:
            info.error = "no config.json: not a transformers model folder"
        else:
            text = _text_config(cfg)
            archs = cfg.get("architectures") or []
            info.architecture = archs[0] if archs else None
            info.model_type = cfg.get("model_type")
            info.vocab_size = text.get("vocab_size")
            info.num_layers = text.get("num_hidden_layers")
            info.hidden_size = text.get("hidden_size")
            info.dtype = cfg.get("dtype") or cfg.get("torch_dtype") or text.get("dtype")
            info.head = model_head(folder, info.architecture)
        params, dtype = weight_stats(folder)
        info.params = params
        info.dtype = dtype or info.dtype
        vocab = tokenizer_vocab(folder)
        info.tokenizer_size = (max(vocab.values()) + 1) if vocab else None
        info.chat_template = has_chat_template(folder)
        info.disk_bytes = disk_size(folder)
    except (OSError, BackendError, ValueError, KeyError, TypeError) as e:
        info.error = f"{type(e).__name__}: {e}"
    return info


def probe_endpoint(entry: EndpointEntry, timeout_s: float = 5.0) -> list[str]:
    """The models an endpoint serves right now: a quick reachability + key check (BackendError says why not)."""
    from core.config.base import EndpointSpec
    from core.llm.openai_http import OpenAIBackend

    backend = OpenAIBackend(EndpointSpec(base_url=entry.base_url, model=entry.model, api_key_env=entry.api_key_env,
                                         max_retries=0, timeout_s=timeout_s, concurrency=1))
    try:
        return backend.served_models()
    finally:
        backend.close()


# ---------------------------------------------------------------- listing


def list_models(ws: Workspace, extra_paths: Iterable[str] = (), hub_ids: Iterable[str] = ()) -> list[ModelInfo]:
    """Every model the studio can offer: workspace folders, extra folders, cached hub ids and endpoints."""
    out: list[ModelInfo] = []
    if ws.models.is_dir():
        for d in sorted(ws.models.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            if not ws.contains(d):  # a link leading out of the workspace: listed with why, never read
                out.append(ModelInfo(name=d.name, source="workspace", error=f"models/{d.name} is a link that leads "
                                     "outside the workspace; allow its folder with --allow-root to use it"))
                continue
            out.append(inspect_model_dir(d, d.name, "workspace"))
    for p in extra_paths:
        out.append(inspect_model_dir(Path(p).expanduser(), str(p), "path"))
    for hid in hub_ids:
        try:
            out.append(inspect_model_dir(resolve_model(hid), hid, "hub"))
        except BackendError as e:
            out.append(ModelInfo(name=hid, source="hub", error=str(e)))
    for e in load_endpoints(ws):
        out.append(ModelInfo(name=e.name, source="endpoint", base_url=e.base_url, architecture=e.model or "(served)",
                             api_key_env=e.api_key_env))
    return out


def human_params(n: int | None) -> str:
    if not n:
        return ""
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}" if n < div * 100 else f"{n / div:.0f}{unit}"
    return str(n)


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


# ---------------------------------------------------------------- teacher/student compatibility


ULD_NOTE = ("a KD job distils across tokenizers (TRL GOLD trainer, ULD loss: the teacher runs in the job, no logit "
            "cache); capture and on-policy KD need a shared tokenizer, or use black-box KD (SFT on the teacher's "
            "answers).")


def check_logit_kd(teacher: Path, student: Path) -> Compatibility:
    """Can the student learn from the teacher's logits, and how does a KD job distil? Same tokens with the same ids
    and special tokens: logit KD; output heads that differ only by padding rows (Qwen pads to a multiple of 64/128):
    logit KD on the first n logits (truncation); different tokenizers: cross-tokenizer KD (ULD)."""
    teacher, student = Path(teacher), Path(student)
    tv, sv = tokenizer_vocab(teacher), tokenizer_vocab(student)
    if tv is None or sv is None:
        tv, sv = _vocab_via_transformers(teacher), _vocab_via_transformers(student)
    t_head = _text_config(read_json(teacher / "config.json")).get("vocab_size")
    s_head = _text_config(read_json(student / "config.json")).get("vocab_size")
    details = {"teacher_tokens": len(tv), "student_tokens": len(sv), "teacher_head": t_head, "student_head": s_head}
    if tv != sv:
        only_t = sorted(set(tv) - set(sv), key=tv.get)[:5]
        moved = [t for t in tv if t in sv and tv[t] != sv[t]]
        diff = f"{len(set(tv) ^ set(sv))} tokens differ" + (f", e.g. {only_t}" if only_t else "")
        if moved:
            diff += f"; {len(moved)} shared tokens have different ids, e.g. {moved[:5]}"
        return Compatibility(False, f"teacher and student tokenizers differ ({diff}): {ULD_NOTE}", details, KD_ULD,
                             "tokenizers_differ", {"n": len(set(tv) ^ set(sv)), "moved": len(moved)})
    ts, ss = special_tokens(teacher), special_tokens(student)
    diff_specials = {k: (ts[k], ss[k]) for k in ts if ts[k] != ss[k] and k in ("eos_token", "bos_token")}
    if diff_specials:
        return Compatibility(False, f"special tokens differ {diff_specials}: logit KD would teach the teacher's; "
                                    f"{ULD_NOTE} Or give both models the same tokenizer files.", details, KD_ULD,
                             "specials_differ", {"tokens": ", ".join(diff_specials)})
    n_tok = max(tv.values()) + 1
    for who, head in (("teacher", t_head), ("student", s_head)):
        if head is not None and head < n_tok:
            return Compatibility(False, f"the {who}'s output head has {head} rows but the tokenizer has {n_tok} "
                                        "tokens: the model does not match its tokenizer.", details, "",
                                 f"head_too_small_{who}", {"head": head, "n": n_tok})
    if t_head != s_head:
        return Compatibility(True, f"same tokenizer ({n_tok} tokens); output heads differ only by padding "
                                   f"({t_head} vs {s_head}): logit KD on the first {n_tok} logits (truncation).",
                             details, KD_TRUNCATE, "truncate", {"n": n_tok, "teacher": t_head, "student": s_head})
    return Compatibility(True, f"same tokenizer ({n_tok} tokens) and output head size: logit KD works.", details,
                         KD_LOGITS, "same", {"n": n_tok})


def _vocab_via_transformers(folder: Path) -> dict[str, int]:
    from transformers import AutoTokenizer  # only for folders without tokenizer.json (rare: slow tokenizers)

    return dict(AutoTokenizer.from_pretrained(folder).get_vocab())
