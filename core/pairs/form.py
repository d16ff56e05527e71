"""The forms of the preference-data jobs: build DPO pairs (PairsJob) and run Critique–Rethink–Verify (CrvJob).

Every model role (student, teacher, judge; critic, rethinker, verifier) is a model picker — a workspace model loaded by
the job (transformers / vLLM, the `backend` choice) or a registered endpoint (`endpoint:<name>`) — turned into a
BackendSpec by JobForm. Which fields a mode or ranking uses is a form-level mapping (`PAIR_FIELDS`): `shown` tells the
tab what to show, and `to_data` reads only the fields in use, so a hidden student never leaks into a best-of-N job.
"""

from __future__ import annotations

from typing import Any

from core.config.base import JobBase
from core.config.pairs_jobs import CrvJob, PairsJob
from core.forms.fields import FieldSpec, field
from core.forms.form import FormError, JobForm
from core.synth.templates import list_templates
from core.workspace import Workspace

BACKEND = FieldSpec(name="backend", path="", widget="choice", choices=("transformers", "vllm"),
                    default="transformers", help="how a workspace model is loaded by the job (an endpoint is reached "
                    "over HTTP whatever this says)")
LIMIT = {"default": 0, "minimum": 0, "extra": {"zero_is_none": True}}  # "0 = all rows" in a Number widget

P = PairsJob
# Fields only some modes / rankings use (every other field is used always).
MODE_FIELDS: dict[str, tuple[str, ...]] = {"student": ("student",), "best_of_n": ("teacher", "num_samples")}
RANK_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "verifier": ("answer_field", "min_margin"),
    "judge": ("judge", "judge_metric", "judge_template", "min_margin"),
    "scorer": ("answer_field", "judge", "length_alpha", "min_margin"),
}


def _backend_of(*specs: Any) -> str:
    """The `backend` choice that reproduces the first local spec among `specs`."""
    for s in specs:
        if s is not None and s.type in BACKEND.choices:
            return s.type
    return str(BACKEND.default)


def _require(values: dict[str, Any], name: str, message: str) -> None:
    if not str(values.get(name) or "").strip():
        raise FormError(message, name, code="required")


class PairsForm(JobForm):
    config = PairsJob
    fields = (
        field(P, "input", widget="dataset"),
        field(P, "mode"),
        field(P, "student", widget="model", required=False, group="models"),
        field(P, "teacher", widget="model", required=False, group="models"),
        BACKEND,
        field(P, "num_samples", group="models"),
        field(P, "rank_by", group="ranking"),
        field(P, "answer_field", group="ranking"),
        field(P, "judge", widget="model", group="ranking"),
        field(P, "judge_metric", group="ranking"),
        field(P, "judge_template", widget="text", group="ranking", extra={"choices_of": list_templates}),
        field(P, "length_alpha", group="ranking"),
        field(P, "min_margin", group="ranking"),
        field(P, "sampling.temperature", name="temperature", widget="slider", step=0.05, group="sampling"),
        field(P, "sampling.max_new_tokens", name="max_new_tokens", group="sampling"),
        field(P, "system_prompt", group="sampling"),
        field(P, "limit", group="options", **LIMIT),
        field(P, "retry_rejects", group="options"),
        field(P, "output", group="options"),
        field(P, "name", group="options"),
    )

    def uses(self, name: str, values: dict[str, Any]) -> bool:
        """Whether the mode and ranking in `values` use field `name` (hidden and ignored otherwise)."""
        mode, rank = values.get("mode") or "student", values.get("rank_by") or "none"
        scoped_mode = {n for names in MODE_FIELDS.values() for n in names}
        scoped_rank = {n for names in RANK_FIELDS.values() for n in names}
        if name in scoped_mode:
            return name in MODE_FIELDS.get(mode, ())
        if name in scoped_rank:
            return name in RANK_FIELDS.get(rank, ())
        return True

    def shown(self, values: dict[str, Any]) -> dict[str, bool]:
        return {f.name: self.uses(f.name, values) for f in self.fields}

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        _require(values, "input", "choose the dataset of prompts (with the teacher's answers for student mode)")
        mode, rank = values.get("mode") or "student", values.get("rank_by") or "none"
        if mode == "student":
            _require(values, "student", "choose the student whose answers become the rejected side")
        else:
            _require(values, "teacher", "choose the teacher to sample N answers from")
            if rank == "none":
                raise FormError("best of N needs a ranking: verifier, judge or scorer", "rank_by",
                                code="best_of_needs_ranking")
        if rank == "judge":
            _require(values, "judge", "choose the judge that scores the answers")
        if rank == "verifier":
            _require(values, "answer_field", "name the reference answer column the verifier checks against")
        data = super().to_data(ws, {k: v for k, v in values.items() if self.uses(k, values)})
        if not data.get("name"):
            data["name"] = f"pairs {mode} {values['input']}"
        return data

    def values_of(self, job: JobBase, ws: Workspace) -> dict[str, Any]:
        out = super().values_of(job, ws)
        out["backend"] = _backend_of(getattr(job, "student", None), getattr(job, "teacher", None),
                                     getattr(job, "judge", None))
        return out


