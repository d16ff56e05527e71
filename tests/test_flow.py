"""The guided flow's stages chain: what one stage writes is exactly what the next reads."""

import shutil
import time

import pytest

from core.config.base import BackendSpec
from core.flow import (
    FlowPlan,
    _step,
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
    with_kd = train_job(plan, logit_kd=True)
    assert [s.name for s in with_kd.steps] == ["capture", "kd"]  # white-box KD straight from the user's student
    capture, kd = (s.job for s in with_kd.steps)
    assert capture.input == kd.dataset == labelled and kd.eval_dataset == heldout
    assert kd.student == "student-m" and kd.logits == capture.output and capture.teacher.model == "teacher-m"
    assert kd.teacher == "teacher-m" and kd.output == plan.student_kd
    preset_kd = _step("kd")
    assert (kd.kd_ratio, kd.learning_rate, kd.max_steps) == (preset_kd.kd_ratio, preset_kd.learning_rate,
                                                             preset_kd.max_steps)  # the preset's recipe
    before, after = (s.job for s in compare_job(plan, logit_kd=True).steps)
    assert before.model.model == "student-m" and after.model.model == kd.output
    assert before.dataset == after.dataset == heldout
    only_sft = train_job(plan, logit_kd=False)
    assert [s.name for s in only_sft.steps] == ["sft"]
    sft = only_sft.steps[0].job
    assert sft.kind == "train_sft" and sft.student == "student-m" and sft.output == plan.student_sft
    assert (sft.dataset, sft.eval_dataset) == (labelled, heldout)
    # the kd step's training settings, for half its steps (SFT overfits where KD keeps learning)
    assert (sft.learning_rate, sft.per_device_train_batch_size, sft.max_length, sft.precision) == (
        preset_kd.learning_rate, preset_kd.per_device_train_batch_size, preset_kd.max_length, preset_kd.precision)
    assert sft.max_steps == preset_kd.max_steps // 2
    assert compare_job(plan, logit_kd=False).steps[1].job.model.model == sft.output


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


# ------------------------------------------------------------------------------ rows to use, and what they imply


def test_rows_to_use_limit_labelling_names_and_training_steps(workspace):
    from core.data.store import save_rows
    from core.flow import MIN_STEPS, rows_split, training_steps

    save_rows(workspace, "qa", [{"instruction": f"q{i}"} for i in range(294)], created_by="test")
    assert make_plan("t", "s", "qa", workspace, rows=294).rows is None  # all rows: the plain names
    assert make_plan("t", "s", "qa", workspace, rows=1000).rows is None
    with pytest.raises(ValueError, match="at least 2"):
        make_plan("t", "s", "qa", workspace, rows=1)
    assert rows_split(2) == (1, 1) and rows_split(1) == (1, 0) and rows_split(60) == (54, 6)
    plan = FlowPlan(BackendSpec(model="t"), "s", "qa", rows=60)
    assert (plan.train_rows, plan.heldout_rows) == (54, 6)
    label, heldout = (s.job for s in synthesize_job(plan).steps)
    assert (label.input, label.limit, heldout.input, heldout.limit) == ("qa-train", 54, "qa-heldout", 6)
    assert "60rows" in label.output and "60rows" in heldout.output and "60rows" in plan.student_kd
    assert label.output != FlowPlan(BackendSpec(model="t"), "s", "qa").labelled  # another N never mixes rows
    assert all(s.job.limit is None for s in synthesize_job(FlowPlan(BackendSpec(model="t"), "s", "qa")).steps)
    # Steps follow the rows (about 4.5 passes, as the preset's 300 over the demo's 265 rows), at least MIN_STEPS, at
    # most the preset's; SFT half of that. Intervals fit inside.
    assert training_steps(265, 300) == 300 and training_steps(10_000, 300) == 300
    assert training_steps(54, 300) == 62 and training_steps(3, 300) == MIN_STEPS
    assert training_steps(265, 300, 0.5) == 150 and training_steps(54, 300, 0.5) == 31
    assert training_steps(3, 300, 0.5) == MIN_STEPS
    _, kd = (s.job for s in train_job(plan, logit_kd=True, train_rows=54).steps)
    sft = train_job(plan, logit_kd=False, train_rows=54).steps[0].job
    assert (kd.max_steps, sft.max_steps) == (62, 31)
    for job in (kd, sft):
        assert job.eval_steps <= job.max_steps and job.save_steps <= job.max_steps
        assert job.save_steps % job.eval_steps == 0
    assert train_job(plan, logit_kd=True).steps[1].job.max_steps == 300  # rows unknown: the preset's steps
    assert train_job(plan, logit_kd=False).steps[0].job.max_steps == 150  # ... and half of them for SFT


def test_estimate_scales_with_rows_models_and_teacher_kind():
    from core.flow import DEMO_CPU, estimate, split_sizes

    assert split_sizes(294) == (265, 29) and split_sizes(294, 60) == (54, 6) and split_sizes(294, 400) == (265, 29)
    demo = estimate(294, None, kd=True, api_teacher=False)
    assert (demo.train_rows, demo.heldout_rows, demo.sft_steps, demo.kd_steps) == (265, 29, 0, 300)
    assert 10 * 60 < demo.total_s < 15 * 60  # the preset's recipe: labelling ~3.5 min, KD 300 steps ~8.5: ~13 min
    no_kd = estimate(294, None, kd=False, api_teacher=False)
    assert (no_kd.sft_steps, no_kd.kd_steps) == (150, 0) and no_kd.train_s < demo.train_s / 1.8  # half the steps
    assert not demo.scaled
    small = estimate(294, 30, kd=True, api_teacher=False)
    assert small.total_s < demo.total_s / 4 and small.synth_s < demo.synth_s / 4  # a job start is fixed
    api = estimate(294, 30, kd=False, api_teacher=True)
    assert api.synth_s is None and api.kd_steps == 0 and api.sft_steps > 0 and api.train_s < small.train_s
    big = estimate(294, None, kd=True, api_teacher=False, teacher_params=10 * DEMO_CPU.teacher_params,
                   student_params=DEMO_CPU.student_params)
    # the teacher's size costs in labelling (which records its top-k too); training reads the cache
    assert big.scaled and big.synth_s > 8 * demo.synth_s and big.train_s == demo.train_s


def test_estimate_for_the_tabs_choices(workspace, tiny_models):
    from core.data.store import save_rows
    from core.flow import estimate_for

    save_rows(workspace, "qa", [{"instruction": f"q{i}"} for i in range(40)], created_by="test")
    shutil.copytree(tiny_models.teacher, workspace.models / "tiny-teacher")
    shutil.copytree(tiny_models.student, workspace.models / "tiny-student")
    est = estimate_for("tiny-teacher", "tiny-student", "qa", 20, workspace)
    assert (est.train_rows, est.heldout_rows) == (18, 2) and est.kd_steps > 0 and est.scaled
    assert estimate_for("endpoint:api", "tiny-student", "qa", None, workspace).synth_s is None
    assert estimate_for("tiny-teacher", "tiny-student", None, None, workspace) is None


# ------------------------------------------------------------------------------ a fresh page's teacher and student


def _model(ws, name: str, params: int, vocab: int = 1000) -> None:
    """A model folder as the registry reads it: config.json and a safetensors header (no weights needed)."""
    import json
    import struct

    folder = ws.models / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                                    "vocab_size": vocab}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [params], "data_offsets": [0, 4 * params]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)


