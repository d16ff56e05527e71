"""Start here: run a preset, or walk the first distillation (Synthesize → Train → Compare) with three choices.

Widgets and wiring only: the recipe, the names of what each stage produces and the checks live in core.flow and
core.presets; the model and dataset lists come from core.pickers; a stage's job line from core.jobs.summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core import flow, pickers
from core.config import dump_yaml
from core.devices import discover_gpus
from core.errors import UserError
from core.jobs import summary
from core.presets import check_machine, find_preset, list_presets
from studio.job_panel import live_timer
from studio.ui import UIContext

STAGES = ("synth", "train", "compare")


def stage_line(ui: UIContext, job_id: str | None, produces: str) -> str:
    """One line per stage: the job's status line (core.jobs.summary) and where its result goes."""
    if not job_id:
        return ""
    try:
        info = ui.jobs().get(job_id)
    except LookupError:  # deleted in the Jobs tab meanwhile
        return ui.t("start.stage_gone", job=job_id)
    return summary.status_line(info, ui.job_words(), suffix=f" → {produces}" if produces else "")


@dataclass
class _Guided:
    """The guided flow's components, shared by the wiring functions."""

    teacher: Any
    student: Any
    dataset: Any
    demo_pair: Any
    demo_data: Any
    refresh: Any
    buttons: dict[str, Any]
    message: Any
    lines: dict[str, Any]
    state: Any
    timer: Any

    @property
    def choices(self) -> list[Any]:
        return [self.teacher, self.student, self.dataset, self.state]


def build(ui: UIContext) -> None:
    ui.reg("start.intro", gr.Markdown(ui.t("start.intro"), elem_id="eds-start-intro"))
    _presets(ui)
    g = _guided_layout(ui)
    _wire_lists(ui, g)
    _wire_stages(ui, g)
    ui.after_build(lambda: _wire_compare(ui, g))


def _presets(ui: UIContext) -> None:
    """The preset picker: what it runs and whether this machine can, its YAML and command, and Run."""
    ws = ui.workspace
    with ui.reg("start.presets", gr.Accordion(ui.t("start.presets"), open=False, elem_id="eds-start-presets")):
        presets = list_presets(ws)
        with gr.Row():
            preset = ui.reg("start.preset", gr.Dropdown(
                choices=[(p.title(ui.lang), p.name) for p in presets], value=presets[0].name if presets else None,
                label=ui.t("start.preset"), elem_id="eds-start-preset", scale=4))
            run_preset = ui.reg("start.run_preset", gr.Button(ui.t("start.run_preset"), variant="primary", scale=1,
                                                              elem_id="eds-start-run-preset"))
        preset_info = gr.Markdown(elem_id="eds-start-preset-info")
        preset_yaml = gr.Code(language="yaml", label="YAML", interactive=False, elem_id="eds-start-preset-yaml")

    def show_preset(name: str | None):
        if not name:
            return "", ""
        p = find_preset(name, ws)
        problems = check_machine(p, discover_gpus(), ws)
        needs = ui.t("start.runs_here") if not problems else ui.t("start.cannot_run") + " " + "; ".join(problems)
        cmd = f"`easydistill --workspace {ws.root} --config {p.path}`"
        return f"{p.description(ui.lang)}\n\n**{needs}** · {p.meta.needs.minutes}\n\n{cmd}", dump_yaml(p.config)

    def submit_preset(name: str | None):
        if not name:
            return ui.t("start.choose_preset")
        p = find_preset(name, ws)
        problems = check_machine(p, discover_gpus(), ws)
        if problems:
            return ui.t("start.cannot_run") + " " + "; ".join(problems)
        try:
            job = ui.jobs().submit(p.config, name=p.name)
        except UserError as e:
            return ui.t("start.error", error=ui.error_text(e))
        return ui.t("start.submitted", job=job)

    preset.change(show_preset, preset, [preset_info, preset_yaml])
    run_preset.click(submit_preset, preset, preset_info)


def _guided_layout(ui: UIContext) -> _Guided:
    ui.reg("start.guided", gr.Markdown(f"### {ui.t('start.guided')}"), "value")
    models = pickers.model_choices(ui.workspace)
    with gr.Row():
        teacher = ui.reg("start.teacher", gr.Dropdown(choices=models, label=ui.t("start.teacher"),
                                                      elem_id="eds-start-teacher", allow_custom_value=True))
        student = ui.reg("start.student", gr.Dropdown(choices=models, label=ui.t("start.student"),
                                                      elem_id="eds-start-student", allow_custom_value=True))
        demo_pair = ui.reg("start.demo_pair", gr.Button(ui.t("start.demo_pair"), elem_id="eds-start-demo-pair"))
    with gr.Row():
        dataset = ui.reg("start.dataset", gr.Dropdown(choices=pickers.dataset_choices(ui.workspace),
                                                      label=ui.t("start.dataset"), elem_id="eds-start-dataset"))
        demo_data = ui.reg("start.demo_data", gr.Button(ui.t("start.demo_data"), elem_id="eds-start-demo-data"))
        refresh = ui.reg("start.refresh", gr.Button(ui.t("start.refresh"), elem_id="eds-start-refresh"))
    with gr.Row():
        buttons = {s: ui.reg(f"start.{s}", gr.Button(ui.t(f"start.{s}"), variant="primary",
                                                     elem_id=f"eds-start-{s}")) for s in STAGES}
    message = gr.Markdown(elem_id="eds-start-message")
    lines = {s: gr.Markdown(elem_id=f"eds-start-{s}-status") for s in STAGES}
    return _Guided(teacher, student, dataset, demo_pair, demo_data, refresh, buttons, message, lines, gr.State({}),
                   live_timer(ui, 2.0))


