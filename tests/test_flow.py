"""The guided flow's stages chain: what one stage writes is exactly what the next reads."""

import shutil

import pytest

from core.config.base import BackendSpec
from core.flow import (
    FlowPlan,
    compare_job,
    ensure_demo_dataset,
    logit_kd_possible,
    make_plan,
    prepare_data,
    synthesize_job,
    train_job,
)


def test_stages_chain_outputs_to_inputs(workspace):
    plan = FlowPlan(BackendSpec(model="teacher-m"), "student-m", "qa")
    synth = synthesize_job(plan)
    labelled, heldout = (s.job.output for s in synth.steps)
    assert [s.job.input for s in synth.steps] == [plan.train_split, plan.heldout_split]
    sft, capture, kd = (s.job for s in train_job(plan, logit_kd=True).steps)
    assert sft.dataset == capture.input == kd.dataset == labelled
    assert sft.eval_dataset == kd.eval_dataset == heldout
    assert kd.student == sft.output and kd.logits == capture.output and capture.teacher.model == "teacher-m"
    before, after = (s.job for s in compare_job(plan, logit_kd=True).steps)
    assert before.model.model == "student-m" and after.model.model == kd.output
    assert before.dataset == after.dataset == heldout
    only_sft = train_job(plan, logit_kd=False)
    assert [s.name for s in only_sft.steps] == ["sft"]
    assert compare_job(plan, logit_kd=False).steps[1].job.model.model == only_sft.steps[0].job.output


def test_plan_names_what_is_missing(workspace):
    with pytest.raises(ValueError, match="teacher, data"):
        make_plan(None, "s", "", workspace)
    with pytest.raises(ValueError, match="same model"):
        make_plan("m", "m", "d", workspace)


def test_demo_data_split_and_kd_check(workspace, tiny_models):
    name = ensure_demo_dataset(workspace)
    assert ensure_demo_dataset(workspace) == name  # idempotent
    plan = FlowPlan(BackendSpec(model="tiny-teacher"), "tiny-student", name)
    n_train, n_eval = prepare_data(plan, workspace)
    assert n_eval > 0 and n_train > 5 * n_eval
    shutil.copytree(tiny_models.teacher, workspace.models / "tiny-teacher")
    shutil.copytree(tiny_models.student, workspace.models / "tiny-student")
    ok, _ = logit_kd_possible(plan, workspace)
    assert ok
    api = FlowPlan(BackendSpec(type="openai", model="m", endpoint={"base_url": "http://127.0.0.1:9/v1"}),
                   "tiny-student", name)
    ok, why = logit_kd_possible(api, workspace)
    assert not ok and "SFT" in why
