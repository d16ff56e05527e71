"""The CoT Curation tab's two forms: judge chains of thought (JudgeJob) and curate them for a student (CurateJob).

`JudgeForm`: the judge is a model picker — a workspace model loaded by the job (transformers / vLLM), or a registered
endpoint (`endpoint:<name>`) reached over HTTP — turned into a BackendSpec; the rest is JudgeJob's own fields.

`CurateForm`: the filters are sliders whose open ends mean "no filter" (RV from 0 to 9 keeps rows without an RV
score; narrowing it drops them), so a form at rest curates nothing away but incorrect traces. The mixer's CD edges,
RV target (a number, low/medium/high/matched, or one value per bin) and the teachers are typed as text and parsed
here, errors naming the field. `spec(values)` gives the CurateSpec the live preview runs on, the same one Start
submits; `values_for_size` fills the form from a student-size preset (core.cot.sizes).
"""

from __future__ import annotations

import re
from typing import Any

from core.config.base import JobBase
from core.config.data_jobs import CurateJob, CurateSpec, JudgeJob
from core.cot.sizes import STUDENT_SIZES
from core.forms.fields import FieldSpec, field
from core.forms.form import FormError, JobForm
from core.workspace import Workspace

BACKEND = FieldSpec(name="backend", path="", widget="choice", choices=("transformers", "vllm"),
                    default="transformers", help="how a workspace judge model is loaded by the job (an endpoint is "
                    "reached over HTTP whatever this says)")
LIMIT = {"default": 0, "minimum": 0, "extra": {"zero_is_none": True}}  # "0 = all rows" in a Number widget


class JudgeForm(JobForm):
    config = JudgeJob
    fields = (
        field(JudgeJob, "input", widget="dataset"),
        field(JudgeJob, "judge", widget="model"),
        BACKEND,
        field(JudgeJob, "metrics"),
        field(JudgeJob, "answer_field"),
        field(JudgeJob, "rescore"),
        field(JudgeJob, "retry_rejects"),
        field(JudgeJob, "limit", **LIMIT),
        field(JudgeJob, "sampling.max_new_tokens", name="max_new_tokens"),
        field(JudgeJob, "output"),
        field(JudgeJob, "name"),
    )

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        if not str(values.get("input") or "").strip():
            raise FormError("choose the dataset to score", "input", code="required")
        if not str(values.get("judge") or "").strip():
            raise FormError("choose the judge model or endpoint", "judge", code="required")
        data = super().to_data(ws, values)
        if not data.get("name"):
            data["name"] = f"judge {values['input']}"
        return data

    def values_of(self, job: JobBase, ws: Workspace) -> dict[str, Any]:
        out = super().values_of(job, ws)
        judge = getattr(job, "judge", None)
        out["backend"] = judge.type if judge is not None and judge.type in BACKEND.choices else BACKEND.default
        return out


# ------------------------------------------------------------------------------------------------------ curate

T = CurateJob
# Slider ends that mean "no filter" (the config's None): a full range keeps rows that lack the score.
OPEN_ENDS = {"rv_min": 0, "rv_max": 9, "cd_min": 0, "cd_max": 9, "min_correctness": 0}
TEXT_FIELDS = ("cd_edges", "rv_target", "teachers")  # typed as text, parsed by `to_data`
RV_WORDS = ("low", "medium", "high")
RV_POLICIES = (*RV_WORDS, "matched")
SPEC_FIELDS = tuple(CurateSpec.model_fields)


def _level(path: str) -> FieldSpec:
    return field(T, path, widget="slider", step=1, default=OPEN_ENDS[path], group="filters")


class CurateForm(JobForm):
    config = CurateJob
    fields = (
        field(T, "input", widget="dataset"),
        field(T, "min_correctness", widget="slider", step=0.1, group="filters"),
        _level("rv_min"), _level("rv_max"), _level("cd_min"), _level("cd_max"),
        field(T, "teachers", widget="text", group="filters", default=""),
        field(T, "min_response_chars", group="filters", **LIMIT),
        field(T, "max_response_chars", group="filters", **LIMIT),
        field(T, "samples_per_bin", group="mixer", **LIMIT),
        field(T, "cd_edges", widget="text", group="mixer", default="0, 3, 6, 10"),
        field(T, "rv_target", widget="text", group="mixer"),
        field(T, "one_per_question", group="mixer"),
        field(T, "seed", group="mixer"),
        field(T, "export", group="export"),
        field(T, "output", group="export"),
        field(T, "name", group="export"),
    )

    # ------------------------------------------------------------------------------------------ values → config
    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        if not str(values.get("input") or "").strip():
            raise FormError("choose a scored dataset (a judge job's output or imported OmniThought)", "input",
                            code="required")
        plain = {k: v for k, v in values.items() if k not in TEXT_FIELDS}
        data = super().to_data(ws, plain)
        for name, open_end in OPEN_ENDS.items():
            if data.get(name) is not None:
                v = data[name]
                data[name] = None if v == open_end else (v if name == "min_correctness" else int(round(v)))
        if "cd_edges" in values:
            data["cd_edges"] = parse_edges(values["cd_edges"])
        if "rv_target" in values:
            data["rv_target"] = parse_rv_target(values["rv_target"], len(data.get("cd_edges", [0, 3, 6, 10])) - 1)
        if "teachers" in values:
            data["teachers"] = parse_teachers(values["teachers"])
        if not data.get("name"):
            data["name"] = f"curate {values['input']}"
        return data

    def spec(self, ws: Workspace, values: dict[str, Any]) -> CurateSpec:
        """The filters and mixer the values describe, without a dataset or an output: what the live preview runs
        (the same settings Start submits). FormError names the field at fault."""
        from pydantic import ValidationError

        data = self.to_data(ws, {**values, "input": "preview"})
        try:
            return CurateSpec.model_validate({k: v for k, v in data.items() if k in SPEC_FIELDS})
        except ValidationError as e:
            raise self.form_error(e) from None

    # ------------------------------------------------------------------------------------------ config → values
    def values_of(self, job: Any, ws: Workspace) -> dict[str, Any]:
        out = super().values_of(job, ws)
        for name, open_end in OPEN_ENDS.items():
            if out.get(name) is None:
                out[name] = open_end
        for name in ("min_response_chars", "max_response_chars", "samples_per_bin"):
            if out.get(name) is None:
                out[name] = 0
        out["cd_edges"] = edges_text(job.cd_edges)
        out["rv_target"] = rv_target_text(job.rv_target)
        out["teachers"] = ", ".join(job.teachers or [])
        return out


