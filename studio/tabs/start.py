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
from studio.i18n import LANGS
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
    rows: Any
    rows_for: Any  # the dataset the rows slider was last set for (a click racing a dataset change uses all rows);
    # a hidden textbox, not a gr.State: it must change in the browser together with the slider, not before it
    estimate: Any
    demo_pair: Any
    demo_data: Any
    refresh: Any
    buttons: dict[str, Any]
    message: Any
    lines: dict[str, Any]
    state: Any
    timer: Any
    offer: Any  # the row with Resume ② / Start ② over, shown when ② finds a stopped job of the same plan
    resume: Any
    fresh: Any

    @property
    def choices(self) -> list[Any]:
        return [self.teacher, self.student, self.dataset, self.rows, self.rows_for, self.state]

    @property
    def picks(self) -> list[Any]:
        return [self.teacher, self.student, self.dataset, self.rows]


def build(ui: UIContext) -> None:
    ui.reg("start.intro", gr.Markdown(ui.t("start.intro"), elem_id="eds-start-intro"))
    _presets(ui)
    g = _guided_layout(ui)
    _wire_lists(ui, g)
    _wire_rows(ui, g)
    _wire_stages(ui, g)
    _wire_train(ui, g)
    ui.after_build(lambda: _wire_compare(ui, g))


def _presets(ui: UIContext) -> None:
    """The preset picker: what it runs and whether this machine can, its YAML and command, and Run."""
    ws = ui.workspace
    with ui.reg("start.presets", gr.Accordion(ui.t("start.presets"), open=False, elem_id="eds-start-presets")):
        presets = list_presets(ws)
        with gr.Row():
            titles = tuple(({lang: p.title(lang) for lang in LANGS}, p.name) for p in presets)
            preset = ui.reg("start.preset", gr.Dropdown(
                choices=ui.choices(titles), value=presets[0].name if presets else None,
                label=ui.t("start.preset"), elem_id="eds-start-preset", scale=4), choices=titles)
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
    ui.on_language(show_preset, [preset], [preset_info, preset_yaml])
    run_preset.click(submit_preset, preset, preset_info)


def _guided_layout(ui: UIContext) -> _Guided:
    ui.reg("start.guided", gr.Markdown(f"### {ui.t('start.guided')}"), "value", template="### {}")
    ws = ui.workspace
    models, pair = pickers.model_choices(ws), flow.default_pair(ws)  # a fresh page: refreshed on each load too
    with gr.Row():
        teacher = ui.reg("start.teacher", gr.Dropdown(choices=models, value=pair.teacher, label=ui.t("start.teacher"),
                                                      elem_id="eds-start-teacher", allow_custom_value=True))
        student = ui.reg("start.student", gr.Dropdown(choices=models, value=pair.student, label=ui.t("start.student"),
                                                      elem_id="eds-start-student", allow_custom_value=True))
        demo_pair = ui.reg("start.demo_pair", gr.Button(ui.t("start.demo_pair"), elem_id="eds-start-demo-pair"))
    with gr.Row():
        datasets = pickers.dataset_choices(ws)
        dataset = ui.reg("start.dataset", gr.Dropdown(choices=datasets, value=datasets[0] if datasets else None,
                                                      label=ui.t("start.dataset"), elem_id="eds-start-dataset"))
        demo_data = ui.reg("start.demo_data", gr.Button(ui.t("start.demo_data"), elem_id="eds-start-demo-data"))
        refresh = ui.reg("start.refresh", gr.Button(ui.t("start.refresh"), elem_id="eds-start-refresh"))
    with gr.Row():
        total = flow.dataset_rows(ws, datasets[0]) if datasets else None
        rows = ui.reg("start.rows", gr.Slider(label=ui.t("start.rows"), info=ui.t("start.rows_info"), step=1,
                                              elem_id="eds-start-rows", scale=2, **_rows_range(total)),
                      "label", "info")
        estimate = gr.Markdown(elem_id="eds-start-estimate")
    with gr.Row():
        buttons = {s: ui.reg(f"start.{s}", gr.Button(ui.t(f"start.{s}"), variant="primary",
                                                     elem_id=f"eds-start-{s}")) for s in STAGES}
    with gr.Row(visible=False) as offer:
        resume = ui.reg("start.resume", gr.Button(ui.t("start.resume"), variant="primary", elem_id="eds-start-resume"))
        fresh = ui.reg("start.fresh", gr.Button(ui.t("start.fresh"), elem_id="eds-start-fresh"))
    message = gr.Markdown(ui.t("start.only_one", model=pair.only) if pair.only else "", elem_id="eds-start-message")
    lines = {s: gr.Markdown(elem_id=f"eds-start-{s}-status") for s in STAGES}
    rows_for = gr.Textbox(datasets[0] if datasets else "", visible=False)
    return _Guided(teacher, student, dataset, rows, rows_for, estimate, demo_pair, demo_data, refresh, buttons, message,
                   lines, gr.State({}), live_timer(ui, 2.0), offer, resume, fresh)


