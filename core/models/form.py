"""The Models tab's jobs as forms — derive a student by layer pruning, prepare the offline demo pair — and what the tab
shows around them: a proposal once a teacher is picked, the parameter preview, a running or finished job's report.

Facts come from config.json and safetensors headers (no torch), so the preview is instant on any machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config.train import DeriveJob, PrepareDemoJob
from core.endpoints import ENDPOINT_PREFIX
from core.errors import UserError
from core.forms.fields import field
from core.forms.form import FormError, JobForm
from core.jobs.summary import status_line
from core.workspace import Workspace

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")  # a model folder name that is safe in any path
DEMO_TEACHER_LAYERS = 30  # SmolLM2-135M-Instruct, the demo teacher


class DeriveProblem(UserError, ValueError):
    """The teacher cannot be pruned as asked (no layer count, layers out of range, unreadable weights)."""


class DeriveForm(JobForm):
    """Teacher (a workspace model), how many layers to keep and which, and the new model's name."""

    config = DeriveJob
    fields = (
        field(DeriveJob, "teacher", widget="model"),
        # no minimum on the widget: an empty Number would be refused by the browser before the form names the field
        field(DeriveJob, "layers", minimum=None),
        field(DeriveJob, "strategy"),
        field(DeriveJob, "output", name="out_name"),
    )

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        teacher = (values.get("teacher") or "").strip()
        if not teacher:
            raise FormError("choose a teacher", "teacher", code="required")
        if teacher.startswith(ENDPOINT_PREFIX):
            raise FormError("a remote endpoint has no weights to prune: choose a workspace model", "teacher",
                            code="prune_endpoint")
        data = super().to_data(ws, values)
        out = data.get("output") or ""
        if not NAME_RE.match(out):
            raise FormError("the model name may use letters, digits, '.', '_' and '-' only", "out_name",
                            code="name_chars")
        if (ws.models / out).exists():
            raise FormError(f"a model named '{out}' already exists: choose another name", "out_name",
                            code="model_exists", name=out)
        data.setdefault("name", f"derive {out}")
        return data


class DemoForm(JobForm):
    """How many of the demo teacher's layers the derived demo student keeps."""

    config = PrepareDemoJob
    fields = (field(PrepareDemoJob, "student_layers", name="demo_layers", maximum=DEMO_TEACHER_LAYERS),)

    def to_data(self, ws: Workspace, values: dict[str, Any]) -> dict[str, Any]:
        data = super().to_data(ws, values)
        if not 1 <= data.get("student_layers", 1) <= DEMO_TEACHER_LAYERS:
            raise FormError(f"between 1 and {DEMO_TEACHER_LAYERS} (the demo teacher's layers)", "demo_layers",
                            code="demo_layers", n=DEMO_TEACHER_LAYERS)
        return data


DERIVE_FORM, DEMO_FORM = DeriveForm(), DemoForm()


# ------------------------------------------------------------------------------------------ around the derive form

@dataclass(frozen=True)
class DerivePreview:
    kept: list[int]
    total: int
    params_before: int
    params_after: int


def _teacher_dir(ws: Workspace, teacher: str) -> Path:
    """A workspace model name or a folder inside the workspace (the preview reads files: never outside it)."""
    plain = "/" not in teacher and "\\" not in teacher
    folder = ws.models / teacher if plain and (ws.models / teacher).is_dir() else ws.resolve(teacher)
    if not folder.is_dir():
        raise DeriveProblem(f"'{teacher}' is not a model folder in the workspace")
    return folder


def teacher_layers(ws: Workspace, teacher: str) -> int:
    """How many decoder layers the teacher has (from its config.json)."""
    from core.models.registry import inspect_model_dir

    info = inspect_model_dir(_teacher_dir(ws, teacher), teacher)
    if info.error or not info.num_layers:
        raise DeriveProblem(info.error or "this model does not say how many layers it has")
    return info.num_layers


def propose(ws: Workspace, teacher: str, layers: int | None = None) -> tuple[int, str]:
    """(layers, new model name) to fill in once a teacher is picked: half its layers unless a count is given."""
    keep = int(layers) if layers else max(1, teacher_layers(ws, teacher) // 2)
    return keep, f"{teacher.rstrip('/').split('/')[-1]}-{keep}l"


def preview(ws: Workspace, teacher: str, layers: int, strategy: str) -> DerivePreview:
    """Which layers the student keeps and the parameter count before → after."""
    from core.llm.base import BackendError
    from core.models.derive import estimate_params, select_layers

    total = teacher_layers(ws, teacher)
    try:
        keep = select_layers(total, int(layers), strategy)
        before, after = estimate_params(_teacher_dir(ws, teacher), keep)
    except (ValueError, BackendError, OSError) as e:
        raise DeriveProblem(str(e)) from e
    return DerivePreview(keep, total, before, after)


def job_report(jobs: Any, job_id: str, words: Mapping[str, str] | None = None, say: Callable[[Any], str] = str,
               report_text: Callable[[Any], str] | None = None) -> tuple[str, bool]:
    """(markdown, finished) of a derive or demo job: its status line, the last thing the worker said and, once a
    derive succeeded, its report (what pruning cost before training). Raises JobNotFound for a deleted job. The
    studio words the event (a `core.said.Said` with the code it was recorded with) with `say` and the report (a
    DeriveReport) with `report_text`; the English otherwise."""
    from core.models.derive import read_report
    from core.said import Said

    info = jobs.get(job_id)
    events = [Said(str(m["event"]), m.get("event_code"), m.get("event_params"))
              for m in jobs.metrics(job_id) if "event" in m]
    parts = [status_line(info, words)]
    if events:
        parts.append(say(events[-1]))
    report = read_report(info.run_dir) if info.status == "succeeded" else None
    if report is not None:
        parts.append(report_text(report) if report_text else report.summary())
    return "\n\n".join(parts), bool(info.finished)
