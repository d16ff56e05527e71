"""The job controls a tab section shares with others: Start (submit the form) / Stop / Resume with a job picker and a
message line, the picked job's status line, "the dataset the job wrote" for buttons that hand it on, and the live
timers every status panel polls with.

Widgets stay in the tab; this wires them, so the Curation tab and the Training tab's pairs section do it one way.

Live status: a panel's timer (`live_timer`) ticks while a job it shows runs and sleeps otherwise (its tick returns
`gr.Timer(active=...)`). A job can start running again without the panel doing anything (Resume in the Jobs tab, the
CLI), so every tab switch wakes every panel's timer: its next tick shows the job's latest attempt, and it sleeps
again if nothing it shows runs. A resume keeps the job's id (a new attempt in the same run folder), so following the
id is following the latest attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from core.errors import UserError
from studio.forms import FormView
from studio.ui import UIContext

LIVE_TIMERS = "job_panel.live_timers"  # ui.shared key: every status panel's timer
TIMER_OF = "job_panel.timer_of"  # ui.shared key: id(job picker) -> the timer of its status line


def live_timer(ui: UIContext, seconds: float) -> Any:
    """A status panel's timer. Active at first (its first tick finds what already runs, then it sleeps if nothing
    does); woken by every tab switch."""
    return _register(ui, gr.Timer(seconds, active=True))


def _register(ui: UIContext, timer: Any) -> Any:
    timers = ui.shared.get(LIVE_TIMERS)
    if timers is None:
        timers = ui.shared[LIVE_TIMERS] = []
        ui.after_build(lambda: _wake_on_tab_switch(ui, timers))
    if timer not in timers:
        timers.append(timer)
    return timer


def _wake_on_tab_switch(ui: UIContext, timers: list[Any]) -> None:
    tabs = [r.component for r in ui.registry if isinstance(r.component, gr.Tab)]
    for tab in tabs:
        tab.select(lambda: [gr.Timer(active=True)] * len(timers), None, timers, show_progress="hidden")


def running(info: Any) -> bool:
    """Whether a panel showing this job should keep polling (queued or active)."""
    return info is not None and not info.finished


def follow(current: str | None, pinned: bool, infos: list[Any]) -> str | None:
    """The job a panel shows next: the one picked by hand (`pinned`) stays; otherwise the panel follows the newest job
    still queued or running once the one it shows has ended (or when it shows none). `infos`: newest first."""
    shown = next((i for i in infos if i.id == current), None)
    if pinned and shown is not None:
        return current
    if shown is not None and running(shown):
        return current
    newest = next((i.id for i in infos if running(i)), None)
    return newest or (current if shown is not None else None)


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

    def wake_status_line() -> None:  # a resumed job runs again: its status line's timer (wire_status_lines) polls
        timer = ui.shared.get(TIMER_OF, {}).get(id(job))
        if timer is not None:
            resume.click(lambda: gr.Timer(active=True), None, timer, show_progress="hidden")

    ui.after_build(wake_status_line)
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
    """Each picked job's status line, on every timer tick and when another job is picked. The timer sleeps while no
    picked job runs, and is woken by tab switches and by picking a job (see `live_timer`)."""
    _register(ui, timer)
    for job in jobs:
        ui.shared.setdefault(TIMER_OF, {})[id(job)] = timer

    def tick(*ids: str | None) -> tuple[Any, ...]:
        return (*(status_line(ui, j) for j in ids), gr.Timer(active=any(_runs(ui, j) for j in ids)))

    timer.tick(tick, jobs, [*lines, timer], show_progress="hidden")
    for job, out in zip(jobs, lines, strict=True):
        job.change(lambda j: (status_line(ui, j), gr.Timer(active=True)), job, [out, timer], show_progress="hidden")


def _runs(ui: UIContext, job_id: str | None) -> bool:
    if not job_id:
        return False
    try:
        return running(ui.jobs().get(job_id, refresh=False))
    except UserError:
        return False


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
