"""OpenAI-compatible backend (the `openai` SDK under our retry / concurrency / redaction policy) against a real local
HTTP server that misbehaves on purpose."""

from __future__ import annotations

import collections

import pytest

from core.config.base import EndpointSpec
from core.llm.base import BackendError, SamplingParams
from core.llm.openai_http import OpenAIBackend, retry_after_seconds
from core.llm.openai_protocol import error_body
from core.net import free_port
from tests import fake_openai_server
from tests.fake_openai_server import FakeOpenAIServer

PARAMS = SamplingParams(temperature=0.0, max_new_tokens=64)


def convs(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


def backend(srv: FakeOpenAIServer, **kw) -> OpenAIBackend:
    ep = {"base_url": srv.base_url, "concurrency": 4, "timeout_s": 2.0, "max_retries": 8}
    ep.update({k: kw.pop(k) for k in list(kw) if k in EndpointSpec.model_fields})
    return OpenAIBackend(EndpointSpec(**ep), backoff_base=kw.pop("backoff_base", 0.01), **kw)


def test_answers_in_order_with_usage_and_discovered_model():
    with FakeOpenAIServer(answer=lambda m: f"answer to {m[-1]['content']}") as srv:
        b = backend(srv)
        out = b.chat(convs(10), PARAMS)
        b.close()
    assert [c.text for c in out] == [f"answer to question {i}" for i in range(10)]
    assert all(c.ok and c.finish_reason == "stop" for c in out)
    assert b.name == "fake-model"  # the only model the server lists
    assert b.usage.ok == 10 and b.usage.completion_tokens == 40 and b.usage.prompt_tokens == 20
    assert all(r.body["model"] == "fake-model" and r.body["temperature"] == 0.0 for r in srv.chat_records())


def test_faults_every_row_answered_once_and_concurrency_limit_held():
    """429 / 500 / hang past the timeout / malformed JSON / dropped connection at a seeded 35% rate."""
    kinds = ("429", "500", "timeout", "malformed", "disconnect")
    with FakeOpenAIServer(fault_rate=0.35, fault_kinds=kinds, seed=4, latency=0.02, hang_s=3.0) as srv:
        b = backend(srv, concurrency=4, timeout_s=0.5, max_retries=12)
        out = b.chat(convs(40), PARAMS)
        b.close()
        records = srv.chat_records()
    assert [c.text for c in out] == [f"echo: question {i}" for i in range(40)], [c.error for c in out if c.error]
    faults = collections.Counter(r.fault for r in records if r.fault)
    assert set(faults) == set(kinds)  # every kind of fault really happened
    good = collections.Counter(r.last_user for r in srv.answered())
    assert good == {f"question {i}": 1 for i in range(40)}  # each row got exactly one good answer: no duplicates
    # the client never had more than 4 calls open (the server may briefly count a timed-out call it is still
    # abandoning; the fault-free test below checks the limit from the server's side)
    assert b.usage.peak_in_flight <= 4
    assert any(r.status == 499 for r in records)  # the server saw the client hang up on a slow request
    assert b.usage.retries == len(records) - 40 and b.usage.failed == 0


def test_concurrency_is_used_and_bounded():
    with FakeOpenAIServer(latency=0.1) as srv:
        b = backend(srv, concurrency=3)
        b.chat(convs(12), PARAMS)
        b.close()
    assert 2 <= srv.max_in_flight <= b.usage.peak_in_flight <= 3  # a client call spans its server call


def test_retry_after_is_honoured():
    with FakeOpenAIServer(script=["429"], retry_after=0.4) as srv:
        b = backend(srv, backoff_base=0.001)
        out = b.chat(convs(1), PARAMS)
        b.close()
        first, second = srv.chat_records()
    assert out[0].ok and first.status == 429 and second.status == 200
    assert second.started - first.finished >= 0.35  # waited as told, not the 1 ms backoff
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and retry_after_seconds("2.5") == 2.5


def test_persistent_500_reported_per_row_after_bounded_retries():
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=("500",)) as srv:
        b = backend(srv, max_retries=3)
        out = b.chat(convs(3), PARAMS)
        b.close()
    assert all(not c.ok and c.finish_reason == "error" for c in out)
    assert "HTTP 500" in out[0].error and "4 attempts" in out[0].error
    assert len(srv.chat_records()) == 3 * 4


def test_malformed_body_reported_with_reason():
    with FakeOpenAIServer(fault_rate=1.0, fault_kinds=("malformed",)) as srv:
        b = backend(srv, max_retries=1)
        out = b.chat(convs(2), PARAMS)
        b.close()
    assert all("malformed JSON" in c.error for c in out)


def test_server_down_fails_per_row_without_hanging():
    port = free_port()  # a port nobody listens on
    b = OpenAIBackend(EndpointSpec(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, timeout_s=1),
                      backoff_base=0.01)
    out = b.chat(convs(3), PARAMS)
    b.close()
    assert all(not c.ok and "connection error" in c.error for c in out)
    with pytest.raises(BackendError, match="cannot list models"):
        _ = OpenAIBackend(EndpointSpec(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)).model


def _quote_refused_key(handler) -> bool:
    """A careless server: its 401 quotes the Authorization header it refused (some proxies do)."""
    sent = handler.headers.get("Authorization")
    if sent == f"Bearer {handler.fake.api_key}":
        return True
    handler._json(401, error_body(f"invalid API key in '{sent}'", "authentication_error", 401))
    return False


