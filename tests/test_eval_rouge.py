"""ROUGE-L on known strings: identical, disjoint, hand-computed LCS cases, Chinese at character level; the fast LCS
against the textbook dynamic programme."""

from __future__ import annotations

import random

import pytest

from core.eval.rouge import lcs_length, rouge_l, tokenize


def _lcs_table(a: list[str], b: list[str]) -> int:
    """The O(n·m) dynamic programme, as written in every textbook."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def test_identical_is_one_and_disjoint_is_zero():
    assert rouge_l("The cat sat on the mat.", "the cat sat on the mat") == 1.0  # case and punctuation do not count
    assert rouge_l("alpha beta gamma", "delta epsilon") == 0.0
    assert rouge_l("", "anything") == 0.0 and rouge_l("anything", "") == 0.0 and rouge_l("...", "!!!") == 0.0


def test_hand_computed_lcs():
    # prediction: the cat sat on the mat (6) / reference: the cat is on a mat (6); LCS = the cat on mat (4)
    assert lcs_length(tokenize("the cat is on a mat"), tokenize("the cat sat on the mat")) == 4
    assert rouge_l("the cat sat on the mat", "the cat is on a mat") == pytest.approx(2 / 3)
    # a b c d e against a c e: LCS 3 -> P = 3/5, R = 3/3, F = 2·0.6·1 / 1.6 = 0.75
    assert rouge_l("a b c d e", "a c e") == pytest.approx(0.75)
    # order matters (a subsequence, not a bag of words): c b a vs a b c share one token in order
    assert rouge_l("c b a", "a b c") == pytest.approx(1 / 3)


def test_chinese_is_scored_per_character():
    assert tokenize("我爱北京天安门。") == ["我", "爱", "北", "京", "天", "安", "门"]
    # prediction 我爱北京 (4) / reference 我爱北京天安门 (7): LCS 4 -> P = 1, R = 4/7, F = 8/11
    assert rouge_l("我爱北京", "我爱北京天安门") == pytest.approx(8 / 11)
    assert rouge_l("我爱北京！", "我爱北京") == 1.0  # full-width punctuation is dropped
    assert rouge_l("今天天气很好", "明日有雨") == 0.0
    # mixed Chinese and English: the English word is one token, each Han character one
    assert tokenize("模型 GPT-4 很好") == ["模", "型", "gpt", "4", "很", "好"]
    assert rouge_l("这个模型很好", "这个 model 很好") == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    assert tokenize("ＡＢＣ１２３") == ["abc123"]  # full-width Latin is folded (NFKC)


def test_fast_lcs_equals_the_dynamic_programme():
    rng = random.Random(0)
    for _ in range(500):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == _lcs_table(a, b) == lcs_length(b, a)
