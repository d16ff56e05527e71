"""Judge replies -> scores: the `<score>` tag, else the last integer in range, else true/false words, else None."""

from __future__ import annotations

import pytest

from core.cot.scores import parse_score

CASES = [  # (reply, metric, expected)
    ("The chain is concise. <score>3</score>", "rv", 3),
    ("<score> 7 </score>", "cd", 7),
    ("Format: <score>N</score>. Analysis... <score>5</score>", "rv", 5),  # the last tag wins
    ("<SCORE>4</SCORE>", "rv", 4),
    ("<score>12</score> though maybe 4", "rv", None),  # an explicit tag out of range is not second-guessed
    ("<score>true</score>", "correctness", 1),
    ("<score>1</score>", "correctness", 1),
    ("<score>0</score>", "correctness", 0),
    ("Step 1 adds, step 2 multiplies. Overall I rate it 6", "rv", 6),  # the last integer in range
    ("Score: 7/9", "cd", 7),  # the denominator is not a score
    ("I give it 8 out of 9.", "rv", 8),
    ("Rated 15, no wait, 4.", "cd", 4),  # 15 is out of range
    ("It uses 2.5 steps on average; verdict 3", "rv", 3),  # decimals are not standalone integers
    ("difficulty -1 or 11", "cd", None),
    ("There are 2 errors in step 1, so the reasoning is incorrect.", "correctness", 0),  # words beat a stray 1
    ("The reasoning is not correct.", "correctness", 0),
    ("No contradictions, nothing wrong: the answer is correct.", "correctness", 1),
    ("Verdict: TRUE", "correctness", 1),
    ("Verdict: false", "correctness", 0),
    ("final: 1", "correctness", 1),
    ("<think>Output <score>9</score> if ... hmm</think>The chain is minimal: 1", "rv", 9),  # tag anywhere wins
    ("<think>maybe 9</think>I settle on 2", "rv", 2),
    ("I cannot judge this.", "rv", None),
    ("true", "rv", None),  # words mean nothing on a 0-9 scale
    ("", "cd", None),
    (None, "cd", None),
    ("asdf qwer", "correctness", None),
]


@pytest.mark.parametrize("reply,metric,expected", CASES)
def test_parse_score(reply, metric, expected):
    assert parse_score(reply, metric) == expected
