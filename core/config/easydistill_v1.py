"""Import of EasyDistill 1.x JSON job configs (REFERENCE §1) into studio job configs.

Every 1.x `job_type` maps to one job or a pipeline of jobs. Type problems are reported with the 1.x key names the
user wrote; keys we do not honour come back as notes, by name, instead of failing deep inside a trainer. An inline
`api_key` is carried as a secret (never printed or written) and the user is told to move it to an env var.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config.data_jobs import SynthJob
from core.config.errors import ConfigError

SYNTH_OPERATORS = {
    "instruction_expansion": "expand",
    "instruction_refinement": "refine",
    "instruction_response_extraction": "extract",
    "cot_generation": "cot_generate",
    "cot_long2short": "long2short",
    "cot_short2long": "short2long",
}
JOB_TYPES = sorted(
    [
        "kd_black_box_local", "kd_black_box_api", "kd_white_box", "kd_black_box_train_only",
        "kd_white_box_train_only", "rank_dpo_local", "rank_dpo_api", "rl_reward_local", "rl_reward_api", "rl_grpo",
        "rl_ppo", "cot_eval_api", "instruct_eval_api",
    ]
    + [f"{op}_{mode}" for op in SYNTH_OPERATORS for mode in ("api", "batch")]
)

# 1.x key -> (studio key, converter). Keys in no table are reported as not honoured. A converter raises ValueError
# for a value of the wrong kind; `_WORDS` says what was expected in the words of the person who wrote the file.


def _NUM(v: Any) -> float:  # noqa: N802 - named like the type it converts to
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError
    out = float(v)
    if out != out or out in (float("inf"), float("-inf")):
        raise ValueError
    return out


def _INT(v: Any) -> int:  # noqa: N802
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError
    if isinstance(v, str):
        v = v.strip()
        return int(v) if v.lstrip("+-").isdigit() else _INT(_NUM(v))
    if isinstance(v, float) and not v.is_integer():
        raise ValueError  # 3.7 steps is not silently 3
    return int(v)


def _TEXT(v: Any) -> str:  # noqa: N802
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError
    return str(v)


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.lower() in ("true", "1", "yes")
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ValueError("expected true or false")


_WORDS = {_NUM: "a number", _INT: "a whole number", _TEXT: "text", _bool: "true or false", str: "text"}


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(v), repr(v))


TRAINING_KEYS: dict[str, tuple[str, Callable]] = {
    "num_train_epochs": ("num_train_epochs", _NUM),
    "max_steps": ("max_steps", _INT),
    "per_device_train_batch_size": ("per_device_train_batch_size", _INT),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", _INT),
    "learning_rate": ("learning_rate", _NUM),
    "weight_decay": ("weight_decay", _NUM),
    "warmup_ratio": ("warmup_ratio", _NUM),
    "lr_scheduler_type": ("lr_scheduler_type", str),
    "max_length": ("max_length", _INT),
    "save_steps": ("save_steps", _INT),
    "logging_steps": ("logging_steps", _INT),
    "eval_steps": ("eval_steps", _INT),
    "seed": ("seed", _INT),
    "gradient_checkpointing": ("gradient_checkpointing", _bool),
}
INFERENCE_SAMPLING = {"temperature": _NUM, "max_new_tokens": _INT, "seed": _INT, "top_p": _NUM, "top_k": _INT}
INFERENCE_VLLM = {
    "gpu_memory_utilization": _NUM, "max_model_len": _INT, "enforce_eager": _bool, "enable_chunked_prefill": _bool,
}


MISSING_PATH = "labeled.json"  # stands in for a required path that is missing (already a problem) so naming goes on


class _Importer:
    def __init__(self, cfg: dict, base_dir: Path, local_backend: str):
        self.cfg = cfg
        self.base = base_dir
        self.local_backend = local_backend
        self.notes: list[str] = []
        self.problems: list[str] = []
        self.used: set[str] = set()  # "section.key" consumed

    # -- reading ---------------------------------------------------------------------------------------------------
    def section(self, name: str) -> dict:
        sec = self.cfg.get(name, {})
        if sec is None:
            return {}
        if not isinstance(sec, dict):
            self.problems.append(f"'{name}' must be an object of settings, got {type(sec).__name__}")
            return {}
        return sec

    def get(self, section: str, key: str, conv: Callable = str, default: Any = None, required: bool = False) -> Any:
        sec = self.section(section)
        self.used.add(f"{section}.{key}")
        if key not in sec or sec[key] is None:
            if required:
                self.problems.append(f"'{section}.{key}' is required for job_type '{self.job_type}'")
            return default
        conv = _TEXT if conv is str else conv
        try:
            return conv(sec[key])
        except (TypeError, ValueError, OverflowError):
            self.problems.append(f"'{section}.{key}' = {_kind(sec[key])}: expected {_WORDS.get(conv, 'another value')}")
            return default

    def path(self, section: str, key: str, must_exist: bool, required: bool = True) -> str | None:
        raw = self.get(section, key, str, required=required)
        if raw is None:
            return None
        if not raw.strip() or "\x00" in raw:
            self.problems.append(f"'{section}.{key}' = {raw!r}: expected a file path")
            return None
        p = Path(raw)
        if raw.startswith("~"):
            try:
                p = p.expanduser()
            except RuntimeError:  # ~someone who has no home here
                self.problems.append(f"'{section}.{key}' = {raw!r}: cannot find that user's home folder")
                return None
        if not p.is_absolute():
            p = (self.base / p).resolve()
        if must_exist and not p.exists():
            self.problems.append(
                f"'{section}.{key}': file not found: {p} (relative paths resolve against the config file's folder)"
            )
        return str(p)

    # -- building blocks -------------------------------------------------------------------------------------------
    @property
    def job_type(self) -> str:
        return str(self.cfg.get("job_type"))

    def sampling(self) -> dict:
        out = {}
        for key, conv in INFERENCE_SAMPLING.items():
            v = self.get("inference", key, conv)
            if v is not None:
                out[key] = v
        return out

    def backend(self, role: str, remote: bool) -> dict:
        model = self.get("models", role, str, required=not remote)
        if remote:
            endpoint: dict[str, Any] = {"base_url": self.get("inference", "base_url", str, required=True) or ""}
            if model:
                endpoint["model"] = model
            key = self.get("inference", "api_key", str)
            if key:
                endpoint["api_key"] = key
                self.notes.append(
                    "inference.api_key: the key is used for this run only and is never printed or written; "
                    "prefer `api_key_env: NAME` with the key in that environment variable"
                )
            key_env = self.get("inference", "api_key_env", str)
            if key_env:
                endpoint["api_key_env"] = key_env
            self.get("inference", "stream", _bool)  # honoured implicitly: batch jobs do not need streaming
            return {"type": "openai", "model": model or "", "endpoint": endpoint}
        spec: dict[str, Any] = {"type": self.local_backend, "model": self._model_path(model)}
        trust = self.get("inference", "trust_remote_code", _bool)
        if trust is not None:
            spec["trust_remote_code"] = trust
        vllm = {k: v for k in INFERENCE_VLLM if (v := self.get("inference", k, INFERENCE_VLLM[k])) is not None}
        if self.local_backend == "vllm":
            spec["vllm"] = vllm
        elif vllm:
            self.notes.append(
                f"inference.{', '.join(sorted(vllm))}: vLLM settings unused because the local teacher runs through "
                "transformers on this machine (no GPU); they apply when vLLM is used"
            )
        return spec

    def _model_path(self, model: str | None) -> str:
        if not model:
            return ""
        if "\x00" in model:
            return model  # not a path; the config's own check names it
        try:
            p = Path(model).expanduser()
        except RuntimeError:
            return model
        cand = p if p.is_absolute() else self.base / p
        return str(cand.resolve()) if cand.exists() else model

    def training(self, kind: str, dataset: str) -> dict:
        job: dict[str, Any] = {"kind": kind, "student": self._model_path(self.get("models", "student", required=True)),
                               "dataset": dataset}
        for key, (target, conv) in TRAINING_KEYS.items():
            v = self.get("training", key, conv)
            if v is not None:
                job[target] = v
        out_dir = self.get("training", "output_dir", str)
        if out_dir:
            job["output"] = Path(out_dir).name
            self.notes.append(f"training.output_dir: the trained model is saved as workspace/models/{job['output']}")
        for flag, prec in (("bf16", "bf16"), ("fp16", "fp16")):
            if self.get("training", flag, _bool):
                job["precision"] = prec
        msl = self.get("distillation", "max_seq_length", _INT)
        if msl is not None and "max_length" not in job:
            job["max_length"] = msl
        template = self.path("dataset", "template", must_exist=True, required=False)
        if template:
            job["template"] = template
        seed = self.get("dataset", "seed", _INT)
        if seed is not None and "seed" not in job:
            job["seed"] = seed
        return job

    def kd_settings(self, job: dict) -> None:
        ratio = self.get("distillation", "kd_ratio", _NUM)
        if ratio is not None:
            job["kd_ratio"] = ratio
        dtype = self.get("distillation", "distillation_type", str)
        if dtype is not None:
            mapping = {"forward_kld": "forward_kl", "reverse_kld": "reverse_kl"}
            if dtype not in mapping:
                self.problems.append(
                    f"'distillation.distillation_type' = {dtype!r}: expected forward_kld or reverse_kld"
                )
            else:
                job["divergence"] = mapping[dtype]
        temp = self.get("distillation", "temperature", _NUM)
        if temp is not None:
            job["temperature"] = temp

    def synth(self, operator: str, remote: bool, input_key: str, output_key: str, must_exist: bool = True) -> dict:
        job: dict[str, Any] = {
            "kind": "synth", "operator": operator,
            "input": self.path("dataset", input_key, must_exist=must_exist),
            "output": self.path("dataset", output_key, must_exist=False),
            "teacher": self.backend("teacher", remote),
        }
        sampling = self.sampling()
        if sampling:
            job["sampling"] = sampling
        for key in ("system_prompt", "prompt"):
            v = self.get("inference", key, str)
            if v is not None:
                job[key] = v
        for key in ("num_in_context_samples", "num_output_samples", "seed"):
            v = self.get("dataset", key, _INT)
            if v is not None:
                job[key] = v
        return job

    # -- job types -------------------------------------------------------------------------------------------------
    def build(self) -> dict:
        jt = self.job_type
        self.used.add("job_type")
        if jt not in JOB_TYPES:
            raise ConfigError([f"'job_type' = {jt!r} is not an EasyDistill job type; expected one of {JOB_TYPES}"])
        if jt in ("kd_black_box_local", "kd_black_box_api"):
            label = self.synth("label", jt.endswith("_api"), "instruction_path", "labeled_path")
            return self.pipeline(("label", label), ("train", self.training("train_sft", label["output"])))
        if jt == "kd_black_box_train_only":
            return self.training("train_sft", self.path("dataset", "labeled_path", must_exist=True))
        if jt in ("kd_white_box", "kd_white_box_train_only"):
            return self.white_box(train_only=jt.endswith("train_only"))
        if jt in ("rank_dpo_local", "rank_dpo_api"):
            return self.rank_dpo(remote=jt.endswith("_api"))
        if jt in ("rl_reward_local", "rl_reward_api"):
            self.notes.append(f"{jt}: trains a reward model on the (chosen, rejected) pairs in dataset.labeled_path")
            self.get("models", "teacher")
            return self.training("train_reward", self.path("dataset", "labeled_path", must_exist=True))
        if jt in ("rl_grpo", "rl_ppo"):
            data = self.path("dataset", "instruction_path", must_exist=False, required=False) or self.path(
                "dataset", "labeled_path", must_exist=True)
            job = self.training("train_grpo", data)
            if jt == "rl_ppo":
                job["trainer"] = "rloo"  # the job log says so too (core.train.grpo)
                self.notes.append("rl_ppo: TRL 1.16 has no PPO trainer any more; the job runs RLOO (TRL RLOOTrainer: "
                                  "REINFORCE with a leave-one-out baseline over a group of samples) on the same "
                                  "reward instead")
            reward = self.get("models", "reward", str)
            if reward:
                job["reward_model"] = self._model_path(reward)
                job["reward_funcs"] = ["reward_model"]
            return job
        if jt in ("cot_eval_api", "instruct_eval_api"):
            metrics = ["rv", "cd", "correctness"] if jt == "cot_eval_api" else [
                "informativeness", "helpfulness", "generalization", "correctness"]
            job = {"kind": "judge", "input": self.path("dataset", "input_path", must_exist=True),
                   "output": self.path("dataset", "output_path", must_exist=False),
                   "judge": self.backend("teacher", remote=True), "metrics": metrics}
            sampling = self.sampling()
            if sampling.get("temperature"):
                self.notes.append(f"inference.temperature {sampling['temperature']}: judge calls run at temperature 0, "
                                  "so a rerun gives the same scores (REFERENCE protocol)")
            job["sampling"] = {"max_new_tokens": 1024, **sampling, "temperature": 0.0}
            return job
        op_name, mode = jt.rsplit("_", 1)
        return self.synth(SYNTH_OPERATORS[op_name], mode == "api", "input_path", "output_path")

    def white_box(self, train_only: bool) -> dict:
        teacher = self.backend("teacher", remote=False)
        top_k = self.get("inference", "top_logits_num", _INT, default=10)
        steps = []
        if train_only:
            labeled = self.path("dataset", "labeled_path", must_exist=True) or MISSING_PATH
            logits = self.path("dataset", "logits_path", must_exist=False, required=False)
            if logits:
                self.notes.append(
                    "dataset.logits_path: 1.x logits (one JSON dict per token, aligned by row order) are not reused; "
                    "the teacher is run once by teacher forcing to build an exact, id-keyed top-k cache"
                )
        else:
            label = self.synth("label", False, "instruction_path", "labeled_path")
            labeled = label["output"] or MISSING_PATH
            steps.append(("label", label))
            self.get("dataset", "logits_path")
        cache_name = Path(labeled).stem + f"-logits-k{top_k}"
        capture = {"kind": "capture", "input": labeled, "output": cache_name, "teacher": teacher, "top_k": top_k}
        msl = self.get("distillation", "max_seq_length", _INT)
        if msl:
            capture["max_length"] = msl
        train = self.training("train_kd", labeled)
        train["teacher"] = teacher["model"]
        train["logits"] = cache_name
        self.kd_settings(train)
        if "temperature" in train:  # the cache must be captured at the temperature KD will use
            capture["temperature"] = train["temperature"]
        steps += [("capture", capture), ("train", train)]
        return self.pipeline(*steps)

    def rank_dpo(self, remote: bool) -> dict:
        """Teacher answers, then the pairs job (chosen = teacher, rejected = the student's answer, ties and identical
        pairs dropped) writing `labeled_path` as 1.x did, then DPO on those pairs."""
        if remote and not self.section("inference").get("base_url"):
            remote = False  # upstream's rank_dpo_local.json says rank_dpo_api but names no endpoint
            self.notes.append(f"{self.job_type} without inference.base_url: the teacher runs locally "
                              f"({self.local_backend})")
        chosen = self.synth("label", remote, "instruction_path", "labeled_path")
        labeled = chosen["output"] or MISSING_PATH
        chosen["output"] = str(Path(labeled).with_suffix("")) + "-teacher.json"  # a JSON array in input order
        pairs: dict[str, Any] = {
            "kind": "pairs", "mode": "student", "input": chosen["output"], "output": labeled,
            "student": self.backend("student", remote=False),
            # the student sees the conversation the teacher saw
            "system_prompt": chosen.get("system_prompt") or SynthJob.model_fields["system_prompt"].default,
        }
        if chosen.get("sampling"):
            pairs["sampling"] = chosen["sampling"]
        train = self.training("train_dpo", labeled)
        beta = self.get("training", "beta", _NUM)
        if beta is not None:
            train["beta"] = beta
        self.notes.append(f"{self.job_type}: the teacher answers (chosen) go to {Path(chosen['output']).name}; the "
                          f"pairs job adds the student's (rejected) and writes {Path(labeled).name}; DPO trains on it")
        return self.pipeline(("teacher_answers", chosen), ("pairs", pairs), ("train", train))

    @staticmethod
    def pipeline(*steps: tuple[str, dict]) -> dict:
        return {"kind": "pipeline", "steps": [{"name": n, "job": j} for n, j in steps]}

    def unused(self) -> list[str]:
        out = []
        for sec_name, sec in self.cfg.items():
            if isinstance(sec, dict):
                out += [f"{sec_name}.{k}" for k in sec if f"{sec_name}.{k}" not in self.used]
            elif sec_name not in self.used:
                out.append(str(sec_name))
        return out


def import_v1(cfg: dict, base_dir: str | Path = ".", local_backend: str = "auto") -> tuple[dict, list[str]]:
    """Translate a 1.x config dict into a studio config dict (validated later by parse_config) plus notes.

    `local_backend`: how `_local`/`_batch` teachers run: 'vllm', 'transformers', or 'auto' (vLLM when GPUs exist).
    """
    if local_backend == "auto":
        from core.devices import discover_gpus

        local_backend = "vllm" if discover_gpus() else "transformers"
    imp = _Importer(cfg, Path(base_dir).resolve(), local_backend)
    out = imp.build()
    if imp.problems:
        raise ConfigError(imp.problems)
    ignored = imp.unused()
    if ignored:
        imp.notes.append("not honoured (ignored): " + ", ".join(sorted(ignored)))
    return out, imp.notes