def test_default_pair_is_never_one_model_twice(workspace):
    from core.endpoints import EndpointEntry, save_endpoint
    from core.flow import default_pair
    from core.models.demo import STUDENT_NAME, TEACHER_NAME

    assert default_pair(workspace).teacher is None
    _model(workspace, "only", 500)
    pair = default_pair(workspace)
    assert (pair.teacher, pair.student, pair.only) == ("only", None, "only")
    save_endpoint(workspace, EndpointEntry(name="big", base_url="http://127.0.0.1:9/v1", model="m"))
    pair = default_pair(workspace)
    assert (pair.teacher, pair.student, pair.only) == ("endpoint:big", "only", None)
    _model(workspace, "large", 9000)
    _model(workspace, "mid-other-vocab", 4000, vocab=2000)
    _model(workspace, "small", 1000)
    pair = default_pair(workspace)
    assert pair.teacher == "large" and pair.student == "small"  # a smaller model sharing the vocabulary wins
    _model(workspace, TEACHER_NAME, 300)
    _model(workspace, STUDENT_NAME, 200)
    assert (default_pair(workspace).teacher, default_pair(workspace).student) == (TEACHER_NAME, STUDENT_NAME)


# ------------------------------------------------------------------------------ ② again after a stop: resume


def test_train_offer_resumes_a_stopped_train_and_says_running_or_done(workspace):
    from core.config import PipelineJob, PipelineStep
    from core.config.selftest import SelftestJob
    from core.flow import DONE, RESUME, RUNNING, START, train_job_name, train_offer, used_kd
    from core.jobs.manager import JobManager

    m = JobManager(workspace)
    plan = FlowPlan(BackendSpec(model="t"), "s", "qa", rows=40)
    assert train_offer(m, plan).action == START
    # A stand-in for ②'s job (its name and step names, selftest jobs): capture finishes, KD is stopped midway.
    capture, kd = (s.name for s in train_job(plan, logit_kd=True).steps)
    job = m.submit(PipelineJob(name=train_job_name(plan), steps=[
        PipelineStep(name=capture, job=SelftestJob(steps=2, delay_s=0.01)),
        PipelineStep(name=kd, job=SelftestJob(steps=150, delay_s=0.02))]))
    try:
        deadline = time.monotonic() + 60
        while not any(r.get("stage") == "kd" for r in m.metrics(job) if "step" in r):
            assert time.monotonic() < deadline, "kd never started"
            time.sleep(0.05)
        assert train_offer(m, plan).action == RUNNING
        assert m.stop(job, wait=30).status == "stopped"
        offer = train_offer(m, plan)
        assert offer.action == RESUME and offer.job.id == job
        assert offer.point.done == ("capture",) and offer.point.step == "kd" and offer.point.checkpoint is None
        assert used_kd(offer.job)  # what ② will publish follows the job's own steps
        other = FlowPlan(BackendSpec(model="t"), "s", "qa")  # all rows: another plan, another ②
        assert train_offer(m, other).action == START
        m.resume(job)
        assert train_offer(m, plan).action == RUNNING
        assert m.wait(job, 60).status == "succeeded"
        assert train_offer(m, plan).action == DONE
    finally:
        if not m.get(job).finished:
            m.cancel(job, wait=10)


