"""The form pattern: fields read from the pydantic configs, values → a confined job config (errors naming the field)
and back, pickers, loading a YAML or a past job into a form; and the studio's FormView over it."""

from __future__ import annotations

import json

import pytest

from core.config.selftest import SelftestJob
from core.config.train import EvaluateJob, KdJob
from core.endpoints import ENDPOINT_PREFIX, choice_for, spec_for
from core.errors import UserError
from core.eval.form import FORM as EVAL_FORM
from core.forms.fields import coerce, field
from core.forms.form import FormError
from core.workspace import PathOutsideWorkspace

EVAL_VALUES = {"model": "student", "dataset": "heldout", "metrics": ["exact_match"], "limit": 0, "top_k": 20,
               "max_new_tokens": 64, "backend": "transformers", "reference": "", "judge": "", "answer_field": "",
               "name": ""}


def _register_endpoint(ws, name="dash", base_url="http://127.0.0.1:9/v1", model="qwen-max"):
    from core.models.registry import EndpointEntry, save_endpoint

    save_endpoint(ws, EndpointEntry(name=name, base_url=base_url, model=model, api_key_env="DASH_KEY"))


def test_fields_are_read_from_the_config():
    kd = field(KdJob, "kd_ratio")
    assert (kd.widget, kd.default, kd.minimum, kd.maximum) == ("slider", 0.5, 0.0, 1.0)
    assert "KD term" in kd.help
    div = field(KdJob, "divergence")
    assert div.widget == "choice" and "reverse_kl" in div.choices and div.default == "forward_kl"
    r = field(KdJob, "lora.r")  # through an optional nested config
    assert (r.name, r.widget, r.default, r.maximum) == ("lora_r", "int", 16, 1024)
    assert field(KdJob, "student").required and not field(KdJob, "eval_dataset").required
    assert field(KdJob, "eval_dataset").optional
    # a nested default comes from the parent's default: evaluation samples greedily, a bare Sampling would not
    assert field(EvaluateJob, "sampling.temperature").default == 0.0
    metrics = field(EvaluateJob, "metrics")
    assert metrics.widget == "multi" and metrics.default == ["exact_match"] and "kl" in metrics.choices
    with pytest.raises(KeyError):
        field(KdJob, "no_such_knob")


def test_coerce_widget_values():
    lim = field(EvaluateJob, "limit", extra={"zero_is_none": True})
    assert coerce(lim, 0) is None and coerce(lim, 7.0) == 7 and coerce(lim, None) is None
    top_k = field(EvaluateJob, "top_k")
    assert coerce(top_k, None) == 20  # a cleared Number falls back to the config default
    assert coerce(field(EvaluateJob, "answer_field"), "  ") is None
    assert coerce(field(KdJob, "output"), "  m  ") == "m"


def test_evaluate_form_builds_a_confined_job(workspace):
    job = EVAL_FORM.build_job(workspace, EVAL_VALUES)
    assert isinstance(job, EvaluateJob)
    assert job.model.model == "student" and job.model.type == "transformers"
    assert job.limit is None and job.reference is None and job.name == "evaluate student"
    assert job.sampling.max_new_tokens == 64 and job.sampling.temperature == 0.0  # greedy default kept
    vllm = EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "backend": "vllm"})
    assert vllm.model.type == "vllm"


def test_form_errors_name_the_field(workspace):
    with pytest.raises(FormError, match="top_k"):
        EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "top_k": 0})
    with pytest.raises(FormError, match="dataset"):
        EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "dataset": ""})
    with pytest.raises(FormError) as e:  # a rule across fields says its own sentence, not a dump of the config
        EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "metrics": ["kl"]})
    assert str(e.value).startswith("kl needs 'reference'")
    assert isinstance(e.value, UserError)


def test_web_input_is_confined_to_the_workspace(workspace, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    with pytest.raises(PathOutsideWorkspace, match="dataset"):
        EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "dataset": str(outside)})
    with pytest.raises(PathOutsideWorkspace):
        EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "model": "../../etc"})
    # a local CLI user may name any path
    assert EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "dataset": str(outside)}, confine=False).dataset


