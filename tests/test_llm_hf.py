"""The transformers backend on the tiny models, and a transformers serve job reached over HTTP."""

from __future__ import annotations

import math
import shutil
import threading
import time

import pytest

from core.llm.base import BackendError, SamplingParams

QUESTIONS = ["Hi", "What is the capital of France? Tell me more about it, please.", "x", "2 + 2 = ?",
             "Write a long story about a dog and a cat who became friends."]
CONVS = [[{"role": "user", "content": q}] for q in QUESTIONS]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def teacher(tiny_models):
    from core.llm.hf_local import HFLocalBackend

    b = HFLocalBackend(tiny_models.teacher, batch_size=4, device="cpu")
    yield b
    b.close()


def _forward_batches(backend) -> tuple[list[int], object]:
    """Rows of every forward call the model makes (a hook; remove it with the returned handle)."""
    rows: list[int] = []
    handle = backend.model.register_forward_pre_hook(
        lambda _m, _a, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    return rows, handle


def test_batched_equals_one_by_one_greedy(teacher):
    calls, handle = _forward_batches(teacher)
    try:
        batched = teacher.chat(CONVS, GREEDY)
        n_batched = len(calls)
        single = [teacher.chat([c], GREEDY)[0] for c in CONVS]
        n_single = len(calls) - n_batched
    finally:
        handle.remove()
    # 5 prompts in batches of <= 4: two prefills + decoding steps per batch, against one prefill + steps per row
    assert n_batched <= 2 * GREEDY.max_new_tokens < n_single
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in single]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in single]
    assert len({c.text for c in batched}) > 1  # the prompts really produce different answers
    assert all(c.ok and c.finish_reason in ("stop", "length") for c in batched)
    assert any(c.finish_reason == "length" and c.completion_tokens == 16 for c in batched)


