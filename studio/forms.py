"""Widgets for a core `JobForm`: one component per field, built from the field (widget kind, default, choices,
bounds, help), labelled through i18n, and the pieces every form gets for free — the YAML / CLI preview, "Save as
preset", and loading a YAML file or a past job's config back into the form.

A tab lays out sections and calls `view.render(...)` inside each; handlers receive the values by field name
(`view.values(data)` from a Gradio dict input), never a positional tuple. Labels: `<prefix>.<name>` in
studio/i18n/<lang>/<tab>.yaml; help: `<prefix>.<name>_info`, else the config field's description; choice labels:
`<prefix>.<name>_<value>`, else the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gradio as gr

from core.errors import UserError
from core.forms.fields import FieldSpec
from core.forms.form import FormError, JobForm
from studio.i18n import has
from studio.ui import UIContext, elem_id

RADIO_MAX = 4  # at most this many choices: radio buttons; more: a dropdown


def picker_choices(ui: UIContext, widget: str, optional: bool = False,
                   source: Callable[[Any], list[Any]] | None = None) -> list[Any]:
    """The current choices of a model / dataset / cache picker, or of a field whose `extra["choices_of"]` lists them
    (`source(workspace)`: endpoints, templates), with an empty first choice when the field is optional."""
    from core import pickers

    ws = ui.workspace
    found: list[Any] = source(ws) if source else {
        "model": lambda: pickers.model_choices(ws),
        "dataset": lambda: pickers.dataset_choices(ws),
        "cache": lambda: pickers.cache_choices(ws),
    }[widget]()
    return [("—", ""), *found] if optional else found


class FormView:
    """The widgets of one form in a tab. `prefix` is the i18n / elem-id prefix (e.g. "training")."""

    def __init__(self, ui: UIContext, prefix: str, form: JobForm):
        self.ui, self.prefix, self.form = ui, prefix, form
        self.specs = {f.name: f for f in form.fields}
        self.comps: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ widgets
    def render(self, *names: str, group: str | None = None, **kwargs: Any) -> list[Any]:
        """Create the components of the named fields (or of every field in `group`) where the layout is now."""
        chosen = list(names) or [f.name for f in self.form.fields if f.group == group and f.name not in self.comps]
        return [self._component(self.specs[n], **kwargs) for n in chosen]

    def _component(self, f: FieldSpec, **kwargs: Any) -> Any:
        t, key = self.ui.t, f"{self.prefix}.{f.name}"
        self.ui.shared.setdefault("form_fields", set()).add((self.prefix, f.name))  # tests check translations
        info_key = f"{key}_info"
        info = "" if f.widget == "code" else (t(info_key) if has(info_key) else f.help)  # gr.Code takes no info
        common: dict[str, Any] = {"label": t(key), "elem_id": elem_id(key), **f.extra.get("gradio", {}), **kwargs}
        if info:
            common["info"] = info
        choices: tuple[tuple[str, Any], ...] = ()
        w = f.widget
        if w == "bool":
            comp = gr.Checkbox(bool(f.default), **common)
        elif w in ("int", "float"):
            comp = gr.Number(f.default, precision=0 if w == "int" else None, minimum=f.minimum, maximum=f.maximum,
                             **common)
        elif w == "slider":
            comp = gr.Slider(f.minimum or 0, f.maximum if f.maximum is not None else 1, value=f.default,
                             step=f.step or 0.01, **common)
        elif w in ("choice", "multi"):
            choices = tuple((f"{key}_{v}", v) for v in f.choices)
            labelled = [(t(k) if has(k) else str(v), v) for k, v in choices]
            if w == "multi":
                comp = gr.CheckboxGroup(labelled, value=list(f.default or []), **common)
            elif len(labelled) <= RADIO_MAX or f.extra.get("radio"):  # a form's main switch stays radios
                comp = gr.Radio(labelled, value=f.default, **common)
            else:
                comp = gr.Dropdown(labelled, value=f.default, **common)
        elif w in ("model", "dataset", "cache") or "choices_of" in f.extra:
            src = f.extra.get("choices_of")
            comp = gr.Dropdown(picker_choices(self.ui, w, f.optional, src), value="" if f.optional else None,
                               allow_custom_value=True, **common)
            comp.focus(lambda w=w, o=f.optional, s=src: gr.update(choices=picker_choices(self.ui, w, o, s)), None,
                       comp, show_progress="hidden")
        elif w == "code":
            comp = gr.Code(f.default or "", language=f.extra.get("language"), **common)
        else:
            comp = gr.Textbox("" if f.default is None else str(f.default), **common)
        attrs = ("label", "info") if info else ("label",)
        self.ui.reg(key, comp, *attrs, choices=choices, fallback={"info": f.help} if info else {})
        self.comps[f.name] = comp
        return comp

    # ------------------------------------------------------------------------------------------ values
    def inputs(self) -> set[Any]:
        """A Gradio dict input of every rendered field (the handler gets {component: value})."""
        return set(self.comps.values())

    def values(self, data: dict[Any, Any]) -> dict[str, Any]:
        """{field name: value} from a Gradio dict input (other components in `data` are ignored)."""
        return {name: data[c] for name, c in self.comps.items() if c in data}

    def build(self, data: dict[Any, Any]) -> Any:
        """The job config the widgets describe (raises FormError / PathOutsideWorkspace, both UserErrors)."""
        try:
            return self.form.build_job(self.ui.workspace, self.values(data))
        except FormError as e:
            e.where = self.prefix  # so `ui.error_text` names the field by its label in the page's language
            raise

    def updates(self, values: dict[str, Any]) -> dict[Any, Any]:
        """Component updates that show `values` (from `JobForm.values_of`)."""
        return {self.comps[n]: gr.update(value=v) for n, v in values.items() if n in self.comps}

    def visibility(self, kind: str) -> dict[Any, Any]:
        """Show the fields a job kind uses, hide the others (multi-kind forms)."""
        return {c: gr.update(visible=self.specs[n].shown_for(kind)) for n, c in self.comps.items()}

    # ------------------------------------------------------------------------------------------ preview, presets
    def tools(self, on_loaded: Callable[[dict[str, Any]], dict[Any, Any]] | None = None,
              extra_outputs: Iterable[Any] = ()) -> None:
        """The accordion every form gets: YAML and `easydistill --config` preview (live), Save as preset, and Load
        (a YAML / EasyDistill JSON file, or a past job's config) back into the form. `on_loaded(values)` returns
        updates of `extra_outputs` (sections to show for the loaded kind, ...)."""
        ui, t = self.ui, self.ui.t
        with ui.reg("forms.tools", gr.Accordion(t("forms.tools"), open=False)):
            yaml_box = ui.reg("forms.yaml", gr.Code(language="yaml", label=t("forms.yaml"), interactive=False,
                                                    elem_id=elem_id(f"{self.prefix}.yaml")))
            cli_box = ui.reg("forms.cli", gr.Textbox(label=t("forms.cli"), info=t("forms.cli_info"),
                                                     interactive=False, elem_id=elem_id(f"{self.prefix}.cli")),
                             "label", "info")
            with gr.Row():
                preset = ui.reg("forms.preset_name", gr.Textbox(label=t("forms.preset_name"), scale=2,
                                                                elem_id=elem_id(f"{self.prefix}.preset_name")))
                save = ui.reg("forms.save_preset", gr.Button(t("forms.save_preset"), scale=1,
                                                             elem_id=elem_id(f"{self.prefix}.save_preset")))
            with gr.Row():
                upload = ui.reg("forms.load_file", gr.File(label=t("forms.load_file"), type="filepath", height=90,
                                                          file_types=[".yaml", ".yml", ".json"], scale=2,
                                                          elem_id=elem_id(f"{self.prefix}.load_file")))
                past = ui.reg("forms.load_job", gr.Dropdown(choices=[], label=t("forms.load_job"), scale=2,
                                                           elem_id=elem_id(f"{self.prefix}.load_job")))
            note = gr.Markdown(elem_id=elem_id(f"{self.prefix}.tools_note"))

        def preview(data: dict[Any, Any]):
            try:
                return self.form.preview(ui.workspace, self.build(data))
            except UserError as e:
                return f"# {self.ui.error_text(e)}", ""

        # one event any field's change triggers (not one per field: ~180 fewer events to build and ship in the page)
        if self.comps:
            gr.on([c.change for c in self.comps.values()], preview, inputs=self.inputs(),
                  outputs=[yaml_box, cli_box], show_progress="hidden")

        def save_preset(data: dict[Any, Any]):
            from core.presets import save_preset as save

            name = (data[preset] or "").strip()
            if not name:
                return t("forms.preset_no_name")
            try:
                path = save(self.build(data), name, ui.workspace)
            except UserError as e:
                return f"⚠️ {self.ui.error_text(e)}"
            return t("forms.preset_saved", path=ui.workspace.relative(path))

        save.click(save_preset, inputs={preset, *self.inputs()}, outputs=note)

        def load(job: Any) -> dict[Any, Any]:
            if not self.form.accepts(job):
                return {note: t("forms.load_wrong_kind", kind=job.kind)}
            values = self.form.values_of(job, ui.workspace)
            out = self.updates(values)
            if on_loaded:
                out.update(on_loaded(values))
            out[note] = t("forms.loaded", kind=job.kind)
            return out

        outputs = [note, *self.comps.values(), *extra_outputs]

        def load_file(path: str | None):
            from core.forms.loading import config_from_file

            if not path:
                return {}
            try:
                return load(config_from_file(path))
            except UserError as e:
                return {note: f"⚠️ {self.ui.error_text(e)}"}

        def load_job(job_id: str | None):
            from core.forms.loading import config_of_job

            if not job_id:
                return {}
            try:
                return load(config_of_job(ui.jobs(), job_id))
            except UserError as e:
                return {note: f"⚠️ {self.ui.error_text(e)}"}

        upload.upload(load_file, upload, outputs)
        past.input(load_job, past, outputs)
        kinds = self._kinds()
        past.focus(lambda: gr.update(choices=_job_choices(ui, kinds)), None, past, show_progress="hidden")

    def _kinds(self) -> tuple[str, ...]:
        return self.form.kinds()


def _job_choices(ui: UIContext, kinds: Iterable[str]) -> list[tuple[str, str]]:
    from core.pickers import job_choices

    return job_choices(ui.jobs(), tuple(kinds))
