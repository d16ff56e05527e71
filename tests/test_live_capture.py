"""Capture while labelling (issue 14): a label job with `capture` writes the teacher's top-k as it generates; the
capture step that follows finds those rows done, and teacher forcing afterwards gives the same top-k."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.config.data_jobs import CaptureJob, SynthJob
from core.data.io import write_records
from core.jobs.context import JobContext
from core.train import capture, live_capture
from core.train.logit_cache import LogitCache

QUESTIONS = ["What is two plus two?", "Name a color of the sky.", "Count to three.", "Say hello.",
             "Write a long story about a dog and a cat who became friends.", "Why is the sea salty?"]
# greedy: a random tiny model's sampled text rarely re-tokenizes into the same ids (sampled steps are compared with
# teacher forcing in test_llm_hf.test_top_logprobs_while_generating_equal_teacher_forcing)
SAMPLING = {"temperature": 0.0, "max_new_tokens": 12}
# v2 caches store log-probs in steps of 2^-11 (~5e-4); generation and teacher forcing differ by < 1e-4 in fp32
TOLERANCE = 2.0**-11 + 1e-4


@pytest.fixture(scope="module")
def labelled(tiny_models, tmp_path_factory):
    """A label job with capture, then the capture step over its output (and a teacher-forcing capture into another
    cache): workspace, the label job's and the capture step's contexts, the rows captured while labelling."""
    from core.workspace import Workspace

    ws = Workspace.open(tmp_path_factory.mktemp("live") / "ws")
    shutil.copytree(tiny_models.teacher, ws.models / "teacher")
    write_records(ws.datasets / "qs.jsonl", [{"id": f"q{i}", "instruction": q} for i, q in enumerate(QUESTIONS)])
    teacher = {"type": "transformers", "model": "teacher", "batch_size": 4}
    # no system prompt of the job's own: the teacher answers the conversation training will use
    label = SynthJob(input="qs", output="qs-label", teacher=teacher, sampling=SAMPLING, system_prompt="",
                     capture={"output": "live-k6", "top_k": 6, "max_length": 64})
    ctx = _ctx(ws, "label")
    live_capture.run(label, ctx)
    captured = set(LogitCache(ws.cache / "live-k6").ids())  # before the capture step
    then = _ctx(ws, "capture")
    capture.run(CaptureJob(input="qs-label", output="live-k6", teacher=teacher, top_k=6, max_length=64), then)
    forced = _ctx(ws, "forced")
    capture.run(CaptureJob(input="qs-label", output="forced-k6", teacher=teacher, top_k=6, max_length=64), forced)
    return ws, ctx, then, captured


def _ctx(ws, name: str) -> JobContext:
    run_dir = ws.runs / name
    run_dir.mkdir(parents=True)
    return JobContext(name, run_dir, ws, devices=["cpu"])


def _events(ctx: JobContext) -> str:
    return ctx.metrics_path.read_text() if ctx.metrics_path.exists() else ""


def test_every_row_is_captured_in_the_label_job(labelled):
    """Rows whose answer re-tokenizes into the generated ids keep the top-k recorded while generating; the others
    are teacher-forced by the same teacher in the label job; the capture step then finds every row done."""
    ws, label_ctx, capture_ctx, captured = labelled
    events = _events(label_ctx)
    assert len(captured) == len(QUESTIONS)
    generated = int(events.split("logit cache 'live-k6': ")[1].split(" row(s) captured while generating")[0])
    assert 0 < generated < len(QUESTIONS)  # greedy tiny-model text: some answers re-tokenize alike, some not
    assert f"{len(QUESTIONS) - generated} teacher-forced" in events
    assert f"{len(QUESTIONS) - generated} the answer re-tokenizes into other ids" in events
    assert f"resuming: {len(QUESTIONS)} of {len(QUESTIONS)} rows already in cache" in _events(capture_ctx)


def test_captured_while_generating_equals_teacher_forcing_afterwards(labelled):
    """Same positions and forced tokens; log-probs and tail within TOLERANCE (the cache's 16-bit step + fp32
    noise); top-k ids equal wherever neighbouring log-probs are further apart than TOLERANCE. An answer cut at
    max_new_tokens lacks its last position (the one predicting the end-of-turn token), which generation never
    computed."""
    ws, label_ctx, _, _ = labelled
    live, forced = LogitCache(ws.cache / "live-k6"), LogitCache(ws.cache / "forced-k6")
    compared = 0
    for rid in forced.ids():  # generated rows within the tolerance, teacher-forced ones the same computation
        a, b = live.get(rid), forced.get(rid)
        n = len(a.positions)
        assert len(b.positions) - 1 <= n <= len(b.positions)
        assert np.array_equal(a.positions, b.positions[:n]) and np.array_equal(a.token_ids, b.token_ids[:n])
        np.testing.assert_allclose(a.topk_logprobs, b.topk_logprobs[:n], atol=TOLERANCE)
        np.testing.assert_allclose(a.tail, b.tail[:n], atol=TOLERANCE)
        gaps = np.diff(b.topk_logprobs[:n], axis=-1) <= -TOLERANCE  # neighbours clearly apart
        clear = np.ones_like(a.topk_ids, dtype=bool)
        clear[:, 1:] &= gaps
        clear[:, :-1] &= gaps
        assert (a.topk_ids == b.topk_ids[:n])[clear].all()
        compared += n
    assert compared > 0


def test_rows_asked_under_another_prompt_are_teacher_forced(tiny_models, workspace):
    """The job's system prompt is not part of the labelled row: what the teacher saw differs from what training
    uses, so the row is teacher-forced under the training conversation instead, as the capture job would."""
    shutil.copytree(tiny_models.teacher, workspace.models / "teacher")
    write_records(workspace.datasets / "qs.jsonl", [{"id": "q0", "instruction": QUESTIONS[0]}])
    teacher = {"type": "transformers", "model": "teacher", "batch_size": 4}
    ctx = _ctx(workspace, "label")
    live_capture.run(SynthJob(input="qs", output="qs-label", teacher=teacher, sampling=SAMPLING,
                           capture={"output": "c", "top_k": 4, "max_length": 64}), ctx)
    assert "0 row(s) captured while generating, 1 teacher-forced" in _events(ctx)
    assert "1 the training conversation's prompt differs" in _events(ctx)
    forced = _ctx(workspace, "forced")
    capture.run(CaptureJob(input="qs-label", output="f", teacher=teacher, top_k=4, max_length=64), forced)
    a, b = LogitCache(workspace.cache / "c").get("q0"), LogitCache(workspace.cache / "f").get("q0")
    assert np.array_equal(a.topk_ids, b.topk_ids) and np.allclose(a.topk_logprobs, b.topk_logprobs, atol=TOLERANCE)


def test_capture_needs_a_local_label_job():
    with pytest.raises(ValueError, match="operator label and one transformers teacher"):
        SynthJob(input="qs", operator="refine", teacher={"type": "transformers", "model": "t"},
                 capture={"output": "c"})
    with pytest.raises(ValueError, match="operator label and one transformers teacher"):
        SynthJob(input="qs", teacher={"type": "openai", "endpoint": {"base_url": "http://x/v1", "model": "m"}},
                 capture={"output": "c"})


def test_guided_flow_labels_into_the_cache_its_train_stage_reads():
    """The demo preset's label step captures while labelling; the guided flow (core.flow) points that capture at
    the cache its ② Train capture/KD steps read, and drops it for an endpoint teacher (no logits while generating)."""
    from core.config.base import BackendSpec
    from core.flow import FlowPlan, synthesize_job, train_job

    plan = FlowPlan(BackendSpec(model="teacher-m"), "student-m", "qa")
    label, heldout = (s.job for s in synthesize_job(plan).steps)
    capture_step = next(s.job for s in train_job(plan, logit_kd=True).steps if s.name == "capture")
    assert label.capture.output == capture_step.output == plan.logits and heldout.capture is None
    assert label.capture.top_k == capture_step.top_k and label.capture.max_length == capture_step.max_length
    api = FlowPlan(BackendSpec(type="openai", endpoint={"base_url": "http://x/v1", "model": "m"}), "s", "qa")
    assert all(s.job.capture is None for s in synthesize_job(api).steps)


def test_a_capture_without_the_writer_is_refused(workspace):
    from core.synth import job as synth_job

    cfg = SynthJob(input="qs", teacher={"type": "transformers", "model": "t"}, capture={"output": "c"})
    with pytest.raises(ValueError, match="needs the logit-cache writer"):
        synth_job.run(cfg, _ctx(workspace, "x"))
