"""The preference-data forms (core.pairs.form): values → confined PairsJob / CrvJob with errors naming the field,
fields used per mode and ranking, and a job back into the form."""

from __future__ import annotations

import pytest

from core.config.pairs_jobs import CrvJob, PairsJob
from core.endpoints import ENDPOINT_PREFIX
from core.forms.form import FormError
from core.pairs.form import CRV_FORM, PAIRS_FORM
from core.workspace import PathOutsideWorkspace


def _pairs(**kw):
    return {**PAIRS_FORM.defaults(), "input": "qa", "student": "stud", **kw}


def _crv(**kw):
    return {**CRV_FORM.defaults(), "input": "cot", "critic": "big", **kw}


def test_fields_come_from_the_config():
    by = {f.name: f for f in PAIRS_FORM.fields}
    assert by["mode"].choices == ("student", "best_of_n") and by["mode"].default == "student"
    assert by["rank_by"].default == "none" and "scorer" in by["rank_by"].choices
    assert by["length_alpha"].default == 0.001 and by["num_samples"].minimum == 2
    assert by["temperature"].default == 0.8 and "helpfulness" in by["judge_metric"].choices
    crv = {f.name: f for f in CRV_FORM.fields}
    assert crv["verifier"].choices == ("math_verify", "judge") and crv["critic"].required
    assert crv["critic_max_new_tokens"].default == 1024 and crv["student_size"].default == "1.5B"


def test_pairs_form_student_mode_round_trips(workspace):
    job = PAIRS_FORM.build_job(workspace, _pairs(teacher="ignored-in-student-mode", limit=0, max_new_tokens=64))
    assert isinstance(job, PairsJob) and job.mode == "student"
    assert job.student.model == "stud" and job.student.type == "transformers" and job.teacher is None
    assert job.limit is None and job.sampling.max_new_tokens == 64 and job.name == "pairs student qa"
    values = PAIRS_FORM.values_of(job, workspace)
    assert values["student"] == "stud" and values["backend"] == "transformers"
    assert PAIRS_FORM.build_job(workspace, values).model_dump() == job.model_dump()


def test_pairs_form_best_of_n_with_a_judge_endpoint(workspace):
    from core.endpoints import EndpointEntry, save_endpoint

    save_endpoint(workspace, EndpointEntry(name="grader", base_url="http://127.0.0.1:9/v1", model="qwen-max"))
    values = _pairs(mode="best_of_n", teacher="big", student="hidden", num_samples=6, rank_by="judge",
                    judge=f"{ENDPOINT_PREFIX}grader", judge_metric="correctness", backend="vllm", length_alpha=0.5)
    job = PAIRS_FORM.build_job(workspace, values)
    assert job.mode == "best_of_n" and job.student is None and job.teacher.type == "vllm"
    assert job.num_samples == 6 and job.judge.type == "openai" and job.judge.endpoint.model == "qwen-max"
    assert job.length_alpha == 0.001  # the scorer's α is not used by a judge ranking
    shown = PAIRS_FORM.shown(values)
    assert shown["teacher"] and shown["judge"] and not shown["student"] and not shown["length_alpha"]
    back = PAIRS_FORM.values_of(job, workspace)
    assert back["judge"] == f"{ENDPOINT_PREFIX}grader" and back["backend"] == "vllm"


def test_pairs_form_errors_name_the_field(workspace, tmp_path):
    with pytest.raises(FormError, match="^input"):
        PAIRS_FORM.build_job(workspace, _pairs(input=""))
    with pytest.raises(FormError, match="^student"):
        PAIRS_FORM.build_job(workspace, _pairs(student=""))
    with pytest.raises(FormError, match="^rank_by"):
        PAIRS_FORM.build_job(workspace, _pairs(mode="best_of_n", teacher="big"))
    with pytest.raises(FormError, match="^judge"):
        PAIRS_FORM.build_job(workspace, _pairs(rank_by="judge"))
    with pytest.raises(FormError, match="num_samples"):
        PAIRS_FORM.build_job(workspace, _pairs(mode="best_of_n", teacher="big", rank_by="verifier", num_samples=1))
    with pytest.raises(PathOutsideWorkspace):  # a web visitor cannot read outside the workspace
        PAIRS_FORM.build_job(workspace, _pairs(input=str(tmp_path / "elsewhere.jsonl")))


def test_crv_form(workspace):
    job = CRV_FORM.build_job(workspace, _crv(student_size="7B", rethink_temperature=0.3, verify_judge="hidden"))
    assert isinstance(job, CrvJob) and job.critic.model == "big" and job.rethinker is None
    assert job.verify_judge is None  # math_verify needs no judge
    assert job.rethink_sampling.temperature == 0.3 and job.critic_sampling.temperature == 0.0
    assert job.name == "crv cot for 7B"
    judged = CRV_FORM.build_job(workspace, _crv(verifier="judge", verify_judge="grader", rethinker="mid",
                                                backend="vllm", corrupted_pairs=True))
    assert judged.verify_judge.model == "grader" and judged.rethinker.type == "vllm" and judged.corrupted_pairs
    values = CRV_FORM.values_of(judged, workspace)
    assert values["backend"] == "vllm" and CRV_FORM.shown(values)["verify_judge"]
    assert CRV_FORM.build_job(workspace, values).model_dump() == judged.model_dump()
    with pytest.raises(FormError, match="^critic"):
        CRV_FORM.build_job(workspace, _crv(critic=""))
    with pytest.raises(FormError, match="^student_size"):
        CRV_FORM.build_job(workspace, _crv(student_size=" "))
