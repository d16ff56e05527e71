"""Evaluation metrics on known answers: exact match, math-verify, judge verdict parsing and position swap, KL maths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.chat.reasoning import final_answer, split_reasoning, thought_text
from core.eval import answers, judge
from core.eval.divergence import TokenizerMismatch, compact, row_kl, row_nll
from core.llm.base import ScoredResponse, TokenTopK

# ---------------------------------------------------------------- reasoning tags


def test_split_reasoning_think_and_cot_tags():
    segs = split_reasoning("<think>add 2 and 2</think>\nThe answer is 4.")
    assert [(s.kind, s.text) for s in segs] == [("thought", "add 2 and 2"), ("answer", "The answer is 4.")]
    cot = "<|begin_of_thought|>step 1\nstep 2<|end_of_thought|>\n<|begin_of_solution|>x = 3<|end_of_solution|>"
    assert thought_text(cot) == "step 1\nstep 2"
    assert final_answer(cot) == "x = 3"
    # a template that put <think> into the prompt: only the closing tag reaches the reply
    assert final_answer("reasoning here</think> 42") == "42"
    # streaming: an opened thought that has not closed yet
    segs = split_reasoning("<think>still thinking")
    assert segs[0].kind == "thought" and not segs[0].closed
    assert final_answer("<think>still thinking") == ""
    assert final_answer("plain reply") == "plain reply"


# ---------------------------------------------------------------- answer checks


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("Paris", "paris", True),
        ("The answer is Paris.", "Paris", True),
        ("<think>France's capital...</think>The capital is Paris", "Paris", False),  # not the short answer
        ("<think>it is Lyon? no</think>Paris", "Paris", True),
        ("so we get \\boxed{1,000}", "1000", True),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "#### 72", True),
        ("The answer is 71", "72", False),
        ("3.14", "3.14", True),
        ("", "3", False),
    ],
)
def test_exact_match_known_answers(pred, gold, expected):
    assert answers.exact_match(pred, gold) is expected


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("The answer is $\\frac{1}{2}$", "0.5", True),
        ("Therefore \\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),
        ("The result is $(x+1)^2$", "x^2+2x+1", True),
        ("I get \\boxed{41}", "42", False),
        ("<think>maybe 7</think>\\boxed{6}", "6", True),
        ("<think>the answer is 6</think>\\boxed{7}", "6", False),  # the thought is not the answer
        ("no number here", "6", False),
        ("Janet makes 18 dollars.\n#### 18", "She makes 9*2 = 18 dollars\n#### 18", True),
    ],
)
def test_math_verify_known_answers(pred, gold, expected):
    assert answers.math_verify_match(pred, gold) is expected


def test_gold_answer_field_order():
    row = {"instruction": "q", "output": "long answer", "answer": "4"}
    assert answers.gold_answer(row) == "4"
    assert answers.gold_answer(row, "output") == "long answer"
    assert answers.gold_answer({"instruction": "q"}) is None


# ---------------------------------------------------------------- judge


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("A is more complete. [[A]]", "A"),
        ("Format: [[A]], [[B]] or [[C]].\nBoth fine but B is exact.\n[[B]]", "B"),
        ("Verdict: tie", "C"),
        ("[[C]]", "C"),
        ("The better answer is Answer B.", "B"),
        ("the winner is a tie", "C"),
        ("<verdict>A</verdict>", "A"),
        ("Answer A says x. Answer B says y.", None),
        ("", None),
    ],
)
def test_parse_verdict(reply, verdict):
    assert judge.parse_verdict(reply) == verdict


def test_position_swap_cancels_order_bias():
    # A judge that always prefers the first answer: the model wins as A and loses as B -> a tie, not a win
    biased = judge.WinRate()
    for _ in range(4):
        assert biased.add("A", "A") == "tie"
    s = biased.summary()
    assert s["winrate"] == 0.5 and s["consistency"] == 0.0 and s["first_position_rate"] == 1.0

    # A judge that picks the model's answer whichever position it is in: model_first=A, model_second=B
    fair = judge.WinRate()
    assert fair.add("A", "B") == "win"
    assert fair.add("B", "A") == "loss"
    assert fair.add("C", "C") == "tie"
    assert fair.add(None, "B") == "win"  # one order unparseable: the other decides
    assert fair.add(None, None) is None
    s = fair.summary()
    assert (s["wins"], s["losses"], s["ties"], s["unjudged"]) == (2, 1, 1, 1)
    assert s["winrate"] == pytest.approx((2 + 0.5) / 4)
    assert s["consistency"] == 1.0


def test_judge_template_needs_placeholders(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Compare {question} and {answer_a}")
    with pytest.raises(ValueError, match="answer_b"):
        judge.load_template(p)
    conv = judge.judge_conversation("Q?", "one", "two")
    assert "[Answer A]\none" in conv[-1]["content"] and "[Answer B]\ntwo" in conv[-1]["content"]


# ---------------------------------------------------------------- KL / perplexity from top-k


def _scored(logits: np.ndarray, k: int, tokens: list[int]) -> tuple[ScoredResponse, np.ndarray]:
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    pos = []
    for t in range(lp.shape[0]):
        top = np.argsort(-lp[t])[:k]
        pos.append(TokenTopK(ids=top.tolist(), logprobs=lp[t, top].tolist(),
                             tail_mass=float(max(0.0, 1 - np.exp(lp[t, top]).sum()))))
    return ScoredResponse(positions=pos, response_token_ids=tokens), lp


def test_kl_exact_with_full_vocab_and_zero_against_itself():
    rng = np.random.default_rng(0)
    v, t = 40, 6
    toks = rng.integers(0, v, t).tolist()
    p, lp_p = _scored(rng.normal(size=(t, v)) * 2, v, toks)
    q, lp_q = _scored(rng.normal(size=(t, v)), v, toks)
    dense = float((np.exp(lp_p) * (lp_p - lp_q)).sum())
    assert row_kl(compact(p), compact(q)).kl_sum == pytest.approx(dense, rel=1e-9)
    assert row_kl(compact(p), compact(p)).kl_sum == 0.0
    # top-k + tail bucket: still 0 against itself, positive otherwise, and misses are counted
    p5, _ = _scored(lp_p, 5, toks)
    q5, _ = _scored(lp_q, 5, toks)
    assert row_kl(compact(p5), compact(p5)).kl_sum == 0.0
    r = row_kl(compact(p5), compact(q5))
    assert r.kl_sum > 0 and r.estimated_positions > 0


def test_nll_from_token_logprobs_or_topk():
    rng = np.random.default_rng(1)
    toks = [3, 7, 1]
    s, lp = _scored(rng.normal(size=(3, 10)), 10, toks)
    expected = -sum(lp[i, tok] for i, tok in enumerate(toks))
    assert row_nll(compact(s)).nll_sum == pytest.approx(expected)
    s.token_logprobs = [float(lp[i, tok]) for i, tok in enumerate(toks)]
    r = row_nll(compact(s))
    assert r.nll_sum == pytest.approx(expected) and r.perplexity == pytest.approx(math.exp(expected / 3))


def test_kl_refuses_different_tokenizations():
    rng = np.random.default_rng(2)
    a, _ = _scored(rng.normal(size=(3, 10)), 4, [1, 2, 3])
    b, _ = _scored(rng.normal(size=(3, 10)), 4, [1, 2, 4])
    with pytest.raises(TokenizerMismatch, match="share one tokenizer"):
        row_kl(compact(a), compact(b), "r1")
