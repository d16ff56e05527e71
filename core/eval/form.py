"""The evaluation form: which model, against which reference and judge, on which held-out set, by which metrics.

A model choice becomes a BackendSpec (a workspace model is loaded by the evaluate job itself through transformers
or vLLM, an endpoint is reached over HTTP); `students` is a multi-select of the same choices (several models scored
against one reference in one job: the reference answers once); the reward model (the reward_model metric) is a
workspace model name, offered from the reward heads alone; everything else is EvaluateJob's own fields.
"""

from __future__ import annotations

from typing import Any

from core.config.train import EvaluateJob
from core.endpoints import choice_for
from core.forms.fields import FieldSpec, field
from core.forms.form import FormError, JobForm
from core.pickers import reward_model_choices
from core.workspace import Workspace

BACKEND = FieldSpec(name="backend", path="", widget="choice", choices=("transformers", "vllm"),
                    default="transformers", help="how a workspace model is loaded by the job")


class EvaluateForm(JobForm):
    config = EvaluateJob
    fields = (
        field(EvaluateJob, "model", widget="model"),
        field(EvaluateJob, "students", widget="model", extra={"gradio": {"multiselect": True}}),
        field(EvaluateJob, "reference", widget="model"),
        field(EvaluateJob, "judge", widget="model"),
        # reward heads only: a trained reward model scores answers, it cannot write them
        field(EvaluateJob, "reward_model", widget="model", optional=True, extra={"choices_of": reward_model_choices}),
        field(EvaluateJob, "dataset", widget="dataset"),
        field(EvaluateJob, "metrics"),
        # "0 = all rows": the widget starts at 0 (an empty Number shows 0, which a minimum of 1 would refuse)
        field(EvaluateJob, "limit", minimum=0, default=0, extra={"zero_is_none": True}),
        field(EvaluateJob, "answer_field"),
        field(EvaluateJob, "top_k"),
        field(EvaluateJob, "sampling.max_new_tokens", name="max_new_tokens"),
        BACKEND,
        field(EvaluateJob, "name"),
    )

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        students = [s for s in (values.get("students") or []) if s]
        if not values.get("model") and not students:
            raise FormError("choose the model to evaluate", "model", code="required")
        if not values.get("dataset"):
            raise FormError("choose a held-out dataset", "dataset", code="required")
        data = super().to_data(ws, {**values, "students": []})
        spec = next(f for f in self.fields if f.name == "students")
        data["students"] = [self.backend_for(ws, values, spec, s) for s in students]
        if not data.get("name"):
            data["name"] = f"evaluate {', '.join(m for m in [values.get('model'), *students] if m)}"
        return data

    def values_of(self, job: Any, ws: Workspace) -> dict[str, Any]:
        out = super().values_of(job, ws)
        out["students"] = [choice_for(s, ws) for s in getattr(job, "students", [])]
        return out


FORM = EvaluateForm()


def build_job(ws: Workspace, values: dict[str, Any], confine: bool = True) -> EvaluateJob:
    """The form's values as an EvaluateJob (see `JobForm.build_job`)."""
    return FORM.build_job(ws, values, confine)  # type: ignore[return-value]


def evaluation_runs(jobs: Any) -> list[tuple[str, str]]:
    """(label, job id) of evaluate jobs, newest first, for the results and compare pickers."""
    from core.pickers import job_choices

    return job_choices(jobs, ("evaluate",), limit=200)
