"""Import of EasyDistill 2.0 YAML pipelines (REFERENCE §3): `backend` + a `pipeline:` list of
`{stage, config, output_path}`, run as a studio pipeline job, one step per stage.

Stages understood: `cot_distill` (-> synth `cot_generate`), `cot_rvcd_score` (-> judge: rv, cd, correctness),
`cot_mix_by_rv_cd` (-> curate: `cd_bins`, `rv_target`, `samples_per_bin`, `min_correctness`) and `build_sft`
(-> curate with no filters, written as System-2 SFT rows). Each stage reads the previous stage's `output_path` unless
its config names an `input_path`. Keys we do not honour come back as notes by name; so do the two places where
the studio deliberately differs from 2.0's mixer (CD = 10 stays in the last bin; "matched" aims at 2..8 on the judge's
0–9 scale). An inline API key is carried as a secret, never written back.

Only what REFERENCE documents of 2.0 is mapped; a stage we do not know is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config.errors import ConfigError

STAGES = ("cot_distill", "cot_rvcd_score", "cot_mix_by_rv_cd", "build_sft")
BACKENDS = ("openai", "pai_token", "pai_eas")


def is_v2(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("pipeline"), list)


class _V2:
    def __init__(self, cfg: dict, base: Path):
        self.cfg, self.base = cfg, base
        self.notes: list[str] = []
        self.problems: list[str] = []
        self._backend: dict | None = None

    def resolve(self, value: Any, where: str) -> Path | None:
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            self.problems.append(f"{where}: expected a file path")
            return None
        try:
            p = Path(value).expanduser()
        except RuntimeError:  # ~someone who has no home here
            self.problems.append(f"{where}: cannot find the home folder of {value.split('/')[0]!r}")
            return None
        return (p if p.is_absolute() else self.base / p).resolve()

    def path(self, value: Any, where: str) -> str:
        """An output path: JSONL (or a JSON array, as the studio's jobs write), relative to the config file."""
        p = self.resolve(value, where)
        if p is None:
            return ""
        if p.suffix not in (".jsonl", ".json"):
            p = p.with_name(p.name + ".jsonl")
            self.notes.append(f"{where}: written as {p.name} (outputs are JSON Lines)")
        return str(p)

    def backend(self) -> dict:
        """The one backend every stage uses (read once, so its notes appear once)."""
        if self._backend is None:
            self._backend = self._read_backend()
        return self._backend

    def _read_backend(self) -> dict:
        b = self.cfg.get("backend") or {}
        if not isinstance(b, dict):
            self.problems.append("backend: expected a mapping with type and base_url")
            return {}
        kind = b.get("type", "openai")
        if kind not in BACKENDS:
            self.problems.append(f"backend.type {kind!r}: expected one of {', '.join(BACKENDS)}")
        base_url = b.get("base_url") or b.get("endpoint") or b.get("url")
        if not base_url:
            self.problems.append("backend.base_url is missing (the OpenAI-compatible endpoint of the model)")
        endpoint: dict[str, Any] = {"base_url": base_url or ""}
        model = b.get("model") or b.get("model_name")
        if model:
            endpoint["model"] = model
        key = b.get("api_key") or b.get("token")
        if key:
            endpoint["api_key"] = key
            self.notes.append("backend api key: used for this run only, never printed or written; prefer api_key_env")
        if b.get("api_key_env"):
            endpoint["api_key_env"] = b["api_key_env"]
        conc = b.get("concurrency") or b.get("max_workers")
        if conc:
            if isinstance(conc, int) and not isinstance(conc, bool) or isinstance(conc, str) and conc.isdigit():
                endpoint["concurrency"] = int(conc)
            else:
                self.problems.append(f"backend.concurrency {conc!r}: expected a whole number")
        if kind != "openai":
            self.notes.append(f"backend.type {kind}: reached as an OpenAI-compatible endpoint at {base_url}")
        used = {"type", "base_url", "endpoint", "url", "model", "model_name", "api_key", "token", "api_key_env",
                "concurrency", "max_workers"}
        extra = sorted(str(k) for k in set(b) - used)
        if extra:
            self.notes.append("backend: not honoured (ignored): " + ", ".join(extra))
        return {"type": "openai", "model": model or "", "endpoint": endpoint}

    def step(self, i: int, st: dict, prev_output: str | None) -> dict | None:
        where = f"pipeline[{i}]"
        if not isinstance(st, dict) or "stage" not in st:
            self.problems.append(f"{where}: expected a mapping with 'stage', 'config' and 'output_path'")
            return None
        stage, conf = st["stage"], st.get("config") or {}
        if not isinstance(conf, dict):
            self.problems.append(f"{where}.config: expected a mapping of settings")
            return None
        conf = dict(conf)
        if not isinstance(stage, str) or stage not in STAGES:
            self.problems.append(f"{where}.stage {stage!r} is not supported here (supported: {', '.join(STAGES)})")
            return None
        src = conf.pop("input_path", None) or (self.cfg.get("input_path") if prev_output is None else None)
        found = self.resolve(src, f"{where}.config.input_path") if src else None
        job: dict[str, Any] = {"input": str(found) if found else prev_output or ""}
        if not job["input"]:
            self.problems.append(f"{where}: no input (give config.input_path, or put a stage with output_path first)")
        job["output"] = self.path(st.get("output_path"), f"{where}.output_path")
        if stage == "cot_distill":
            job.update(kind="synth", operator="cot_generate", teacher=self.backend())
        elif stage == "cot_rvcd_score":
            job.update(kind="judge", judge=self.backend(), metrics=conf.pop("metrics", ["rv", "cd", "correctness"]))
        elif stage == "cot_mix_by_rv_cd":
            job["kind"] = "curate"
            for src_key, dst in (("cd_bins", "cd_edges"), ("rv_target", "rv_target"),
                                 ("samples_per_bin", "samples_per_bin"), ("min_correctness", "min_correctness"),
                                 ("seed", "seed"), ("one_per_question", "one_per_question")):
                if src_key in conf:
                    job[dst] = conf.pop(src_key)
            edges = job.get("cd_edges", [0, 3, 6, 10])
            top = edges[-1] if isinstance(edges, list) and edges else 10
            self.notes.append(f"{where} cot_mix_by_rv_cd: CD = {top} stays in the "
                              "last bin, and 'matched' aims at RV 2..8 on the judge's 0-9 scale (2.0 put it in an "
                              "extra bin and aimed at 2/6/10)")
        else:  # build_sft
            job.update(kind="curate", min_correctness=None, export="system2")
            fmt = conf.pop("format", None) or conf.pop("output_format", None)
            if fmt:
                self.notes.append(f"{where} build_sft format {fmt!r}: rows are written canonical (instruction/output, "
                                  "reasoning in <think>); export them to that format from the Data tab or CLI")
        if conf:
            self.notes.append(f"{where}.config ({stage}): not honoured (ignored): " + ", ".join(sorted(map(str, conf))))
        return {"name": f"{i + 1}-{stage}", "job": job}


def import_v2(cfg: dict, base_dir: str | Path = ".") -> tuple[dict, list[str]]:
    """A 2.0 pipeline dict as a studio config dict (validated later by parse_config) plus notes for the user."""
    imp = _V2(cfg, Path(base_dir).resolve())
    steps, prev = [], None
    for i, st in enumerate(cfg["pipeline"]):
        step = imp.step(i, st, prev)
        if step is not None:
            steps.append(step)
            prev = step["job"]["output"] or prev
    if not steps and not imp.problems:
        imp.problems.append("pipeline: no stages")
    if imp.problems:
        raise ConfigError(imp.problems)
    extra = sorted(str(k) for k in set(cfg) - {"job_type", "backend", "pipeline", "input_path"})
    if extra:
        imp.notes.append("not honoured (ignored): " + ", ".join(extra))
    if len(steps) == 1:
        return steps[0]["job"], imp.notes
    return {"kind": "pipeline", "name": str(cfg.get("job_type") or ""), "steps": steps}, imp.notes