C = CrvJob


class CrvForm(JobForm):
    config = CrvJob
    fields = (
        field(C, "input", widget="dataset"),
        field(C, "student_size"),
        field(C, "critic", widget="model", group="models"),
        field(C, "rethinker", widget="model", group="models"),
        BACKEND,
        field(C, "verifier", group="verify"),
        field(C, "verify_judge", widget="model", group="verify"),
        field(C, "answer_field", group="verify"),
        field(C, "corrupted_pairs", group="verify"),
        field(C, "critique_template", widget="text", group="templates", extra={"choices_of": list_templates}),
        field(C, "short2long_template", widget="text", group="templates", extra={"choices_of": list_templates}),
        field(C, "long2short_template", widget="text", group="templates", extra={"choices_of": list_templates}),
        field(C, "verify_template", widget="text", group="templates", extra={"choices_of": list_templates}),
        field(C, "critic_sampling.max_new_tokens", name="critic_max_new_tokens", group="sampling"),
        field(C, "rethink_sampling.temperature", name="rethink_temperature", widget="slider", step=0.05,
              group="sampling"),
        field(C, "rethink_sampling.max_new_tokens", name="rethink_max_new_tokens", group="sampling"),
        field(C, "limit", group="options", **LIMIT),
        field(C, "retry_rejects", group="options"),
        field(C, "output", group="options"),
        field(C, "name", group="options"),
    )

    def uses(self, name: str, values: dict[str, Any]) -> bool:
        if name in ("verify_judge", "verify_template"):
            return (values.get("verifier") or "math_verify") == "judge"
        return True

    def shown(self, values: dict[str, Any]) -> dict[str, bool]:
        return {f.name: self.uses(f.name, values) for f in self.fields}

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        _require(values, "input", "choose a chain-of-thought dataset (instruction + reasoning)")
        _require(values, "critic", "choose the critic model or endpoint")
        _require(values, "student_size", "say the target student's size (e.g. 1.5B)")
        data = super().to_data(ws, {k: v for k, v in values.items() if self.uses(k, values)})
        if not data.get("name"):
            data["name"] = f"crv {values['input']} for {values['student_size']}"
        return data

    def values_of(self, job: JobBase, ws: Workspace) -> dict[str, Any]:
        out = super().values_of(job, ws)
        out["backend"] = _backend_of(getattr(job, "critic", None), getattr(job, "rethinker", None))
        return out


def output_dataset(ws: Workspace, job: JobBase) -> str | None:
    """The workspace dataset a pairs or CRV job writes (None when it writes a file instead): what the Training tab's
    'Use for DPO' puts into its dataset picker."""
    from core.pairs.common import target_for

    return target_for(ws, job, "crv" if job.kind == "crv" else "pairs").dataset


PAIRS_FORM = PairsForm()
CRV_FORM = CrvForm()
