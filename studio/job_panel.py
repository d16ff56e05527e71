"""The job controls a tab section shares with others: Start (submit the form) / Stop / Resume with a job picker and a
message line, the picked job's status line, and "the dataset the job wrote" for buttons that hand it on.

Widgets stay in the tab; this wires them, so the Curation tab and the Training tab's pairs section do it one way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from core.errors import UserError
from studio.forms import FormView
from studio.ui import UIContext


def job_choices(ui: UIContext, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    from core.pickers import job_choices as choices

    return choices(ui.jobs(), kinds)


def wire_job_buttons(ui: UIContext, view: FormView, buttons: tuple[Any, Any, Any], job: Any, message: Any,
                     prefix: str, kinds: tuple[str, ...]) -> None:
    """Start submits the form's job and picks it; Stop / Resume act on the picked job. Messages are `<prefix>.started`,
    `.stopping`, `.resumed`, `.no_job`."""
    start, stop, resume = buttons

    def on_start(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            job_id = ui.jobs().submit(view.build(data))
        except UserError as e:  # a field to fix, a path outside the workspace
            return {message: f"⚠️ {ui.error_text(e)}"}
        return {message: ui.t(f"{prefix}.started", job=job_id),
                job: gr.update(choices=job_choices(ui, kinds), value=job_id)}

    start.click(on_start, inputs=view.inputs(), outputs=[message, job])
    stop.click(lambda j: ui.job_action("stop", j, f"{prefix}.stopping", f"{prefix}.no_job"), job, message)
    resume.click(lambda j: ui.job_action("resume", j, f"{prefix}.resumed", f"{prefix}.no_job"), job, message)
    job.focus(lambda: gr.update(choices=job_choices(ui, kinds)), None, job, show_progress="hidden")


def status_line(ui: UIContext, job_id: str | None) -> Any:
    """The picked job's status line in the page's language (nothing to change when no job is picked)."""
    from core.jobs.summary import status_line as line

    if not job_id:
        return gr.skip()
    try:
        return line(ui.jobs().get(job_id), ui.job_words())
    except UserError as e:  # deleted, or an id typed by hand that names no job
        return f"⚠️ {ui.error_text(e)}"


def wire_status_lines(ui: UIContext, timer: Any, jobs: list[Any], lines: list[Any]) -> None:
    """Each picked job's status line, on every timer tick and when another job is picked."""
    timer.tick(lambda *ids: tuple(status_line(ui, j) for j in ids), jobs, lines, show_progress="hidden")
    for job, out in zip(jobs, lines, strict=True):
        job.change(lambda j: status_line(ui, j), job, out, show_progress="hidden")


def written_dataset(ui: UIContext, job_id: str | None, output_dataset: Callable[[Any, Any], str | None],
                    prefix: str, succeeded_only: bool = False) -> tuple[str | None, str]:
    """(the workspace dataset the picked job wrote, or None and the message saying why not: `<prefix>.no_job`,
    `<prefix>.not_written`)."""
    from core.forms.loading import config_of_job
    from core.pickers import dataset_choices

    if not job_id:
        return None, ui.t(f"{prefix}.no_job")
    try:
        done = not succeeded_only or ui.jobs().get(job_id).status == "succeeded"
        name = output_dataset(ui.workspace, config_of_job(ui.jobs(), job_id))
    except UserError as e:
        return None, f"⚠️ {ui.error_text(e)}"
    if not done or name is None or name not in dataset_choices(ui.workspace):
        return None, ui.t(f"{prefix}.not_written", job=job_id)
    return name, ""