def _rows_range(total: int | None) -> dict[str, Any]:
    """The rows slider for a dataset of `total` rows: from MIN_ROWS to all of them, all chosen (a slider needs a
    range: a dataset of MIN_ROWS or fewer gets a fixed one, and every value of it means all rows)."""
    top = max(total or 0, flow.MIN_ROWS + 1)
    return {"minimum": flow.MIN_ROWS, "maximum": top, "value": top,
            "interactive": bool(total and total > flow.MIN_ROWS)}


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


def _wire_rows(ui: UIContext, g: _Guided) -> None:
    """A fresh page's defaults (a distinct teacher and student, the rows of the dataset), and the estimate of the
    time the choices imply (core.flow.estimate_for), kept current as they change."""
    ws = ui.workspace

    def estimate(t, s, d, n) -> str:
        est = flow.estimate_for(t, s, d, n, ws)
        return _estimate_text(ui, est) if est else ""

    def on_load():
        models, pair, datasets = pickers.model_choices(ws), flow.default_pair(ws), pickers.dataset_choices(ws)
        d = datasets[0] if datasets else None
        total = flow.dataset_rows(ws, d)
        return (gr.update(choices=models, value=pair.teacher), gr.update(choices=models, value=pair.student),
                gr.update(choices=datasets, value=d), gr.update(**_rows_range(total)),
                d, estimate(pair.teacher, pair.student, d, total),
                ui.t("start.only_one", model=pair.only) if pair.only else "")

    def on_dataset(t, s, d):
        total = flow.dataset_rows(ws, d)
        return gr.update(**_rows_range(total)), d, estimate(t, s, d, total)

    gr.on(None, on_load, None, [*g.picks, g.rows_for, g.estimate, g.message], show_progress="hidden")
    g.dataset.change(on_dataset, [g.teacher, g.student, g.dataset], [g.rows, g.rows_for, g.estimate],
                     show_progress="hidden")
    for picker in (g.teacher, g.student, g.rows):
        picker.change(estimate, g.picks, g.estimate, show_progress="hidden", trigger_mode="always_last")
    ui.on_language(estimate, g.picks, [g.estimate])


def _rows(n: float | None, rows_for: str | None, dataset: str | None) -> float | None:
    """The rows to use: the slider's value when it was set for this dataset, else all (None)."""
    return n if rows_for == dataset else None


def _estimate_text(ui: UIContext, est: flow.Estimate) -> str:
    """"⏱ Estimated time: ≈ 13 min for 265 training + 29 held-out rows — ① labelling ≈ 3 min · ② training ≈ 9 min
    (KD 300 steps) · ③ evaluating ≈ 1 min.", and what the figures rest on."""
    def mins(seconds: float) -> str:
        n = flow.minutes(seconds)
        return ui.t("start.minutes", n=n) if n else ui.t("start.under_a_minute")

    steps = (ui.t("start.steps_kd", kd=est.kd_steps) if est.kd_steps else ui.t("start.steps_sft", sft=est.sft_steps))
    synth = mins(est.synth_s) if est.synth_s is not None else ui.t("start.estimate_api")
    text = ui.t("start.estimate", total=mins(est.total_s), train=est.train_rows, heldout=est.heldout_rows,
                synth=synth, training=mins(est.train_s), steps=steps, compare=mins(est.compare_s))
    return f"{text}  \n{ui.t('start.estimate_scaled' if est.scaled else 'start.estimate_basis')}"


def _wire_stages(ui: UIContext, g: _Guided) -> None:
    """① Synthesize submits its stage's job (② and ③: _wire_train, _wire_compare); the timer follows every stage's job
    until all ended."""
    ws = ui.workspace

    def synthesize(t, s, d, n, nd, st: dict):
        try:
            plan = flow.make_plan(t, s, d, ws, _rows(n, nd, d))
            flow.prepare_data(plan, ws)
            job = ui.jobs().submit(flow.synthesize_job(plan))
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st))
        st = {**st, "synth": job, "synth_out": f"{plan.labelled}, {plan.heldout_labelled}"}
        return ui.t("start.synth_submitted", datasets=st["synth_out"]), st, gr.Timer(active=True)

    g.buttons["synth"].click(synthesize, g.choices, [g.message, g.state, g.timer])

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
    ui.on_language(tick, [g.state], [*g.lines.values(), g.timer])