def test_key_from_env_var_and_never_in_errors_or_logs(monkeypatch, caplog):
    key = "sk-test-secret-key-123456"
    monkeypatch.setattr(fake_openai_server._Handler, "_authorized", _quote_refused_key)
    caplog.set_level("DEBUG")
    with FakeOpenAIServer(api_key=key) as srv:
        monkeypatch.setenv("FAKE_KEY", key)
        good = backend(srv, api_key_env="FAKE_KEY")
        assert good.chat(convs(1), PARAMS)[0].text == "echo: question 0"
        good.close()
        monkeypatch.setenv("FAKE_KEY", "sk-wrong-key-abcdefgh")
        bad = backend(srv, api_key_env="FAKE_KEY", model="fake-model")
        out = bad.chat(convs(1), PARAMS)[0]
        with pytest.raises(BackendError, match="HTTP 401") as streamed:
            list(bad.stream(convs(1)[0], PARAMS))
        bad.close()
        assert "HTTP 401" in out.error and "invalid API key" in out.error  # the server's reason is kept...
        assert "sk-wrong" not in out.error and "sk-wrong" not in str(streamed.value)  # ...without the key it quoted
        assert len(srv.chat_records()) == 3  # 401 is not retried
    assert caplog.records and not [r for r in caplog.records if "sk-" in r.getMessage()]
    monkeypatch.delenv("FAKE_KEY")
    with pytest.raises(BackendError, match="FAKE_KEY is not set"):
        OpenAIBackend(EndpointSpec(base_url="http://127.0.0.1:9/v1", api_key_env="FAKE_KEY"))


def test_ambient_openai_environment_never_reaches_an_endpoint(monkeypatch):
    """The SDK reads OPENAI_API_KEY / _ORG_ID / _PROJECT_ID / _CUSTOM_HEADERS; an endpoint gets only its own key."""
    ambient = "sk-ambient-user-key-987654"
    monkeypatch.setenv("OPENAI_API_KEY", ambient)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-ambient")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-ambient")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", f"X-Team-Token: t0ps3cret\nAuthorization: Bearer {ambient}")
    with FakeOpenAIServer(api_key=ambient) as srv:  # a server that would accept the user's OpenAI key
        keyless = backend(srv, model="fake-model", max_retries=0)
        out = keyless.chat(convs(1), PARAMS)[0]
        keyless.close()
        assert "HTTP 401" in out.error  # the ambient key was not sent
        srv.api_key = "sk-endpoint-key-13579"
        monkeypatch.setenv("EP_KEY", srv.api_key)
        named = backend(srv, model="fake-model", api_key_env="EP_KEY")
        assert named.chat(convs(1), PARAMS)[0].ok  # the endpoint's key, not the ambient Authorization header
        assert "".join(named.stream(convs(1)[0], PARAMS)) == "echo: question 0"
        named.close()
        sent = [set(r.headers) for r in srv.records]
    assert len(sent) == 3 and not any({"openai-organization", "openai-project", "x-team-token"} & h for h in sent)


def test_stream_matches_chat_and_counts_usage():
    """A 500 and a 200 that is no event stream (a malformed body) are retried before the first delta."""
    with FakeOpenAIServer(answer=lambda m: "one two three four", script=["500", "malformed"]) as srv:
        b = backend(srv)
        deltas = list(b.stream(convs(1)[0], PARAMS))
        b.close()
    assert len(deltas) == 4 and "".join(deltas) == "one two three four"
    assert b.usage.completion_tokens == 4 and b.usage.retries == 2 and b.usage.ok == 1


def test_top_logprobs_and_sampling_params_sent():
    with FakeOpenAIServer(answer=lambda m: "a b c") as srv:
        b = backend(srv)
        params = SamplingParams(temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=2, seed=3, stop=["\n"])
        c = b.chat(convs(1), params, top_logprobs=3)[0]
        b.close()
        body = srv.chat_records()[0].body
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.7, 0.9, 20, 2, 3, ["\n"])
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    assert c.text == "a b" and c.finish_reason == "length"
    assert len(c.top_logprobs) == 2 and c.top_logprobs[0].tokens[0] == "a" and len(c.top_logprobs[0].logprobs) == 3
    assert 0.0 <= c.top_logprobs[0].tail_mass <= 1.0


def test_score_needs_vllm():
    with FakeOpenAIServer() as srv:
        b = backend(srv)
        res = b.score([[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]], 5)
        b.close()
    assert "not a vLLM server" in res[0].error


def test_make_backend_routes_specs(tiny_models, workspace):
    from core.config.base import BackendSpec
    from core.llm import make_backend

    with FakeOpenAIServer(model="served") as srv:
        b = make_backend(BackendSpec(type="openai", model="served", endpoint={"base_url": srv.base_url}))
        assert isinstance(b, OpenAIBackend) and b.chat(convs(1), PARAMS)[0].ok
        b.close()
        assert srv.chat_records()[0].body["model"] == "served"
        # a running vLLM server (e.g. a serve job's endpoint) is reached over HTTP too
        b = make_backend(BackendSpec(type="vllm", endpoint={"base_url": srv.base_url}))
        assert isinstance(b, OpenAIBackend) and b.model == "served" and b.name == "served"
        b.close()
    spec = BackendSpec(type="vllm", model=str(tiny_models.teacher), vllm={"python": "/nonexistent/bin/python"})
    with pytest.raises(BackendError, match="no vLLM Python at /nonexistent/bin/python.*make vllm-env"):
        make_backend(spec, workspace=workspace)