def test_finished_rows_leave_the_batch(teacher):
    """A row that ends (here: at a stop string) stops costing forward passes; the others' answers are unchanged."""
    full = teacher.chat(CONVS, GREEDY)
    stop = full[0].text[4:7]  # ends row 0 early; the others only if they contain it too
    params = SamplingParams(temperature=0.0, max_new_tokens=16, stop=[stop])
    rows, handle = _forward_batches(teacher)
    try:
        batched = teacher.chat(CONVS, params)
    finally:
        handle.remove()
    single = [teacher.chat([c], params)[0] for c in CONVS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert batched[0].finish_reason == "stop" and batched[0].completion_tokens < 16
    assert any(b < a for a, b in zip(rows, rows[1:], strict=False) if b > 0 and a > 0)  # the batch shrank


def test_decoding_loop_is_model_generate(tiny_models):
    """The backend's loop computes what model.generate computes for the settings it covers (repetition penalty
    from the model's generation_config included); settings it does not cover go through model.generate."""
    from core.llm.hf_local import HFLocalBackend

    b = HFLocalBackend(tiny_models.teacher, batch_size=4, device="cpu")
    try:
        loop = [c.token_ids for c in b.chat(CONVS, GREEDY)]
        b.model.generation_config.repetition_penalty = 1.5
        assert b._fallback_reason is None
        penalized = [c.token_ids for c in b.chat(CONVS, GREEDY)]
        assert penalized != loop
        b.model.generation_config.no_repeat_ngram_size = 2  # not implemented by the loop
        assert "no_repeat_ngram_size" in b._fallback_reason
        b.model.generation_config.no_repeat_ngram_size = 0
        b.model.generation_config.no_repeat_ngram_size = None
        assert b._fallback_reason is None

        class Generate(HFLocalBackend):
            _fallback_reason = "test"

        b.__class__ = Generate
        assert [c.token_ids for c in b.chat(CONVS, GREEDY)] == penalized
        b.model.generation_config.repetition_penalty = 1.0
        assert [c.token_ids for c in b.chat(CONVS, GREEDY)] == loop
    finally:
        b.close()


def test_plan_batches_sorts_by_length_and_caps_rows_and_tokens():
    from core.llm.hf_local import plan_batches

    lengths = [50, 10, 30, 10, 400, 20]
    batches = plan_batches(lengths, max_rows=3, new_tokens=100, budget=450)
    assert sorted(i for b in batches for i in b) == list(range(6))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    assert all(len(b) <= 3 for b in batches)
    assert all(len(b) * (max(lengths[i] for i in b) + 100) <= 450 or len(b) == 1 for b in batches)
    assert batches[-1] == [4]  # a row longer than the budget still goes, alone


def test_top_logprobs_while_generating_equal_teacher_forcing(teacher):
    """Capture while generating: the top-k recorded at each sampled step equals a teacher-forcing pass over the
    prompt + the generated tokens afterwards (one row, no padding). Tolerance: log-probs and tail mass within 1e-4
    (fp32; generation ran left-padded in batches with a KV cache); top-k ids equal wherever neighbouring log-probs
    are more than 1e-4 apart (a near-tie may swap)."""
    import torch

    params = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=12, seed=3)
    comps = teacher.chat(CONVS, params, top_logprobs=6)
    for conv, comp in zip(CONVS, comps, strict=True):
        assert len(comp.top_logprobs) == len(comp.token_ids) == comp.completion_tokens
        prompt = teacher.tokenizer(teacher.render(conv), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = teacher.model(input_ids=torch.tensor([prompt + comp.token_ids])).logits[0]
        lp = torch.log_softmax(logits[len(prompt) - 1:-1].float(), -1)
        vals, ids = lp.topk(6, dim=-1)
        for gen, v, i in zip(comp.top_logprobs, vals.tolist(), ids.tolist(), strict=True):
            assert gen.logprobs == pytest.approx(v, abs=1e-4)
            ties = {j for j in range(5) if v[j] - v[j + 1] <= 1e-4}
            assert all(a == b for j, (a, b) in enumerate(zip(gen.ids, i, strict=True))
                       if j not in ties and j - 1 not in ties)
            assert gen.tail_mass == pytest.approx(1 - sum(math.exp(x) for x in v), abs=1e-4)


def test_stream_yields_the_same_text(teacher):
    for conv in CONVS[:3]:
        deltas = list(teacher.stream(conv, GREEDY))
        assert "".join(deltas) == teacher.chat([conv], GREEDY)[0].text
        assert len(deltas) > 1


def test_sampling_params_are_honoured(teacher):
    sampled = SamplingParams(temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=16, seed=11)
    a = teacher.chat(CONVS[:2], sampled)
    b = teacher.chat(CONVS[:2], sampled)
    other = teacher.chat(CONVS[:2], SamplingParams(temperature=1.0, max_new_tokens=16, seed=12))
    assert [c.text for c in a] == [c.text for c in b]  # same seed, same sample
    assert [c.text for c in a] != [c.text for c in other]  # a different seed samples differently
    assert [c.text for c in a] != [c.text for c in teacher.chat(CONVS[:2], GREEDY)]  # not silently greedy
    short = teacher.chat(CONVS[:1], SamplingParams(temperature=0.0, max_new_tokens=3))[0]
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    full = teacher.chat(CONVS[:1], GREEDY)[0].text
    stop = full[3:5]
    with_stop = SamplingParams(temperature=0.0, max_new_tokens=16, stop=[stop])
    cut = teacher.chat(CONVS[:1], with_stop)[0]
    assert cut.text == full[:full.index(stop)] and cut.finish_reason == "stop"
    assert "".join(teacher.stream(CONVS[0], with_stop)) == cut.text


def test_top_logprobs_match_a_forward_pass(teacher):
    import torch

    c = teacher.chat(CONVS[1:2], GREEDY, top_logprobs=5)[0]
    assert len(c.top_logprobs) == c.completion_tokens
    enc = teacher.tokenizer(teacher.render(CONVS[1]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        lp = torch.log_softmax(teacher.model(**enc).logits[0, -1].float(), -1)
    vals, ids = lp.topk(5)
    first = c.top_logprobs[0]
    assert first.ids == ids.tolist()
    assert first.logprobs == pytest.approx(vals.tolist(), abs=1e-4)
    assert 0.0 <= first.tail_mass <= 1.0


def test_score_matches_direct_forward_and_tail_mass_is_a_probability(teacher):
    import torch

    convs = [c + [{"role": "assistant", "content": a}] for c, a in
             zip(CONVS, ["Hello there.", "Paris is the capital of France.", "y", "4", "Once upon a time."],
                 strict=True)]
    scored = teacher.score(convs, k=8)
    assert len(scored) == len(convs)
    for conv, s in zip(convs, scored, strict=True):
        ids, start, end = teacher.response_span(conv)
        assert teacher.tokenizer.decode(s.response_token_ids) == conv[-1]["content"] + "<|im_end|>"
        with torch.no_grad():  # unpadded, one conversation at a time
            logits = teacher.model(input_ids=torch.tensor([ids])).logits[0]
        lp = torch.log_softmax(logits[start - 1:end - 1].float(), -1)
        vals, top = lp.topk(8, dim=-1)
        assert [p.ids for p in s.positions] == top.tolist()
        for p, v in zip(s.positions, vals.tolist(), strict=True):
            assert p.logprobs == pytest.approx(v, abs=1e-4)
            assert 0.0 <= p.tail_mass <= 1.0
            assert p.tail_mass == pytest.approx(1 - sum(torch.tensor(v).exp().tolist()), abs=1e-5)
        actual = lp.gather(-1, torch.tensor(s.response_token_ids)[:, None])[:, 0]
        assert s.token_logprobs == pytest.approx(actual.tolist(), abs=1e-4)
    import core.llm.hf_local as hf

    small, hf.SCORE_LOGITS_BUDGET = hf.SCORE_LOGITS_BUDGET, 1  # one row per forward: the same numbers
    try:
        one_by_one = teacher.score(convs, k=8)
    finally:
        hf.SCORE_LOGITS_BUDGET = small
    for a, b in zip(scored, one_by_one, strict=True):
        assert [p.ids for p in a.positions] == [p.ids for p in b.positions]
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
    hot = teacher.score(convs[:1], k=8, temperature=2.0)[0]
    assert hot.positions[0].tail_mass > scored[0].positions[0].tail_mass  # a higher temperature flattens


def test_score_needs_a_final_assistant_turn(teacher):
    with pytest.raises(BackendError, match="end with the assistant"):
        teacher.score(CONVS[:1], k=4)


def test_clear_errors_for_unknown_model_and_missing_chat_template(tiny_models, tmp_path, workspace):
    from core.config.base import BackendSpec
    from core.llm import make_backend

    with pytest.raises(BackendError, match="unknown model 'no-such-model'"):
        make_backend(BackendSpec(type="transformers", model="no-such-model"), workspace=workspace)
    with pytest.raises(BackendError, match="does not exist"):
        make_backend(BackendSpec(type="transformers", model=str(tmp_path / "missing")), workspace=workspace)
    bare = tmp_path / "bare"
    shutil.copytree(tiny_models.teacher, bare)
    (bare / "chat_template.jinja").unlink()
    with pytest.raises(BackendError, match="no chat template.*chat_template.jinja"):
        make_backend(BackendSpec(type="transformers", model=str(bare)))
    shutil.copytree(tiny_models.student, workspace.models / "stud")
    b = make_backend(BackendSpec(type="transformers", model="stud"), workspace=workspace)  # by workspace name
    assert b.chat(CONVS[:1], SamplingParams(temperature=0, max_new_tokens=2))[0].completion_tokens == 2
    b.close()


def test_transformers_serve_job_speaks_openai(tiny_models, workspace):
    """The serve job for a transformers model: endpoint.json, chat + stream + top_logprobs over HTTP, stop."""
    from core.config.base import EndpointSpec
    from core.config.train import ServeJob
    from core.jobs.context import STOP_FLAG, JobContext
    from core.llm.openai_http import OpenAIBackend
    from core.llm.serve import read_endpoint, run

    shutil.copytree(tiny_models.teacher, workspace.models / "tiny-teacher")
    run_dir = workspace.runs / "serve-1"
    run_dir.mkdir()
    ctx = JobContext(job_id="serve-1", run_dir=run_dir, workspace=workspace, devices=["cpu"])
    config = ServeJob(model={"type": "transformers", "model": "tiny-teacher"})
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(errors, run, config, ctx), daemon=True)
    thread.start()
    deadline = time.time() + 60
    while read_endpoint(run_dir) is None and time.time() < deadline and thread.is_alive():
        time.sleep(0.2)
    ep = read_endpoint(run_dir)
    assert ep and ep["model"] == "tiny-teacher" and ep["type"] == "transformers", errors
    client = OpenAIBackend(EndpointSpec(base_url=ep["base_url"], max_retries=0, timeout_s=30))
    try:
        c = client.chat(CONVS[:2], GREEDY, top_logprobs=3)
        assert all(x.ok for x in c) and client.name == "tiny-teacher"
        from core.llm.hf_local import HFLocalBackend

        local = HFLocalBackend(tiny_models.teacher, device="cpu")
        assert [x.text for x in c] == [x.text for x in local.chat(CONVS[:2], GREEDY)]
        assert len(c[0].top_logprobs) == c[0].completion_tokens and len(c[0].top_logprobs[0].logprobs) == 3
        assert "".join(client.stream(CONVS[0], GREEDY)) == c[0].text
    finally:
        client.close()
        (run_dir / STOP_FLAG).touch()
        thread.join(timeout=30)
    assert not thread.is_alive() and not errors


def _capture(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as e:
        errors.append(e)


def test_local_server_stream_reports_usage_in_tokens(teacher):
    """The chat arena's tokens/s comes from the stream's usage: it must count tokens, not streamed chunks."""
    import json as _json

    import httpx

    from core.llm.local_server import LocalOpenAIServer

    body = {"model": "t", "messages": CONVS[0], "max_tokens": 24, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with LocalOpenAIServer(teacher, "t") as server:
        chunks, usage = [], None
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = _json.loads(line[6:])
                if data.get("usage"):
                    usage = data["usage"]
                for ch in data.get("choices") or []:
                    if ch.get("delta", {}).get("content"):
                        chunks.append(ch["delta"]["content"])
    text = "".join(chunks)
    assert usage is not None
    assert usage["completion_tokens"] == len(teacher.tokenizer.encode(text, add_special_tokens=False))
    assert usage["completion_tokens"] > len(chunks)  # word-sized pieces: fewer chunks than tokens
