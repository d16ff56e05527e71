"""Operators as pure functions: requests built from templates (original question kept, seeds fixed), tagged replies
parsed, and every failure (request error, unparseable reply, unusable input) in rejects with its reason.

The backend here is a scripted test double implementing the core.llm protocol: it answers by rule so the parse
paths are exercised exactly. Real teachers (tiny transformers model, HTTP server) are in test_synth_job.py.
"""

from __future__ import annotations

import hashlib

import pytest

from core.data.ops import balance
from core.llm.base import Completion, SamplingParams
from core.synth.apply import apply
from core.synth.operators import OpParams, make_units
from core.synth.parsing import ParseFailure, find_tag, match_category, thought_solution
from core.synth.templates import TemplateError, check_template, default_template, load_template, render, save_template


class ScriptedTeacher:
    """Replies by rule from the last user message; records every request it saw."""

    name = "scripted"

    def __init__(self, mode: str):
        self.mode = mode
        self.seen: list[list[dict]] = []

    def chat(self, conversations, params, top_logprobs=0):
        out = []
        for conv in conversations:
            self.seen.append(conv)
            user = conv[-1]["content"]
            if "FAIL" in user:
                out.append(Completion("", finish_reason="error", error="HTTP 500 after 5 retries"))
                continue
            if "GARBAGE" in user:
                out.append(Completion("I am not sure what you want.", 10, 7))
                continue
            h = hashlib.sha1(user.encode()).hexdigest()[:6]
            text = {
                "label": f"Answer to: {user}",
                "expand": f"<answer>Describe topic {h} in two sentences.</answer>",
                "refine": f"Sure! <answer>{user.splitlines()[-1]} Answer in one paragraph.</answer>",
                "extract": f"<instruction>What does text {h} say?</instruction><response>It says {h}.</response>",
                "cot": "<thought>Add the numbers step by step.</thought><solution>42</solution>",
                "short": "Short reasoning: 42.",
                "classify": _classify(user.splitlines()[-1]),
            }[self.mode]
            out.append(Completion(text, prompt_tokens=len(user) // 4, completion_tokens=len(text) // 4))
        return out

    def close(self):
        pass


def _classify(instruction: str) -> str:
    if "sum" in instruction.lower():
        return "<answer>math</answer>"
    return "It is about <answer>Code Generation</answer>" if "code" in instruction.lower() else "no idea"


ROWS = [
    {"id": "r1", "instruction": "What is the sum of 2 and 40?"},
    {"id": "r2", "instruction": "Write code to reverse a list.", "system": "You write Python."},
    {"id": "r3", "instruction": "This one will FAIL at the endpoint."},
    {"id": "r4", "instruction": "GARBAGE reply expected here."},
    {"id": "r5", "instruction": "   "},
]


def test_label_keeps_ids_and_question_and_rejects_with_reasons():
    t = ScriptedTeacher("label")
    res = apply("label", ROWS, t)
    by_id = {r["id"]: r for r in res.rows}
    assert set(by_id) == {"r1", "r2", "r4"}  # label takes any non-empty reply, even an odd one
    assert by_id["r1"]["instruction"] == "What is the sum of 2 and 40?"
    assert by_id["r1"]["output"] == "Answer to: What is the sum of 2 and 40?"
    assert by_id["r1"]["teacher"] == "scripted"
    rejects = {r["id"]: r for r in res.rejects}
    assert rejects["r3"]["stage"] == "request" and "HTTP 500" in rejects["r3"]["reason"]
    assert rejects["r5"]["stage"] == "input" and "no instruction" in rejects["r5"]["reason"]
    assert len(res.rows) + len(res.rejects) == len(ROWS)
    # The row's own system prompt wins over the job's default.
    convs = {c[-1]["content"]: c for c in t.seen}
    assert convs["Write code to reverse a list."][0] == {"role": "system", "content": "You write Python."}
    assert convs["What is the sum of 2 and 40?"][0]["content"] == "You are a helpful assistant."
    assert res.prompt_tokens > 0 and res.completion_tokens > 0


def test_label_multi_turn_regenerates_last_answer():
    row = {"id": "m", "instruction": "and 3?", "output": "old", "messages": [
        {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"},
        {"role": "user", "content": "and 3?"}, {"role": "assistant", "content": "old"}]}
    t = ScriptedTeacher("label")
    res = apply("label", [row], t)
    out = res.rows[0]
    assert [m["content"] for m in t.seen[0][1:]] == ["1+1?", "2", "and 3?"]
    assert out["messages"][-1] == {"role": "assistant", "content": "Answer to: and 3?"}
    assert out["reference_output"] == "old" and len(out["messages"]) == 4


def test_expand_is_seeded_and_parses_answer_tags():
    pool = [{"id": f"p{i}", "instruction": f"Pool instruction number {i}."} for i in range(10)]
    params = OpParams(template=default_template("expand"), num_in_context_samples=3, num_output_samples=6, seed=7)
    a, _ = make_units("expand", pool, params)
    b, _ = make_units("expand", pool, params)
    assert [u.messages for u in a] == [u.messages for u in b]  # same seed -> same requests (resume rebuilds them)
    other, _ = make_units("expand", pool, OpParams(template=params.template, num_output_samples=6, seed=8))
    assert [u.messages for u in a] != [u.messages for u in other]
    assert [u.id for u in a] == [f"expand-s7-{k}" for k in range(6)]
    res = apply("expand", pool, ScriptedTeacher("expand"), params=params)
    assert len(res.rows) == 6 and all(r["instruction"].startswith("Describe topic") for r in res.rows)
    assert all(len(r["expanded_from"]) == 3 for r in res.rows)


def test_refine_extract_cot_rewrite_classify():
    rows = [{"id": "a", "instruction": "Sum 2 and 3.", "output": "Long chain of thought " * 10}]
    r = apply("refine", rows, ScriptedTeacher("refine")).rows[0]
    assert r["id"] == "a" and r["original_instruction"] == "Sum 2 and 3." and r["instruction"].endswith("paragraph.")

    texts = [{"id": "t", "text": "Water boils at 100 C at sea level."}]
    e = apply("extract", texts, ScriptedTeacher("extract")).rows[0]
    assert e["instruction"].startswith("What does text") and e["output"].startswith("It says")
    assert e["source_text"] == texts[0]["text"]

    c = apply("cot_generate", rows, ScriptedTeacher("cot")).rows[0]
    assert (c["instruction"], c["thought"], c["solution"]) == ("Sum 2 and 3.", "Add the numbers step by step.", "42")
    assert c["output"].startswith("<think>\nAdd the numbers") and c["reference_output"].startswith("Long chain")

    s = apply("long2short", rows, ScriptedTeacher("short")).rows[0]
    assert s["instruction"] == "Sum 2 and 3." and s["original_output"].startswith("Long chain")
    assert 0 < s["compression_ratio"] < 1
    g = apply("short2long", [{"id": "b", "instruction": "q", "output": "x"}], ScriptedTeacher("short")).rows[0]
    assert g["expansion_ratio"] > 1
    nocot = apply("long2short", [{"id": "z", "instruction": "q"}], ScriptedTeacher("short"))
    assert nocot.rejects[0]["stage"] == "input" and "chain of thought" in nocot.rejects[0]["reason"]

    cls = apply("classify", [{"id": "1", "instruction": "What is the sum of 1 and 2?"},
                             {"id": "2", "instruction": "Write code for FizzBuzz"},
                             {"id": "3", "instruction": "Tell a joke"}], ScriptedTeacher("classify")).rows
    assert [r["category"] for r in cls] == ["Math", "Code Generation", "Others"]
    assert cls[2]["category_unmatched"] == "no idea"


def test_unparseable_replies_go_to_rejects_after_retries():
    t = ScriptedTeacher("cot")
    rows = [{"id": "ok", "instruction": "Compute."}, {"id": "bad", "instruction": "GARBAGE please"}]
    res = apply("cot_generate", rows, t, sampling=SamplingParams(temperature=0.7, seed=1), parse_retries=2)
    assert [r["id"] for r in res.rows] == ["ok"]
    rej = res.rejects[0]
    assert rej["id"] == "bad" and rej["stage"] == "parse" and rej["attempts"] == 3
    assert "no <thought>/<solution>" in rej["reason"] and rej["reply"] == "I am not sure what you want."
    # Greedy decoding would repeat the same reply: no retries then.
    t2 = ScriptedTeacher("cot")
    res2 = apply("cot_generate", rows, t2, sampling=SamplingParams(temperature=0.0), parse_retries=2)
    assert res2.rejects[0]["attempts"] == 1 and len(t2.seen) == 2


def test_pipelined_dispatch_gives_the_same_rows():
    rows = [{"id": f"r{i}", "instruction": f"Question {i}?"} for i in range(30)]
    a = apply("label", rows, ScriptedTeacher("label"), window=4)
    b = apply("label", rows, ScriptedTeacher("label"), window=8, pipelined=True)
    assert a.rows == b.rows and len(a.rows) == 30


def test_templates_placeholders_and_v1_prompt(workspace):
    assert render("Q: {instruction} {{literal}} {other}", {"instruction": "x"}) == "Q: x {literal} {other}"
    with pytest.raises(TemplateError, match=r"unknown placeholder\(s\) \{question\}"):
        check_template("label", "Answer {question}")
    with pytest.raises(TemplateError, match="must contain {cot}|must contain {instruction}"):
        check_template("long2short", "Simplify: {cot}")
    for op in ("label", "expand", "refine", "extract", "cot_generate", "long2short", "short2long", "classify"):
        check_template(op, default_template(op))
    p = save_template(workspace, "my-label", "label", "Please answer carefully:\n{instruction}")
    assert p.parent == workspace.templates
    assert load_template("label", "my-label", workspace).startswith("Please answer carefully")
    v1 = load_template("refine", None, workspace, prompt="Rewrite this {carefully}:")
    assert render(v1, {"instruction": "abc"}) == "Rewrite this {carefully}:\nabc"


def test_parsing_helpers():
    assert find_tag("<answer>a</answer> then <answer>b</answer>", "answer") == "b"
    assert find_tag("<answer>cut off by the token limi", "answer") == "cut off by the token limi"
    assert thought_solution("<think>step</think>\nThe answer is 4.") == ("step", "The answer is 4.")
    with pytest.raises(ParseFailure, match="no <solution>"):
        thought_solution("<thought>only thinking</thought>")
    assert match_category("<answer>code generation</answer>", ["Math", "Code Generation"])[0] == "Code Generation"


def test_balance_resamples_toward_shares():
    rows = [{"id": f"m{i}", "category": "Math"} for i in range(80)] + \
           [{"id": f"c{i}", "category": "Code"} for i in range(20)]
    out, rep = balance(rows, {"Math": 0.5, "Code": 0.5}, total=60, seed=1)
    assert rep.after == {"Math": 30, "Code": 20} and rep.short == {"Code": 10}
    out2, _ = balance(rows, {"Math": 0.5, "Code": 0.5}, total=60, seed=1)
    assert [r["id"] for r in out] == [r["id"] for r in out2]
    up, rep2 = balance(rows, {"Math": 0.5, "Code": 0.5}, total=60, seed=1, upsample=True)
    assert rep2.after == {"Math": 30, "Code": 30} and len({r["id"] for r in up}) == 60