def _wire_train(ui: UIContext, g: _Guided) -> None:
    """② Train starts training, unless the same plan's ② job was stopped (or failed after saving): then it offers
    Resume ② (continues from its checkpoint) and Start ② over; a running or finished ② is said, not doubled."""
    ws = ui.workspace
    shown = (gr.update(visible=True),)
    hidden = (gr.update(visible=False),)

    def submit(plan: flow.FlowPlan, st: dict, kd_why: tuple | None = None) -> tuple:
        kd, why = kd_why or flow.logit_kd_possible(plan, ws)
        job = ui.jobs().submit(flow.train_job(plan, kd, flow.dataset_rows(ws, plan.labelled)))
        out = flow.final_student(plan, kd)
        st = {**st, "train": job, "train_out": out, "kd": kd}
        return ui.t("start.train_submitted", model=out, why=ui.said(why)), st, gr.Timer(active=True), *hidden

    def train(t, s, d, n, nd, st: dict):
        try:
            plan = flow.make_plan(t, s, d, ws, _rows(n, nd, d))
            if plan.labelled not in pickers.dataset_choices(ws):
                return ui.t("start.error", error=ui.t("start.synth_first")), st, gr.Timer(active=bool(st)), *hidden
            offer = flow.train_offer(ui.jobs(), plan)
            if offer.action == flow.START:
                return submit(plan, st)
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st)), *hidden
        info = offer.job
        st = {**st, "train": info.id, "train_out": flow.final_student(plan, flow.used_kd(info))}
        progress = summary.progress_text(info, ui.job_words())
        if offer.action == flow.RUNNING:
            return ui.t("start.train_running", job=info.id, progress=progress), st, gr.Timer(active=True), *hidden
        if offer.action == flow.DONE:
            return ui.t("start.train_done", job=info.id), st, gr.Timer(active=True), *hidden
        text = ui.t("start.train_offer", progress=progress, point=_point_text(ui, offer.point))
        return text, st, gr.Timer(active=True), *shown

    def resume(st: dict):
        job = st.get("train")
        text = ui.job_action("resume", job, "start.train_resumed", "start.no_train_job")
        return text, st, gr.Timer(active=True), *hidden

    def fresh(t, s, d, n, nd, st: dict):
        try:
            plan = flow.make_plan(t, s, d, ws, _rows(n, nd, d))
            kd_why = flow.logit_kd_possible(plan, ws)
            blockers = flow.fresh_start_blockers(plan, ws, kd_why[0])
            if blockers:
                models = ", ".join(f"`{b}`" for b in blockers)
                return ui.t("start.fresh_blocked", models=models), st, gr.Timer(active=bool(st)), *shown
            return submit(plan, st, kd_why)
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st)), *shown

    outputs = [g.message, g.state, g.timer, g.offer]
    g.buttons["train"].click(train, g.choices, outputs)
    g.resume.click(resume, g.state, outputs)
    g.fresh.click(fresh, g.choices, outputs)


def _point_text(ui: UIContext, point: flow.ResumePoint | None) -> str:
    """What a resume continues from, in words."""
    if point is None:
        return ui.t("start.point_none")
    parts = [ui.t("start.point_done", steps=", ".join(point.done))] if point.done else []
    if point.checkpoint is not None:
        parts.append(ui.t("start.point_checkpoint", step=point.checkpoint, stage=point.step))
    return " ".join(parts)


def _wire_compare(ui: UIContext, g: _Guided) -> None:
    """③ Compare submits the before/after evaluation and fills the Chat tab's two columns (teacher | student)."""
    ws = ui.workspace
    chat = [c for c in (ui.shared.get("chat.model0"), ui.shared.get("chat.model1")) if c is not None]
    outputs: list[Any] = [g.message, g.state, g.timer, ui.shared["tabs"], *chat]

    def chat_with(t: str, model: str) -> tuple:
        models = pickers.model_choices(ws)
        return (gr.Tabs(selected="chat"), *(gr.update(choices=models, value=t), gr.update(choices=models,
                                                                                           value=model))[:len(chat)])

    def compare(t, s, d, n, nd, st: dict):
        keep = (gr.update(),) * (len(outputs) - 3)
        try:
            plan = flow.make_plan(t, s, d, ws, _rows(n, nd, d))
            trained = flow.latest_train_job(ui.jobs(), plan)
            kd = flow.used_kd(trained) if trained and trained.steps else st.get("kd")
            if kd is None:
                kd = flow.logit_kd_possible(plan, ws)[0]
            final = flow.final_student(plan, kd)
            progress = summary.progress_text(trained, ui.job_words()) if trained else ""
            if final not in pickers.local_model_names(ws):
                if trained is None:
                    return ui.t("start.error", error=ui.t("start.train_first", model=final)), st, \
                        gr.Timer(active=bool(st)), *keep
                text = ui.t("start.compare_unfinished", progress=progress, model=final, student=plan.student)
                return text, st, gr.Timer(active=bool(st)), *chat_with(t, plan.student)
            job = ui.jobs().submit(flow.compare_job(plan, kd))
        except UserError as e:
            return _refused(ui, e), st, gr.Timer(active=bool(st)), *keep
        st = {**st, "compare": job, "compare_out": ui.t("start.compare_out")}
        text = ui.t("start.compare_submitted", model=final)
        if progress:
            text += " " + ui.t("start.train_state", progress=progress)
        return text, st, gr.Timer(active=True), *chat_with(t, final)

    g.buttons["compare"].click(compare, g.choices, outputs)


def _refused(ui: UIContext, e: UserError) -> str:
    """A refusal (a missing choice, an unknown model, a refused device request) as the message under the buttons."""
    return ui.t("start.error", error=ui.error_text(e))
