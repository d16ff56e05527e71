""""Try on N rows": run an operator synchronously on the first rows and show inputs next to outputs.

An HTTP teacher is called directly from the calling process (light: no torch). A local teacher needs torch and the
model in memory, which the studio process must never load, so the trial runs in a short child process
(`python -m core.synth.trial`, JSON in on stdin, JSON out on stdout) that exits when done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.config.data_jobs import SynthJob
from core.data.rows import prompt_text
from core.errors import UserError
from core.llm.base import SamplingParams
from core.workspace import Workspace

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class TrialError(UserError, RuntimeError):
    pass


@dataclass
class TrialRow:
    id: str
    input: str  # what the row asked (instruction, text, or expand's examples)
    request: str  # the user message sent to the teacher
    output: str  # the parsed result, or the raw reply of a reject
    status: str  # "ok" or the reject reason
    row: dict | None = None


@dataclass
class TrialResult:
    rows: list[TrialRow] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrialResult:
        return cls([TrialRow(**r) for r in d.get("rows", [])], d.get("seconds", 0.0), d.get("prompt_tokens", 0),
                   d.get("completion_tokens", 0))


_SHOW = {"label": "output", "expand": "instruction", "refine": "instruction", "cot_generate": "output",
         "long2short": "output", "short2long": "output", "classify": "category"}


def _shown(operator: str, row: dict) -> str:
    if operator == "extract":
        return f"{row.get('instruction', '')}\n\n→ {row.get('output', '')}"
    return str(row.get(_SHOW[operator], ""))


def _input_text(operator: str, row: dict) -> str:
    if operator == "expand":
        return "\n".join(f"- {prompt_text(e)}" for e in row.get("examples", []))
    if operator == "extract":
        return str(row.get("text") or row.get("output") or row.get("instruction") or "")
    return prompt_text(row)


def run_trial(ws: Workspace, config: SynthJob, n: int = 5, template_text: str | None = None, backend=None,
              confined: bool = True) -> TrialResult:
    """Run the operator on the first `n` input rows (expand: `n` new instructions) in this process."""
    from core.data.store import load_rows
    from core.synth.apply import apply
    from core.synth.job import dispatch, make_teacher, op_params

    rows, _ = load_rows(ws, config.input, confined=confined)
    if config.operator == "expand":
        config = config.model_copy(update={"num_output_samples": n})
        sample = rows
    else:
        sample = rows[:n]
    params = op_params(config, ws)
    if template_text is not None:
        params.template = template_text
    t0 = time.time()
    own = backend is None
    backend = backend or make_teacher(config.teacher, ws)
    try:
        pipelined, window = dispatch(config.teacher)
        sampling = SamplingParams.from_sampling(config.sampling)
        res = apply(config.operator, sample, backend, params.template, params, sampling,
                    window=window, pipelined=pipelined, parse_retries=0)
    finally:
        if own and hasattr(backend, "close"):
            backend.close()
    out = TrialResult(seconds=round(time.time() - t0, 2), prompt_tokens=res.prompt_tokens,
                      completion_tokens=res.completion_tokens)
    for unit, row, rej in res.pairs:
        request = unit.messages[-1]["content"]
        if row is not None:
            out.rows.append(TrialRow(unit.id, _input_text(config.operator, unit.row), request,
                                     _shown(config.operator, row), "ok", row))
        else:
            out.rows.append(TrialRow(unit.id, _input_text(config.operator, unit.row), request,
                                     str(rej.get("reply", "")), str(rej.get("reason")), None))
    shown = {r.id for r in out.rows}
    for rej in res.rejects:  # input problems never reached the teacher
        if rej["id"] not in shown and rej.get("stage") == "input":
            out.rows.append(TrialRow(rej["id"], _input_text(config.operator, rej.get("input") or {}), "", "",
                                     str(rej["reason"])))
    return out


def try_operator(ws: Workspace, config: SynthJob, n: int = 5, template_text: str | None = None,
                 timeout_s: float = 600.0) -> TrialResult:
    """What the studio calls: HTTP teachers in-process, local teachers in a child process (never torch here)."""
    if config.teacher.type == "openai":
        return run_trial(ws, config, n, template_text)
    payload = {"workspace": str(ws.root), "extra_roots": [str(r) for r in ws.extra_roots],
               "config": config.model_dump(mode="json"), "n": n, "template_text": template_text}
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run([sys.executable, "-m", "core.synth.trial"], input=json.dumps(payload), text=True,
                              capture_output=True, timeout=timeout_s, cwd=PROJECT_ROOT, env=env)
    except subprocess.TimeoutExpired:
        raise TrialError(f"the trial did not finish within {timeout_s:.0f} s; try fewer rows or a smaller "
                         "max_new_tokens") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise TrialError(f"the trial process failed (exit {proc.returncode}):\n{tail}")
    data = json.loads(lines[-1])
    if "error" in data:
        raise TrialError(data["error"])
    return TrialResult.from_dict(data)


def _main() -> int:
    """Child-process side of try_operator: JSON payload on stdin, one JSON line on stdout."""
    from core.config.io import parse_config

    payload = json.loads(sys.stdin.read())
    try:
        ws = Workspace(Path(payload["workspace"]), [Path(p) for p in payload.get("extra_roots", [])])
        config = parse_config(payload["config"])
        res = run_trial(ws, config, int(payload.get("n", 5)), payload.get("template_text"))
        print(json.dumps(res.to_dict(), ensure_ascii=False))
        return 0
    except Exception as e:  # reported to the studio as a message, not a traceback in the UI
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1


if __name__ == "__main__":
    sys.exit(_main())