def test_a_failed_train_is_resumed_only_from_a_checkpoint(workspace):
    from pathlib import Path

    from core.config import PipelineJob, PipelineStep
    from core.config.selftest import SelftestJob
    from core.flow import CHECKPOINTS, RESUME, START, train_job_name, train_offer, used_kd
    from core.jobs.manager import JobManager
    from core.train.common import CHECKPOINTS as TRAIN_CHECKPOINTS

    assert CHECKPOINTS == TRAIN_CHECKPOINTS
    m = JobManager(workspace)
    plan = FlowPlan(BackendSpec(model="t"), "s", "qa")
    [sft] = (s.name for s in train_job(plan, logit_kd=False).steps)  # ② without white-box KD: SFT alone
    job = m.submit(PipelineJob(name=train_job_name(plan), steps=[
        PipelineStep(name=sft, job=SelftestJob(steps=3, delay_s=0.01, fail_at=2))]))
    assert m.wait(job, 60).status == "failed"
    assert train_offer(m, plan).action == START  # nothing saved: a new ② is as good as a resume
    (Path(m.get(job).run_dir) / "output" / "sft" / CHECKPOINTS / "checkpoint-7").mkdir(parents=True)
    offer = train_offer(m, plan)
    assert offer.action == RESUME and offer.point.checkpoint == 7 and offer.point.step == "sft"
    assert not used_kd(offer.job)  # ③ will compare the SFT student


def test_fresh_start_names_the_models_it_would_replace(workspace):
    from core.flow import fresh_start_blockers

    plan = FlowPlan(BackendSpec(model="t"), "s", "qa")
    assert fresh_start_blockers(plan, workspace) == []
    _model(workspace, plan.student_sft, 10)
    assert fresh_start_blockers(plan, workspace) == [plan.student_sft]
    assert fresh_start_blockers(plan, workspace, logit_kd=False) == [plan.student_sft]
    assert fresh_start_blockers(plan, workspace, logit_kd=True) == []  # KD writes only the KD student
    _model(workspace, plan.student_kd, 10)
    assert fresh_start_blockers(plan, workspace, logit_kd=True) == [plan.student_kd]