def _wire_lists(ui: UIContext, g: _Guided) -> None:
    """The demo pair / demo data buttons and Refresh: fill the pickers from the workspace."""
    ws = ui.workspace

    def use_demo_pair():
        from core.config.train import PrepareDemoJob
        from core.models.demo import STUDENT_NAME, TEACHER_NAME

        choices = pickers.model_choices(ws)
        msg = ui.t("start.demo_ready")
        if not {TEACHER_NAME, STUDENT_NAME} <= {v for _, v in choices}:
            job = ui.jobs().submit(PrepareDemoJob(), name="prepare demo pair")
            msg = ui.t("start.demo_preparing", job=job)
        return (gr.update(choices=choices, value=TEACHER_NAME), gr.update(choices=choices, value=STUDENT_NAME), msg)

    def use_demo_data():
        name = flow.ensure_demo_dataset(ws)
        return gr.update(choices=pickers.dataset_choices(ws), value=name), ui.t("start.data_ready", name=name)

    def refresh_lists(t, s, d):
        models = pickers.model_choices(ws)
        return (gr.update(choices=models, value=t), gr.update(choices=models, value=s),
                gr.update(choices=pickers.dataset_choices(ws), value=d))

    g.demo_pair.click(use_demo_pair, None, [g.teacher, g.student, g.message])
    g.demo_data.click(use_demo_data, None, [g.dataset, g.message])
    g.refresh.click(refresh_lists, [g.teacher, g.student, g.dataset], [g.teacher, g.student, g.dataset])


def _wire_stages(ui: UIContext, g: _Guided) -> None:
    """① Synthesize and ② Train submit their stage's job; the timer follows every stage's job until all ended."""
    ws = ui.workspace

    def synthesize(t, s, d, st: dict):
        try:
            plan = flow.make_plan(t, s, d, ws)
            flow.prepare_data(plan, ws)
            job = ui.jobs().submit(flow.synthesize_job(plan))
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st))
        st = {**st, "synth": job, "synth_out": f"{plan.labelled}, {plan.heldout_labelled}"}
        return ui.t("start.synth_submitted", datasets=st["synth_out"]), st, gr.Timer(active=True)

    def train(t, s, d, st: dict):
        try:
            plan = flow.make_plan(t, s, d, ws)
            if plan.labelled not in pickers.dataset_choices(ws):
                return ui.t("start.error", error=ui.t("start.synth_first")), st, gr.Timer(active=bool(st))
            kd, why = flow.logit_kd_possible(plan, ws)
            job = ui.jobs().submit(flow.train_job(plan, kd))
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st))
        out = flow.final_student(plan, kd)
        st = {**st, "train": job, "train_out": out, "kd": kd}
        return ui.t("start.train_submitted", model=out, why=why), st, gr.Timer(active=True)

    for stage, fn in (("synth", synthesize), ("train", train)):
        g.buttons[stage].click(fn, g.choices, [g.message, g.state, g.timer])

    def active(job_id: str) -> bool:
        try:
            return not ui.jobs().get(job_id).finished
        except LookupError:
            return False

    def tick(st: dict):
        out = [stage_line(ui, st.get(s), st.get(f"{s}_out", "")) for s in STAGES]
        running = any(st.get(s) and active(st[s]) for s in STAGES)
        return [*out, gr.Timer(active=running)]

    g.timer.tick(tick, g.state, [*g.lines.values(), g.timer], show_progress="hidden")


def _wire_compare(ui: UIContext, g: _Guided) -> None:
    """③ Compare submits the before/after evaluation and fills the Chat tab's two columns (teacher | student)."""
    ws = ui.workspace
    chat = [c for c in (ui.shared.get("chat.model0"), ui.shared.get("chat.model1")) if c is not None]
    outputs: list[Any] = [g.message, g.state, g.timer, ui.shared["tabs"], *chat]

    def compare(t, s, d, st: dict):
        keep = (gr.update(),) * (len(outputs) - 3)
        try:
            plan = flow.make_plan(t, s, d, ws)
            kd = st.get("kd")
            if kd is None:
                kd = flow.logit_kd_possible(plan, ws)[0]
            final = flow.final_student(plan, kd)
            if final not in pickers.local_model_names(ws):
                return ui.t("start.error", error=ui.t("start.train_first", model=final)), st, \
                    gr.Timer(active=bool(st)), *keep
            job = ui.jobs().submit(flow.compare_job(plan, kd))
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st)), *keep
        st = {**st, "compare": job, "compare_out": ui.t("start.compare_out")}
        models = pickers.model_choices(ws)
        picked = (gr.update(choices=models, value=t), gr.update(choices=models, value=final))
        return (ui.t("start.compare_submitted", model=final), st, gr.Timer(active=True), gr.Tabs(selected="chat"),
                *picked[:len(chat)])

    g.buttons["compare"].click(compare, g.choices, outputs)


def _refused(ui: UIContext, e: UserError) -> str:
    """A refusal (a missing choice, an unknown model, a refused device request) as the message under the buttons."""
    return ui.t("start.error", error=ui.error_text(e))
