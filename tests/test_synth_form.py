"""The synthesis form (core.synth.form): widget values → a confined SynthJob for every operator and teacher kind, errors
that name the field, which fields an operator shows, templates edited in the form, the share table, and a past job
loaded back into the same values. The trial and the submission run against a fake OpenAI-compatible server (no torch).
"""

from __future__ import annotations

import json

import pytest

from core.config.data_jobs import SynthJob
from core.endpoints import ENDPOINT_PREFIX
from core.errors import UserError
from core.forms.form import FormError
from core.synth.form import FORM, SHARES, balance_dataset, output_label, parse_shares, progress_counts
from core.synth.templates import default_template, save_template, template_ref, template_text
from core.workspace import PathOutsideWorkspace

OPERATORS = ("label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify")


def _values(**over):
    """The form's defaults with an input and a teacher; the template text is the operator's (as the tab sets it)."""
    v = FORM.defaults()
    v.update(input="mini", model="teacher", template_text=default_template(over.get("operator", "label")))
    v.update(over)
    return v


def _dataset(ws, name="mini", rows=None):
    from core.data.store import save_rows

    rows = rows or [{"id": f"r{i}", "instruction": f"What is {i} + {i}?"} for i in range(4)]
    save_rows(ws, name, rows, created_by="test")


def _register_endpoint(ws, name="dash", base_url="http://127.0.0.1:9/v1", model="qwen-max"):
    from core.models.registry import EndpointEntry, save_endpoint

    save_endpoint(ws, EndpointEntry(name=name, base_url=base_url, model=model, api_key_env="DASH_KEY"))


@pytest.mark.parametrize("op", OPERATORS)
def test_every_operator_builds_a_job_with_its_own_fields(workspace, op):
    job = FORM.build_job(workspace, _values(operator=op, n_ctx=2, n_out=5))
    assert isinstance(job, SynthJob) and job.operator == op
    assert job.teacher.type == "transformers" and job.teacher.model == "teacher" and job.teacher.batch_size == 8
    assert job.template is None  # the unedited default template is no reference at all
    assert job.name == f"synth {op} mini" and job.limit is None and job.sampling.max_new_tokens == 512
    if op == "expand":  # only expand reads k and n; other operators keep the config's defaults
        assert (job.num_in_context_samples, job.num_output_samples) == (2, 5)
    else:
        assert (job.num_in_context_samples, job.num_output_samples) == (3, 10)
    if op == "classify":  # balancing by default, toward the table's categories
        assert job.target_shares and "Math" in job.target_shares
    else:
        assert job.target_shares is None and job.categories is None


def test_fields_shown_follow_operator_and_teacher():
    shown = FORM.shown(_values())
    assert shown["model"] and shown["batch_size"] and not shown["base_url"] and not shown["endpoint"]
    assert not shown["n_ctx"] and not shown[SHARES] and shown["temperature"]
    assert FORM.shown(_values(operator="expand"))["n_ctx"]
    classify = FORM.shown(_values(operator="classify"))
    assert classify[SHARES] and classify["balance_total"] and not classify["n_out"]
    api = FORM.shown(_values(backend="openai"))
    assert api["base_url"] and api["concurrency"] and not api["model"]
    registered = FORM.shown(_values(backend="openai", endpoint=f"{ENDPOINT_PREFIX}dash"))
    assert not registered["base_url"] and registered["concurrency"]


def test_api_teacher_typed_or_registered(workspace):
    job = FORM.build_job(workspace, _values(backend="openai", model="", base_url=" http://127.0.0.1:8000/v1 ",
                                            served_model="qwen", api_key_env="MY_KEY", concurrency=4))
    t = job.teacher
    assert t.type == "openai" and t.model == "qwen"
    assert (t.endpoint.base_url, t.endpoint.model, t.endpoint.api_key_env, t.endpoint.concurrency) == (
        "http://127.0.0.1:8000/v1", "qwen", "MY_KEY", 4)
    _register_endpoint(workspace)
    job = FORM.build_job(workspace, _values(backend="openai", endpoint=f"{ENDPOINT_PREFIX}dash", concurrency=16,
                                            base_url="ignored while an endpoint is picked"))
    assert job.teacher.endpoint.base_url == "http://127.0.0.1:9/v1" and job.teacher.endpoint.concurrency == 16
    assert job.teacher.endpoint.api_key_env == "DASH_KEY" and job.teacher.endpoint.api_key is None
    # a registered endpoint picked in the local model picker is reached over HTTP all the same
    assert FORM.build_job(workspace, _values(model=f"{ENDPOINT_PREFIX}dash")).teacher.type == "openai"


def test_errors_name_the_field(workspace):
    cases = [
        (dict(input=""), "input"),
        (dict(model=""), "model"),
        (dict(backend="openai", base_url=""), "base_url"),
        (dict(backend="openai", endpoint=f"{ENDPOINT_PREFIX}nope"), "endpoint"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(temperature=9), "temperature"),
        (dict(backend="openai", base_url="http://x/v1", concurrency=5000), "concurrency"),
        (dict(batch_size=0), "batch_size"),
        (dict(output="bad name!"), "output"),
        (dict(operator="classify", shares=[["Math", "lots"]]), "shares"),
        (dict(operator="classify", shares=[]), "shares"),
    ]
    for over, name in cases:
        with pytest.raises(FormError) as e:
            FORM.build_job(workspace, _values(**over))
        assert str(e.value).startswith(name), (over, str(e.value))
        assert isinstance(e.value, UserError)


