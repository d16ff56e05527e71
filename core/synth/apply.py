"""An operator as one function of (rows, backend, template, params) -> rows + rejects, held in memory.

Used by "Try on N rows" and by callers that want a few rows synchronously; the resumable job (core.synth.job) runs
the same units and parsers but persists every outcome as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.llm.base import SamplingParams
from core.synth.operators import OpParams, Unit, make_units
from core.synth.runner import run_units
from core.synth.templates import check_template, default_template


@dataclass
class SynthResult:
    rows: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    pairs: list[tuple[Unit, dict | None, dict | None]] = field(default_factory=list)  # (unit, row, reject) in order
    prompt_tokens: int = 0
    completion_tokens: int = 0


def apply(operator: str, rows: list[dict], backend, template: str | None = None, params: OpParams | None = None,
          sampling: SamplingParams | None = None, *, window: int = 8, pipelined: bool = False,
          parse_retries: int = 1) -> SynthResult:
    """Run `operator` over `rows` with `backend`; every input ends up in `rows` or `rejects` (with the reason)."""
    text = template if template is not None else (params.template if params else default_template(operator))
    check_template(operator, text)
    p = params or OpParams(template=text)
    p.template = text
    if not p.teacher:
        p.teacher = getattr(backend, "name", "")
    units, input_rejects = make_units(operator, rows, p)
    res = SynthResult(rejects=list(input_rejects))
    order = {u.id: i for i, u in enumerate(units)}
    outs = list(run_units(operator, units, backend, sampling or SamplingParams(), p, window=window,
                          pipelined=pipelined, parse_retries=parse_retries))
    outs.sort(key=lambda o: order[o.unit.id])
    for o in outs:
        res.prompt_tokens += o.prompt_tokens
        res.completion_tokens += o.completion_tokens
        res.pairs.append((o.unit, o.row, o.reject))
        if o.row is not None:
            res.rows.append(o.row)
        else:
            res.rejects.append(o.reject)
    return res
