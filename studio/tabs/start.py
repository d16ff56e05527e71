"""Start here: run a preset, or walk the first distillation (Synthesize → Train → Compare) with three choices.

Thin: the recipe, the names of what each stage produces and the checks live in core.flow and core.presets.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.config import ConfigError, dump_yaml
from core.devices import discover_gpus
from core.presets import check_machine, find_preset, list_presets
from studio.ui import UIContext

STAGES = ("synth", "train", "compare")


def _models(ui: UIContext) -> list[tuple[str, str]]:
    from core.chat.servers import model_choices

    return model_choices(ui.workspace)


def _datasets(ui: UIContext) -> list[str]:
    from core.data.store import dataset_names

    return dataset_names(ui.workspace)


def stage_line(ui: UIContext, job_id: str | None, produces: str) -> str:
    """One line per stage: job, status, progress, and where its result goes."""
    if not job_id:
        return ""
    try:
        info = ui.jobs().get(job_id)
    except LookupError:  # deleted in the Jobs tab meanwhile
        return ui.t("start.stage_gone", job=job_id)
    pct = "" if info.progress is None else f" · {100 * info.progress:.0f}%"
    step = f" · {info.step}" if info.step else ""
    reason = f" — {info.reason}" if info.reason and info.status != "succeeded" else ""
    return ui.t("start.stage_line", job=job_id, status=info.status, progress=pct + step, produces=produces) + reason


def build(ui: UIContext) -> None:
    def _active(job_id: str) -> bool:
        try:
            return not ui.jobs().get(job_id).finished
        except LookupError:
            return False

    ws = ui.workspace
    ui.reg("start.intro", gr.Markdown(ui.t("start.intro"), elem_id="eds-start-intro"))

    # -- presets ------------------------------------------------------------------------------------------------
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
        problems = check_machine(p, discover_gpus())
        needs = ui.t("start.runs_here") if not problems else ui.t("start.cannot_run") + " " + "; ".join(problems)
        cmd = f"`easydistill --workspace {ws.root} --config {p.path}`"
        return f"{p.description(ui.lang)}\n\n**{needs}** · {p.meta.needs.minutes}\n\n{cmd}", dump_yaml(p.config)

    def submit_preset(name: str | None):
        if not name:
            return ui.t("start.choose_preset")
        p = find_preset(name, ws)
        problems = check_machine(p, discover_gpus())
        if problems:
            return ui.t("start.cannot_run") + " " + "; ".join(problems)
        job = ui.jobs().submit(p.config, name=p.name)
        return ui.t("start.submitted", job=job)

    preset.change(show_preset, preset, [preset_info, preset_yaml])
    run_preset.click(submit_preset, preset, preset_info)

    # -- guided flow --------------------------------------------------------------------------------------------
    ui.reg("start.guided", gr.Markdown(f"### {ui.t('start.guided')}"), "value")
    models = _models(ui)
    with gr.Row():
        teacher = ui.reg("start.teacher", gr.Dropdown(choices=models, label=ui.t("start.teacher"),
                                                      elem_id="eds-start-teacher", allow_custom_value=True))
        student = ui.reg("start.student", gr.Dropdown(choices=models, label=ui.t("start.student"),
                                                      elem_id="eds-start-student", allow_custom_value=True))
        demo_pair = ui.reg("start.demo_pair", gr.Button(ui.t("start.demo_pair"), elem_id="eds-start-demo-pair"))
    with gr.Row():
        dataset = ui.reg("start.dataset", gr.Dropdown(choices=_datasets(ui), label=ui.t("start.dataset"),
                                                      elem_id="eds-start-dataset"))
        demo_data = ui.reg("start.demo_data", gr.Button(ui.t("start.demo_data"), elem_id="eds-start-demo-data"))
        refresh = ui.reg("start.refresh", gr.Button(ui.t("start.refresh"), elem_id="eds-start-refresh"))
    with gr.Row():
        buttons = {s: ui.reg(f"start.{s}", gr.Button(ui.t(f"start.{s}"), variant="primary",
                                                     elem_id=f"eds-start-{s}")) for s in STAGES}
    message = gr.Markdown(elem_id="eds-start-message")
    lines = {s: gr.Markdown(elem_id=f"eds-start-{s}-status") for s in STAGES}
    state = gr.State({})
    timer = gr.Timer(2.0, active=False)

    def use_demo_pair():
        from core.config.train import PrepareDemoJob
        from core.models.demo import STUDENT_NAME, TEACHER_NAME

        choices = _models(ui)
        have = {v for _, v in choices}
        msg = ui.t("start.demo_ready")
        if not {TEACHER_NAME, STUDENT_NAME} <= have:
            job = ui.jobs().submit(PrepareDemoJob(), name="prepare demo pair")
            msg = ui.t("start.demo_preparing", job=job)
        return (gr.update(choices=choices, value=TEACHER_NAME), gr.update(choices=choices, value=STUDENT_NAME), msg)

    def use_demo_data():
        from core.flow import ensure_demo_dataset

        name = ensure_demo_dataset(ws)
        return gr.update(choices=_datasets(ui), value=name), ui.t("start.data_ready", name=name)

    def refresh_lists(t, s, d):
        models = _models(ui)
        return (gr.update(choices=models, value=t), gr.update(choices=models, value=s),
                gr.update(choices=_datasets(ui), value=d))

    demo_pair.click(use_demo_pair, None, [teacher, student, message])
    demo_data.click(use_demo_data, None, [dataset, message])
    refresh.click(refresh_lists, [teacher, student, dataset], [teacher, student, dataset])

    def plan_of(t, s, d):
        from core.flow import make_plan

        return make_plan(t, s, d, ws)

    def synthesize(t, s, d, st: dict):
        from core.flow import prepare_data, synthesize_job

        try:
            plan = plan_of(t, s, d)
            prepare_data(plan, ws)
            job = ui.jobs().submit(synthesize_job(plan))
        except (ValueError, ConfigError, OSError) as e:
            return ui.t("start.error", error=e), st, gr.Timer(active=bool(st))
        st = {**st, "synth": job, "synth_out": f"{plan.labelled}, {plan.heldout_labelled}"}
        return ui.t("start.synth_submitted", datasets=st["synth_out"]), st, gr.Timer(active=True)

    def train(t, s, d, st: dict):
        from core.flow import logit_kd_possible, train_job

        try:
            plan = plan_of(t, s, d)
            if not (ws.datasets / f"{plan.labelled}.jsonl").exists():
                raise ValueError(ui.t("start.synth_first"))
            kd, why = logit_kd_possible(plan, ws)
            job = ui.jobs().submit(train_job(plan, kd))
        except (ValueError, ConfigError, OSError) as e:
            return ui.t("start.error", error=e), st, gr.Timer(active=bool(st))
        out = plan.student_kd if kd else plan.student_sft
        st = {**st, "train": job, "train_out": out, "kd": kd}
        return ui.t("start.train_submitted", model=out, why=why), st, gr.Timer(active=True)

    for stage, fn in (("synth", synthesize), ("train", train)):
        buttons[stage].click(fn, [teacher, student, dataset, state], [message, state, timer])

    def tick(st: dict):
        out = [stage_line(ui, st.get(s), st.get(f"{s}_out", "")) for s in STAGES]
        running = any(st.get(s) and _active(st[s]) for s in STAGES)
        return [*out, gr.Timer(active=running)]

    timer.tick(tick, state, [*lines.values(), timer], show_progress="hidden")

    def wire_compare() -> None:
        """Compare fills the Chat tab's first two columns (teacher | student) and opens it."""
        chat0, chat1, tabs = ui.shared.get("chat.model0"), ui.shared.get("chat.model1"), ui.shared["tabs"]

        def compare(t, s, d, st: dict):
            from core.flow import compare_job, final_student, logit_kd_possible

            keep = (gr.update(), gr.update(), gr.update())
            try:
                plan = plan_of(t, s, d)
                kd = st.get("kd")
                if kd is None:
                    kd = logit_kd_possible(plan, ws)[0]
                final = final_student(plan, kd)
                if not (ws.models / final).exists():
                    raise ValueError(ui.t("start.train_first", model=final))
                job = ui.jobs().submit(compare_job(plan, kd))
            except (ValueError, ConfigError, OSError) as e:
                return ui.t("start.error", error=e), st, gr.Timer(active=bool(st)), *keep
            st = {**st, "compare": job, "compare_out": ui.t("start.compare_out")}
            models = _models(ui)
            return (ui.t("start.compare_submitted", model=final), st, gr.Timer(active=True), gr.Tabs(selected="chat"),
                    gr.update(choices=models, value=t), gr.update(choices=models, value=final))

        outputs: list[Any] = [message, state, timer, tabs]
        outputs += [c for c in (chat0, chat1) if c is not None]

        def compare_wired(t, s, d, st):
            result = compare(t, s, d, st)
            return result[: len(outputs)]

        buttons["compare"].click(compare_wired, [teacher, student, dataset, state], outputs)

    ui.after_build(wire_compare)
