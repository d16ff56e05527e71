"""Benchmark of ROUGE-L's LCS (core/eval/rouge.py): the bit-parallel LCS against the O(n·m) table that Google's
`rouge-score` fills in pure Python (the same loop, written out here so the bench needs no extra package), on answers
of 128, 512 and 2,000 tokens drawn from a 50-word vocabulary (both give the same length: asserted).

An evaluate job computes one LCS per row and model; with several students, chains of thought and character-level
Chinese, answers of thousands of tokens are usual, so the table's seconds per row would dominate the results page.

Run: .venv/bin/python bench/rouge.py   (prints `n tokens: table ms / bit-parallel ms = ratio`)
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.eval.rouge import lcs_length  # noqa: E402


def lcs_table(a: list[str], b: list[str]) -> int:
    """rouge-score's `_lcs_table`, reduced to two rows: the textbook dynamic programme."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _time(fn, *args, repeat: int = 3) -> tuple[float, int]:
    best, out = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(50)]
    for n in (128, 512, 2000):
        a, b = rng.choices(words, k=n), rng.choices(words, k=n)
        slow, ref = _time(lcs_table, a, b, repeat=1 if n > 1000 else 3)
        fast, got = _time(lcs_length, a, b)
        assert got == ref, (n, got, ref)
        print(f"{n} tokens: table {1000 * slow:.1f} ms / bit-parallel {1000 * fast:.2f} ms = {slow / fast:.0f}x")


if __name__ == "__main__":
    main()