def parse_edges(text: Any) -> list[float]:
    """'0, 3, 6, 10' (or a list) as CD bin edges; FormError names `cd_edges`."""
    parts = text if isinstance(text, list) else [p for p in re.split(r"[,\s\[\]]+", str(text or "")) if p]
    if not parts:
        return [0.0, 3.0, 6.0, 10.0]
    try:
        edges = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise FormError(f"numbers separated by commas, e.g. 0, 3, 6, 10 (got {text!r})", "cd_edges",
                        code="cd_edges_numbers", got=text) from None
    if len(edges) < 2:
        raise FormError("at least two edges (one CD bin), e.g. 0, 10", "cd_edges", code="cd_edges_two")
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise FormError("edges must increase, e.g. 0, 3, 6, 10", "cd_edges", code="cd_edges_increase")
    return edges


def parse_rv_target(text: Any, n_bins: int) -> float | str | list[float | str]:
    """A number, low/medium/high/matched, or one value per CD bin ('2, 5, 8' or 'low, medium, high').
    FormError names `rv_target`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if isinstance(text, list):
        parts = [str(p) for p in text]
    else:
        parts = [p for p in re.split(r"[,\s\[\]]+", str(text or "").strip().lower()) if p]
    if not parts:
        return "matched"
    values = [_rv_value(p, allow_matched=len(parts) == 1) for p in parts]
    if len(values) == 1:
        return values[0]
    if len(values) != n_bins:
        raise FormError(f"{len(values)} targets for {n_bins} CD bins: give one value, or one per bin", "rv_target",
                        code="rv_targets_count", n=len(values), bins=n_bins)
    return values


def _rv_value(part: str, allow_matched: bool) -> float | str:
    word = part.strip().lower()
    if word in RV_WORDS or (allow_matched and word == "matched"):
        return word
    try:
        v = float(word)
    except ValueError:
        choices = "low, medium, high" + (", matched" if allow_matched else "")
        raise FormError(f"'{part}' is neither a number from 0 to 9 nor one of {choices}", "rv_target",
                        code="rv_target_word", part=part, choices=choices) from None
    if not 0 <= v <= 9:
        raise FormError(f"{part} is outside the judge's 0–9 scale", "rv_target", code="rv_target_scale", part=part)
    return v


def parse_teachers(text: Any) -> list[str] | None:
    """Teacher names separated by commas (or a list); empty = every teacher."""
    names = text if isinstance(text, list) else str(text or "").split(",")
    kept = [str(n).strip() for n in names if str(n).strip()]
    return kept or None


def edges_text(edges: list[float]) -> str:
    return ", ".join(f"{e:g}" for e in edges)


def rv_target_text(target: Any) -> str:
    if isinstance(target, list):
        return ", ".join(rv_target_text(t) for t in target)
    return f"{target:g}" if isinstance(target, (int, float)) else str(target)


def values_for_size(size: str) -> dict[str, Any]:
    """The form values of a student-size preset (core.cot.sizes): its filters, the open ends elsewhere."""
    if size not in STUDENT_SIZES:
        raise FormError(f"choose one of {', '.join(STUDENT_SIZES)}", "size", code="choose_one",
                        choices=", ".join(STUDENT_SIZES))
    spec = CurateSpec(**STUDENT_SIZES[size])
    values = {name: getattr(spec, name) for name in (*OPEN_ENDS, "min_response_chars", "max_response_chars")}
    for name, open_end in OPEN_ENDS.items():
        values[name] = open_end if values[name] is None else values[name]
    return {**values, "min_response_chars": values["min_response_chars"] or 0,
            "max_response_chars": values["max_response_chars"] or 0, "teachers": ""}


def output_dataset(ws: Workspace, job: JobBase) -> str | None:
    """The workspace dataset a judge or curate job writes (None when it writes a file instead): what 'Open in
    Training' and 'Curate this' point at."""
    from core.synth.job import output_target

    suffix = "curated" if job.kind == "curate" else "judge"
    return output_target(ws, job, suffix).dataset  # type: ignore[arg-type]


JUDGE_FORM = JudgeForm()
CURATE_FORM = CurateForm()