def test_endpoint_picker_round_trip(workspace):
    _register_endpoint(workspace)
    spec = spec_for(f"{ENDPOINT_PREFIX}dash", workspace)
    assert spec.type == "openai" and spec.endpoint.base_url == "http://127.0.0.1:9/v1"
    assert spec.endpoint.api_key_env == "DASH_KEY" and spec.endpoint.api_key is None
    assert choice_for(spec, workspace) == f"{ENDPOINT_PREFIX}dash"
    with pytest.raises(UserError, match="nope"):
        spec_for(f"{ENDPOINT_PREFIX}nope", workspace)
    job = EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "judge": f"{ENDPOINT_PREFIX}dash",
                                          "reference": "teacher", "metrics": ["judge_winrate"]})
    values = EVAL_FORM.values_of(job, workspace)
    assert values["judge"] == f"{ENDPOINT_PREFIX}dash" and values["reference"] == "teacher"
    again = EVAL_FORM.build_job(workspace, values)
    assert again.model_dump() == job.model_dump()


def test_load_a_config_file_and_a_past_job(workspace, tmp_path):
    from core.config.io import dump_yaml
    from core.forms.loading import config_from_file, config_of_job
    from core.presets import save_preset

    job = EVAL_FORM.build_job(workspace, {**EVAL_VALUES, "top_k": 7})
    path = tmp_path / "eval.yaml"
    path.write_text(dump_yaml(job))
    assert config_from_file(str(path)).top_k == 7
    preset = save_preset(job, "my-eval", workspace)  # a preset file loads as its job
    assert config_from_file(str(preset)).top_k == 7
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "evaluate", "model": {"model": "m"}, "dataset": "d", "top_k": "many"}))
    with pytest.raises(UserError, match="top_k"):
        config_from_file(str(bad))

    from core.jobs.manager import JobManager

    jobs = JobManager(workspace)
    job_id = jobs.submit(SelftestJob(steps=1, delay_s=0.0, name="loadable"))
    jobs.wait(job_id, timeout=60)
    loaded = config_of_job(jobs, job_id)
    assert loaded.kind == "selftest" and loaded.name == "loadable"
    assert not EVAL_FORM.accepts(loaded) and EVAL_FORM.accepts(job)


def test_form_view_renders_fields_and_builds_from_dict_inputs(workspace):
    import gradio as gr

    from studio.forms import FormView
    from studio.ui import UIContext

    ui = UIContext(workspace=workspace, lang="zh")
    with gr.Blocks():
        view = FormView(ui, "evaluate", EVAL_FORM)
        view.render("model", "dataset", "metrics", "limit", "top_k", "backend")
        view.tools()
    assert isinstance(view.comps["metrics"], gr.CheckboxGroup)
    assert isinstance(view.comps["backend"], gr.Radio)
    assert view.comps["top_k"].value == 20 and view.comps["top_k"].minimum == 1
    data = {c: c.value for c in view.comps.values()}
    data[view.comps["model"]], data[view.comps["dataset"]] = "m", "d"
    data["not a form component"] = "ignored"
    job = view.build(data)
    assert job.model.model == "m" and job.top_k == 20
    # loading a config back: one update per field, with the config's values
    updates = view.updates(EVAL_FORM.values_of(job, workspace))
    assert updates[view.comps["top_k"]]["value"] == 20


def test_every_rendered_form_field_speaks_both_languages(tmp_path):
    """Labels of every field a tab renders, and help wherever a field shows help, exist in Chinese too."""
    from studio.app import build_app
    from studio.i18n import strings
    from studio.options import StudioOptions

    _, ui = build_app(StudioOptions(workspace=str(tmp_path / "ws")))
    rendered = ui.shared.get("form_fields", set())
    assert rendered, "no tab renders a form through studio.forms"
    en, zh = strings("en"), strings("zh")
    missing = [f"{p}.{n}" for p, n in sorted(rendered) if f"{p}.{n}" not in zh or f"{p}.{n}" not in en]
    assert not missing, f"form fields without a label in both languages: {missing}"


def test_form_errors_read_in_the_page_language(workspace):
    """A missing value is named by its label and worded in Chinese on a Chinese page; core keeps English for the CLI."""
    import gradio as gr

    from core.config.train import SftJob
    from core.forms.form import JobForm
    from studio.forms import FormView
    from studio.ui import UIContext

    class SftOnly(JobForm):
        config = SftJob
        fields = (field(SftJob, "student", widget="model"), field(SftJob, "dataset", widget="dataset"))

    for lang, words in (("zh", "请选择或填写"), ("en", "choose or enter a value")):
        ui = UIContext(workspace=workspace, lang=lang)
        with gr.Blocks():
            view = FormView(ui, "training", SftOnly())
            view.render("student", "dataset")
        data = {view.comps["student"]: "", view.comps["dataset"]: "d"}
        with pytest.raises(FormError) as e:
            view.build(data)
        assert str(e.value) == "student: choose or enter a value"
        assert ui.error_text(e.value) == f"{ui.t('training.student')}: {words}"
