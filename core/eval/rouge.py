"""ROUGE-L of an answer against the teacher's answer: the metric MiniLLM, DistiLLM and GKD report for students.

ROUGE-L F1 = 2·P·R / (P + R) with P = LCS / prediction tokens and R = LCS / reference tokens, LCS the longest common
subsequence of the two token lists — the definition of Google's `rouge-score` (no stemming, its default), so English
text scores as that package scores it. Two deliberate differences, which are why this is not `rouge-score` itself:

- Tokens: `rouge-score` lower-cases and keeps only `[a-z0-9]+`, so any Chinese (or other non-ASCII) answer scores 0
  against anything. Here CJK characters (Han, kana) are one token each — the usual character-level ROUGE for Chinese,
  which has no spaces to split words — and other letters of any script form words; punctuation is dropped, and NFKC
  folds full-width forms (`ＡＢＣ１２３` reads as `abc123`). For plain ASCII text the tokens are `rouge-score`'s.
- Speed: `rouge-score` fills the O(n·m) LCS table in pure Python (measured here: 65 ms at 512 tokens, 1.5 s at 2,000,
  for every row and model); the bit-parallel LCS below (Allison–Dix / Hyyrö: one big-integer step per token of one
  side) gives the same length in 0.2 ms / 1 ms. Long chains of thought, character-level Chinese and several students
  per row make that the difference between an instant and a slow results page. (`rouge-score` also pulls in nltk and
  absl-py for what is these thirty lines.)
"""

from __future__ import annotations

import re
import unicodedata

# CJK ideographs (+ extensions and compatibility), kana and the iteration marks: one token per character. Hangul is
# written with spaces between words, so it is tokenised as words like Latin script.
_CJK = (r"\u3005-\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
        r"\U00020000-\U0003134f")
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens: each CJK character alone, runs of other letters/digits as words, punctuation dropped."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text or "").lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel: bits over `a`, one step per token
    of `b`; a zero bit of the final vector marks a matched position)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of `prediction` against `reference` in [0, 1]: 1 for the same tokens, 0 when none is shared (or
    either side has no token)."""
    p, r = tokenize(prediction), tokenize(reference)
    lcs = lcs_length(r, p)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)
