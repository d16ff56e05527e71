"""The OpenAI chat-completions wire format, both directions, kept in one place.

The client (openai_http, through the `openai` SDK), our own transformers server (local_server) and the test server all
speak it; the shapes of requests, responses and stream chunks live here so the three cannot drift apart. No I/O, no
heavy imports.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from core.llm.base import Completion, SamplingParams, TokenTopK


class ProtocolError(ValueError):
    """A request or response that does not follow the protocol; the message names the field."""


# ---------------------------------------------------------------- requests


def chat_request(
    model: str, messages: list[dict], params: SamplingParams, top_logprobs: int = 0, stream: bool = False,
    extra: dict | None = None,
) -> dict:
    """Keyword arguments for the SDK's `chat.completions.create`: the standard fields by name, the rest (top_k,
    server-specific knobs in `extra`) in `extra_body`, which the SDK merges into the same JSON body (`extra` wins)."""
    kw: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": params.max_new_tokens,
                          "temperature": params.temperature, "top_p": params.top_p}
    if params.seed is not None:
        kw["seed"] = params.seed
    if params.stop:
        kw["stop"] = list(params.stop)
    if top_logprobs > 0:
        kw["logprobs"] = True
        kw["top_logprobs"] = top_logprobs
    if stream:
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
    body: dict[str, Any] = {"top_k": params.top_k} if params.top_k else {}  # vLLM and most servers accept top_k
    body.update(extra or {})
    if body:
        kw["extra_body"] = body
    return kw


def parse_chat_request(body: Any) -> tuple[list[dict], SamplingParams, int, bool]:
    """(messages, sampling params, top_logprobs, stream) from a request body; ProtocolError names a bad field."""
    if not isinstance(body, dict):
        raise ProtocolError("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ProtocolError(f"messages[{i}] needs a 'role'")
        if isinstance(m.get("content"), list):  # content parts: keep the text ones
            m["content"] = "".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
        if not isinstance(m.get("content"), str):
            raise ProtocolError(f"messages[{i}].content must be a string")
    try:
        stop = body.get("stop") or []
        params = SamplingParams(
            temperature=float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
            top_p=float(body.get("top_p") or 1.0),
            top_k=int(body["top_k"]) if body.get("top_k") not in (None, -1, 0) else None,
            max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 512),
            seed=int(body["seed"]) if body.get("seed") is not None else None,
            stop=[stop] if isinstance(stop, str) else list(stop),
        )
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"bad sampling parameter: {e}") from e
    top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
    return messages, params, top, bool(body.get("stream"))


# ---------------------------------------------------------------- responses (server side)


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def logprobs_content(top: list[TokenTopK] | None) -> dict | None:
    if not top:
        return None
    content = []
    for t in top:
        toks = t.tokens or [f"token_id:{i}" for i in t.ids]
        alts = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())} for tok, lp in zip(toks, t.logprobs,
                                                                                              strict=False)]
        content.append({"token": toks[0] if toks else "", "logprob": t.logprobs[0] if t.logprobs else 0.0,
                        "bytes": list(toks[0].encode()) if toks else [], "top_logprobs": alts})
    return {"content": content}


def chat_response(model: str, c: Completion, rid: str | None = None) -> dict:
    return {
        "id": rid or new_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                     "logprobs": logprobs_content(c.top_logprobs), "finish_reason": c.finish_reason}],
        "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                  "total_tokens": c.prompt_tokens + c.completion_tokens},
    }


def stream_chunk(model: str, rid: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def usage_chunk(model: str, rid: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens}}


def sse(obj: dict | str) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def models_response(names: list[str], owned_by: str = "easydistill") -> dict:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": int(time.time()), "owned_by": owned_by}
                                       for n in names]}


def error_body(message: str, kind: str = "invalid_request_error", code: int = 400) -> dict:
    return {"error": {"message": message, "type": kind, "code": code}}


# ---------------------------------------------------------------- responses (client side)


def _token_id(token: str) -> int:
    """vLLM's `return_tokens_as_token_ids` spells tokens 'token_id:123'; other servers give text (-1 = unknown)."""
    if token.startswith("token_id:"):
        try:
            return int(token[9:])
        except ValueError:
            return -1
    return -1


def parse_logprobs(lp: Any) -> list[TokenTopK] | None:
    if not isinstance(lp, dict) or not isinstance(lp.get("content"), list):
        return None
    out = []
    for pos in lp["content"]:
        alts = pos.get("top_logprobs") or [{"token": pos.get("token", ""), "logprob": pos.get("logprob", 0.0)}]
        toks = [a.get("token", "") for a in alts]
        lps = [float(a.get("logprob", 0.0)) for a in alts]
        mass = sum(min(1.0, 2.718281828459045 ** v) for v in lps)
        out.append(TokenTopK(ids=[_token_id(t) for t in toks], logprobs=lps, tokens=toks,
                             tail_mass=max(0.0, 1.0 - mass)))
    return out


def parse_chat_response(data: Any) -> Completion:
    """A Completion from a chat.completion body; ProtocolError says what is missing."""
    if not isinstance(data, dict):
        raise ProtocolError(f"response is not a JSON object: {str(data)[:200]}")
    if "error" in data and not data.get("choices"):
        err = data["error"]
        raise ProtocolError(f"server error: {err.get('message', err) if isinstance(err, dict) else err}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ProtocolError(f"response has no 'choices': {json.dumps(data)[:200]}")
    ch = choices[0]
    msg = ch.get("message") if isinstance(ch, dict) else None
    if not isinstance(msg, dict):
        raise ProtocolError("response choices[0] has no 'message'")
    text = msg.get("content") or ""
    if not isinstance(text, str):
        raise ProtocolError("response choices[0].message.content is not a string")
    usage = data.get("usage") or {}
    return Completion(
        text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=ch.get("finish_reason") or "stop", top_logprobs=parse_logprobs(ch.get("logprobs")),
    )