def test_web_paths_are_refused_outside_the_workspace(workspace, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    with pytest.raises(PathOutsideWorkspace, match="input"):
        FORM.build_job(workspace, _values(input=str(outside)))
    with pytest.raises(PathOutsideWorkspace):
        FORM.build_job(workspace, _values(model="../../etc"))
    with pytest.raises(PathOutsideWorkspace):
        FORM.build_job(workspace, _values(output=str(tmp_path / "out.jsonl")))
    # a template picker cannot read a file outside the workspace either
    with pytest.raises(PathOutsideWorkspace):
        template_text(workspace, "label", str(outside))
    assert FORM.build_job(workspace, _values(input=str(outside)), confine=False).input == str(outside)


def test_classify_table_sets_shares_or_categories(workspace):
    table = [["Math", 2], ["Code", "1"], ["", 5], [None, None], ["Other", float("nan")]]
    assert parse_shares(table) == {"Math": 2.0, "Code": 1.0, "Other": 0.0}
    job = FORM.build_job(workspace, _values(operator="classify", shares=table, balance_total=10, upsample=True))
    assert job.target_shares == {"Math": 2.0, "Code": 1.0, "Other": 0.0}
    assert job.balance_total == 10 and job.balance_upsample and job.categories is None
    job = FORM.build_job(workspace, _values(operator="classify", shares=table, balance_after=False, balance_total=10))
    assert job.categories == ["Math", "Code", "Other"] and job.target_shares is None and job.balance_total is None


def test_edited_template_is_referenced_and_saved_only_at_submit(workspace):
    text = "Answer briefly: {instruction}"
    values = _values(template_text=text, output="mini-short")
    job = FORM.build_job(workspace, values)
    assert job.template == "mini-short.label"
    assert not (workspace.templates / "mini-short.label.txt").exists()  # a preview writes nothing
    # a saved template chosen and left as it is stays a reference; edited again, it becomes a new one
    save_template(workspace, "terse", "label", text)
    assert template_ref(workspace, "label", "terse", text + "\n", "x") == ("terse", None)
    assert template_ref(workspace, "label", "terse", text + "!", "x") == ("x.label", "x.label")
    assert template_ref(workspace, "label", "", default_template("label"), "x") == (None, None)
    assert template_text(workspace, "label", "terse") == text
    assert FORM.operator_defaults("expand")["template_text"] == default_template("expand")
    with pytest.raises(UserError, match="placeholder"):
        FORM.prepare(workspace, _values(template_text="no input here {nope}"))


def test_values_of_round_trip(workspace):
    _register_endpoint(workspace)
    save_template(workspace, "terse", "classify", "Classify: {instruction} among {categories}")
    built = [
        FORM.build_job(workspace, _values(operator="expand", n_ctx=2, n_out=4, limit=3, temperature=0.3,
                                          sampling_seed=None)),
        FORM.build_job(workspace, _values(operator="classify", template="terse",
                                          template_text="Classify: {instruction} among {categories}",
                                          shares=[["Math", 0.5], ["Code", 0.5]], balance_total=6)),
        FORM.build_job(workspace, _values(operator="classify", balance_after=False, shares=[["A", 1]])),
        FORM.build_job(workspace, _values(backend="openai", endpoint=f"{ENDPOINT_PREFIX}dash", concurrency=3)),
        FORM.build_job(workspace, _values(backend="openai", base_url="http://h:1/v1", served_model="m",
                                          api_key_env="K", output="out.jsonl", system_prompt="Be short.")),
    ]
    for job in built:
        values = FORM.values_of(job, workspace)
        again = FORM.build_job(workspace, values)
        assert again.model_dump() == job.model_dump(), job.name
    loaded = FORM.values_of(built[3], workspace)
    assert loaded["backend"] == "openai" and loaded["endpoint"] == f"{ENDPOINT_PREFIX}dash"
    assert FORM.values_of(built[1], workspace)["template"] == "terse"
    assert FORM.accepts(built[0])


def test_trial_and_submit_with_an_api_teacher(workspace):
    from core.jobs.manager import JobManager
    from tests.fake_openai_server import FakeOpenAIServer

    _dataset(workspace)
    with FakeOpenAIServer(answer=lambda msgs: "four") as srv:
        values = _values(backend="openai", base_url=srv.base_url, model="",
                         template_text="Reply in one word: {instruction}")
        res = FORM.trial(workspace, values, 2)
        assert [r.status for r in res.rows] == ["ok", "ok"] and res.rows[0].output == "four"
        sent = json.dumps(srv.records[-1].body)
        assert "Reply in one word" in sent
        assert not (workspace.templates / "mini-label.label.txt").exists()  # a trial saves nothing

        jobs = JobManager(workspace)
        job_id, job = FORM.submit(workspace, jobs, values)
        assert (workspace.templates / "mini-label.label.txt").is_file()
        info = jobs.wait(job_id, timeout=120)
        assert info.status == "succeeded", info.reason
        assert output_label(job) == "mini-label"
        counts = progress_counts(jobs.metrics(job_id))
        assert (counts["done"], counts["total"], counts["ok"], counts["rejected"]) == (4, 4, 4, 0)


def test_balance_now(workspace):
    rows = [{"id": f"r{i}", "instruction": f"q{i}", "category": "Math" if i < 6 else "Code"} for i in range(8)]
    _dataset(workspace, "cls", rows)
    name, n, table = balance_dataset(workspace, _values(input="cls", shares=[["Math", 1], ["Code", 1]],
                                                        balance_total=4))
    assert name == "cls-balanced" and n == 4
    assert dict((c, (b, t, a)) for c, b, t, a in table) == {"Code": (2, 2, 2), "Math": (6, 2, 2)}
    _dataset(workspace, "plain")
    with pytest.raises(UserError, match="category"):
        balance_dataset(workspace, _values(input="plain", shares=[["Math", 1]]))
    with pytest.raises(FormError, match="shares"):
        balance_dataset(workspace, _values(input="cls", shares=[["Math", 0]]))
